"""Assemble the trained stages into one model folder (diffusers layout, fp16 safetensors) that
`tiger.pipeline.TigerPipeline.from_pretrained` loads, plus the background bank built from the
TRAINING split only, and `training_log/` (each stage's CSV and PNG loss curve, and
`train_info.json`: steps, wall clock, device and split seed per stage).

Why the bank is built here and from the training split: BG conditions of generated images
must never come from test images (DESIGN.md), and the bank must use the same split seed as
the stages that trained the model, which only the chain knows.

    python -m training.export --work runs/tiny-work --data data/ddti-128 --out models/tiger-tiny-ddti --preset tiny
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import tiger  # noqa: F401
import torch

from training.errors import TrainingInputError
from training.stage_run import stage_is_done

STAGES = ("clip", "vae", "coarse", "fine")


def _need(stage_dir: Path, stage: str) -> Path:
    model = stage_dir / "model"
    if not stage_is_done(stage_dir):
        raise TrainingInputError(f"stage {stage!r} has not finished in {stage_dir} (no done.json / model/); "
                                 "run training.train_chain first")
    return model


def export_model(work: str | Path, data: str | Path, out: str | Path, preset: str = "tiny",
                 split_seed: int = 0, model_id: str | None = None, chain_info: dict | None = None) -> Path:
    """Write the model folder `out` from the stage folders under `work` (clip, vae, coarse, fine)."""
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel

    from tiger import nets
    from tiger.background_bank import BackgroundBank
    from tiger.data import load_metadata, split
    from tiger.domain_clip import DomainCLIP

    work, out = Path(work), Path(out)
    p = nets.resolve_preset(preset)
    f32 = dict(torch_dtype=torch.float32)
    clip = DomainCLIP.from_pretrained(str(_need(work / "clip", "clip")), **f32)
    if p["kind"] == "folder":
        vae = nets.build_vae(p)
        text_encoder, tokenizer = nets.build_text_encoder(p), nets.build_tokenizer(p)
    else:
        vae = AutoencoderKL.from_pretrained(str(_need(work / "vae", "vae")), **f32)
        text_encoder, tokenizer = clip, None
    unet = UNet2DConditionModel.from_pretrained(str(_need(work / "coarse", "coarse")), **f32)
    fine = _need(work / "fine", "fine")
    cn_fg = ControlNetModel.from_pretrained(str(fine / "controlnet_fg"), **f32)
    cn_bg = ControlNetModel.from_pretrained(str(fine / "controlnet_bg"), **f32)
    fusion = nets.AFFFusion.from_pretrained(str(fine / "fusion"), **f32)

    records = load_metadata(data)
    train_records = split(records, seed=split_seed)["train"]
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        bank = BackgroundBank.build(data, train_records, Path(tmp) / "bank")
        components = dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                          controlnet_fg=cn_fg, controlnet_bg=cn_bg, fusion=fusion,
                          scheduler=nets.build_scheduler(), clip=clip, background_bank=bank,
                          model_id=model_id or out.name, image_size=p.get("image_size"))
        nets.save_components(components, out, fp16=True)
    write_training_log(work, out, chain_info or {}, split_seed, len(train_records))
    return out


def write_training_log(work: Path, out: Path, chain_info: dict, split_seed: int, n_train: int) -> Path:
    """Copy each stage's log.csv/loss.png and write train_info.json into out/training_log/."""
    log = out / "training_log"
    log.mkdir(parents=True, exist_ok=True)
    stages = {}
    for stage in STAGES:
        sd = work / stage
        for src, dst in (("log.csv", f"{stage}.csv"), ("loss.png", f"{stage}_loss.png")):
            if (sd / src).exists():
                shutil.copyfile(sd / src, log / dst)
        if (sd / "done.json").exists():
            stages[stage] = json.loads((sd / "done.json").read_text())
    info = {"split_seed": split_seed, "train_images": n_train, "stages": stages}
    info.update(chain_info)
    (log / "train_info.json").write_text(json.dumps(info, indent=2, default=str))
    return log


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, help="folder holding the stage folders clip/ vae/ coarse/ fine/")
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--model-id", default=None)
    args = ap.parse_args(argv)
    try:
        path = export_model(args.work, args.data, args.out, args.preset, args.split_seed, args.model_id)
    except (TrainingInputError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"model folder written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
