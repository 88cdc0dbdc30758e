"""Fine-stage training step: our fused step (one UNet pass through `tiger.nets.fused_forward`,
trained AFF) vs the paper's reference-code step (AFF modules re-created every step, the
no-control prediction F_SD and the controlled prediction F_fusion as two separate UNet passes,
combined by eq. 13).

Both steps train the same FG/BG ControlNets with their own AdamW optimizers on the same batch
(UNet frozen), alternating in one process after a warm-up. Prints one JSON object with seconds
per step, the ratio (goal < 1.0) and the share of this machine's fp32 matmul throughput.
Random weights by default; --model uses a model folder.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tiger  # noqa: E402,F401
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from tqdm import tqdm  # noqa: E402

from tiger import nets  # noqa: E402
from tiger.device import count_flops, matmul_gflops, pick_device  # noqa: E402

TEXT_FG = "malignant, medullary carcinoma, solid composition, hypoechoic, round/oval"
TEXT_BG = "thyroid ultrasound image, transverse plane"


def make_batch(comps: dict, batch: int, dev: torch.device, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    S = comps["image_size"]
    h = S // nets.vae_factor(comps["vae"])
    te, tok = comps["text_encoder"], comps["tokenizer"]
    with torch.no_grad():
        fg, om = nets.encode_prompts(te, [TEXT_FG] * batch, reweight=True, tokenizer=tok)
        bg, _ = nets.encode_prompts(te, [TEXT_BG] * batch, reweight=False, tokenizer=tok)
        full, _ = nets.encode_prompts(te, [f"{TEXT_FG}. {TEXT_BG}"] * batch, reweight=False, tokenizer=tok)
    mask = torch.zeros(batch, 1, S, S)
    mask[:, :, S // 3: 2 * S // 3, S // 4: 3 * S // 4] = 1
    return dict(x0=torch.randn(batch, 4, h, h, generator=g).to(dev), noise=torch.randn(batch, 4, h, h, generator=g).to(dev),
                t=torch.randint(0, 1000, (batch,), generator=g).to(dev), full=full.to(dev), fg=fg.to(dev),
                bg=bg.to(dev), om=om.to(dev), mask=mask.to(dev), sob=torch.rand(batch, 1, S, S, generator=g).to(dev))


class Stepper:
    """Owns the trainable parts and their optimizers (FG, BG, fusion), as the fine stage does."""

    def __init__(self, comps: dict, preset: str | dict):
        self.c = comps
        self.sched = nets.build_noise_scheduler(comps["scheduler"])
        comps["unet"].requires_grad_(False)
        self.opts = [torch.optim.AdamW(comps["controlnet_fg"].parameters(), 1e-5),
                     torch.optim.AdamW(comps["controlnet_bg"].parameters(), 1e-5),
                     torch.optim.AdamW(comps["fusion"].parameters(), 1e-4)]
        self.preset = preset

    def _target(self, b):
        noisy = self.sched.add_noise(b["x0"], b["noise"], b["t"])
        return noisy, self.sched.get_velocity(b["x0"], b["noise"], b["t"])

    def _finish(self, loss):
        loss.backward()
        for o in self.opts:
            o.step()
            o.zero_grad(set_to_none=True)
        return loss.item()

    def ours(self, b) -> float:
        c = self.c
        noisy, target = self._target(b)
        pred = nets.fused_forward(c["unet"], c["controlnet_fg"], c["controlnet_bg"], c["fusion"], noisy, b["t"],
                                  b["full"], b["fg"], b["bg"], b["om"], b["mask"], b["sob"])
        return self._finish(F.mse_loss(pred, target))

    def paper(self, b, beta: float = 1.0) -> float:
        c = self.c
        noisy, target = self._target(b)
        fusion = nets.build_fusion(c["controlnet_fg"], self.preset).to(noisy.device)  # re-created each step
        d1, m1 = c["controlnet_fg"](noisy, b["t"], b["fg"], b["mask"], return_dict=False)
        d2, m2 = c["controlnet_bg"](noisy, b["t"], b["bg"], b["sob"], return_dict=False)
        res = fusion(list(d1) + [m1], list(d2) + [m2])
        f_sd = c["unet"](noisy, b["t"], b["full"]).sample
        f_fusion = c["unet"](noisy, b["t"], b["full"], down_block_additional_residuals=res[:-1],
                             mid_block_additional_residual=res[-1]).sample
        return self._finish(F.mse_loss(f_sd + beta * (f_fusion - f_sd), target))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    dev = pick_device()
    comps = nets.load_components(args.model) if args.model else nets.build_components(args.preset, seed=0)
    for k in ("vae", "unet", "text_encoder", "controlnet_fg", "controlnet_bg", "fusion"):
        comps[k].to(dev)
    comps["controlnet_fg"].train()
    comps["controlnet_bg"].train()
    comps["fusion"].train()
    preset = args.preset if not args.model else dict(nets.resolve_preset("tiny"))
    st = Stepper(comps, preset)
    b = make_batch(comps, args.batch, dev)
    runs = {"ours_fused": lambda: st.ours(b), "paper_two_unet_passes": lambda: st.paper(b)}
    times = {k: [] for k in runs}
    for fn in runs.values():
        fn()
    for _ in tqdm(range(args.repeats), desc="bench_train", file=sys.stderr):
        for k, fn in runs.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    flops = {k: count_flops(fn) for k, fn in runs.items()}
    best = {k: min(v) for k, v in times.items()}
    g = matmul_gflops()
    print(json.dumps({
        "benchmark": "train_fine_step", "device": str(dev), "batch": args.batch,
        "model": str(args.model) if args.model else f"random-{args.preset}", "threads": torch.get_num_threads(),
        "s_per_step": best, "all_runs_s": times,
        "ratio_ours_over_paper": best["ours_fused"] / best["paper_two_unet_passes"],
        "gflop_per_step": {k: v / 1e9 for k, v in flops.items()},
        "share_of_matmul_peak": {k: flops[k] / best[k] / 1e9 / g for k in flops},
        "machine_matmul_gflops": g, "goal": "ratio_ours_over_paper < 1.0",
    }, separators=(",", ":")))


if __name__ == "__main__":
    main()
