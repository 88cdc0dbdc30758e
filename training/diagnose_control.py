"""Does the FG encoder read its mask at all? A one-minute check of a model folder.

Why: the control evaluation (training.eval_control) shows the nodule is not drawn where it is
placed, but not where the mask is lost. This measures it inside the network, on validation
images: (1) the v-prediction error inside and outside the nodule with the true mask, a zeroed
mask and a mask shifted by half the image (a FG encoder that reads the mask gets a lower error
with the true one); (2) how much the mask (FG) and the Sobel map (BG) change the output of their
ControlNet's conditioning embedding, relative to a zero condition.

    python -m training.diagnose_control --model models/tiger-tiny-ddti --data data/ddti-128 \
        --out models/tiger-tiny-ddti/training_log/ablations/diagnosis_v2.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from tiger import nets
from training.diffusion import encode_latents
from training.tensor_data import load_split

TIMESTEPS = (100, 300, 500, 700, 900)


@torch.no_grad()
def diagnose(model: str | Path, data: str | Path, n: int = 32, split: str = "val") -> dict:
    """In-mask / out-of-mask v errors per timestep and condition, and the embedding sensitivity."""
    return {"model": str(model), **diagnose_components(nets.load_components(model), data, n, split)}


@torch.no_grad()
def diagnose_components(c: dict, data: str | Path, n: int = 32, split: str = "val") -> dict:
    """`diagnose` on components already loaded (`tiger.nets.load_components`)."""
    for v in c.values():
        if isinstance(v, torch.nn.Module):
            v.float().eval()
    d = load_split(data, split, 0)
    n = min(n, len(d.images))
    mask, sobel = d.masks[:n], d.sobel[:n]
    z0 = encode_latents(c["vae"], d.images[:n])[0][0] * c["vae"].config.scaling_factor
    te, tok = c["text_encoder"], c.get("tokenizer")
    ctx_full, _ = nets.encode_prompts(te, d.text[:n], reweight=False, tokenizer=tok)
    ctx_fg, omega = nets.encode_prompts(te, d.text_fg[:n], reweight=True, tokenizer=tok)
    ctx_bg, _ = nets.encode_prompts(te, d.text_bg[:n], reweight=False, tokenizer=tok)
    sched = nets.build_noise_scheduler(nets.build_scheduler())
    noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(0))
    inside = (torch.nn.functional.interpolate(mask, size=z0.shape[-2:], mode="area") > 0.5).float()
    conditions = {"true mask": mask, "zero mask": mask * 0,
                  "shifted mask": torch.roll(mask, shifts=mask.shape[-2] // 2, dims=-2)}
    rows = {}
    for t in TIMESTEPS:
        tt = torch.full((n,), t, dtype=torch.long)
        zt, v = sched.add_noise(z0, noise, tt), sched.get_velocity(z0, noise, tt)
        row = {}
        for name, m in conditions.items():
            p = nets.fused_forward(c["unet"], c["controlnet_fg"], c["controlnet_bg"], c["fusion"], zt, tt,
                                   ctx_full, ctx_fg, ctx_bg, omega, m, sobel)
            err = (p - v) ** 2
            row[name] = {"inside": round(float((err * inside).sum() / (inside.sum() * 4)), 4),
                         "outside": round(float((err * (1 - inside)).sum() / ((1 - inside).sum() * 4)), 4)}
        rows[str(t)] = row
    emb = {}
    for name, cn, x in (("fg (mask)", c["controlnet_fg"], mask), ("bg (Sobel)", c["controlnet_bg"], sobel)):
        e1, e0 = cn.controlnet_cond_embedding(x), cn.controlnet_cond_embedding(x * 0)
        emb[name] = {"change_over_zero_condition": round(float((e1 - e0).norm() / e0.norm()), 4)}
    return {"split": split, "n": n, "v_error": rows, "embedding": emb}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    rep = diagnose(a.model, a.data, a.n)
    text = json.dumps(rep, indent=1)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
