"""One command for the whole training chain: domain CLIP -> VAE -> coarse UNet -> fine
ControlNets + AFF, then export of the model folder (diffusers layout, fp16 safetensors,
background bank from the TRAIN split, training_log/ with CSVs, loss PNGs and train_info.json).

Stages already finished are skipped and an interrupted stage resumes from its checkpoint, so
re-running the same command after a crash or a session limit continues where it stopped.
Stage folders live in `--work` (default: `<out>-work` beside the model folder), so the model
folder holds only what is shipped.

    python -m training.train_chain --data data/ddti-128 --out runs/tiny --preset tiny \
        --device cuda --minutes clip=2,vae=6,coarse=8,fine=6

Per-stage overrides: `--steps clip=200,...` (step caps), `--batch vae=32,...`, `--lr coarse=2e-4`.
Anything else a stage accepts can be set by running that stage's module on its own.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import tiger  # noqa: F401
import torch

from training.budget import Budget, parse_minutes
from training.errors import TrainingInputError
from training.stage_run import stage_is_done
from training.export import STAGES, export_model

#: Batch sizes per device type: a GPU is launch-bound for these small nets, so larger batches
#: are nearly free there; on 2 CPU cores the DESIGN.md measurements used these sizes.
DEFAULT_BATCH = {"cpu": dict(clip=64, vae=16, coarse=32, fine=16),
                 "cuda": dict(clip=128, vae=32, coarse=128, fine=64)}
DEFAULT_MINUTES = dict(clip=2.0, vae=6.0, coarse=8.0, fine=6.0)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="canonical dataset folder")
    ap.add_argument("--out", required=True, help="the model folder to write")
    ap.add_argument("--work", default=None, help="stage folders (default: <out>-work)")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--device", default=None, help="cpu, cuda (default: CUDA when present)")
    ap.add_argument("--minutes", default=None, help="per-stage training minutes, e.g. clip=2,vae=6,coarse=8,fine=6")
    ap.add_argument("--steps", default=None, help="per-stage step caps, e.g. clip=500,vae=2000")
    ap.add_argument("--batch", default=None, help="per-stage batch sizes, e.g. vae=32,coarse=64")
    ap.add_argument("--lr", default=None, help="per-stage learning rates, e.g. coarse=2e-4")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--ckpt-minutes", type=float, default=3.0)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--vae-disc", action=argparse.BooleanOptionalAction, default=True,
                    help="patch discriminator in the VAE stage")
    ap.add_argument("--model-id", default=None)
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    return ap


def _check_keys(spec: dict, what: str) -> dict:
    bad = sorted(set(spec) - set(STAGES))
    if bad:
        raise TrainingInputError(f"{what}: unknown stage {bad[0]!r}; stages are {', '.join(STAGES)}")
    return spec


def stage_argv(stage: str, args: argparse.Namespace, work: Path, dev_type: str) -> list[str]:
    """The command line of one stage, as the stage's own parser understands it."""
    minutes = {**DEFAULT_MINUTES, **_check_keys(parse_minutes(args.minutes), "--minutes")}
    steps = _check_keys(parse_minutes(args.steps), "--steps")
    batch = {**DEFAULT_BATCH.get(dev_type, DEFAULT_BATCH["cpu"]), **_check_keys(parse_minutes(args.batch), "--batch")}
    lrs = _check_keys(parse_minutes(args.lr), "--lr")
    argv = ["--data", str(args.data), "--out", str(work / stage), "--preset", args.preset,
            "--max-minutes", str(minutes[stage]), "--max-steps", str(int(steps.get(stage, 10**9))),
            "--batch-size", str(int(batch[stage])), "--seed", str(args.seed), "--split-seed", str(args.split_seed),
            "--ckpt-minutes", str(args.ckpt_minutes), "--log-every", str(args.log_every),
            "--precision", args.precision]
    if args.device:
        argv += ["--device", args.device]
    if stage in lrs:
        argv += ["--lr", str(lrs[stage])]
    frozen = ["--vae", str(work / "vae" / "model"), "--text-encoder", str(work / "clip" / "model")]
    if stage == "vae" and not args.vae_disc:
        argv.append("--no-disc")
    if stage in ("coarse", "fine") and args.preset != "sd2":
        argv += frozen
    if stage == "fine":
        argv += ["--unet", str(work / "coarse" / "model")]
    return argv


def _budget(sargv: list[str]) -> Budget:
    return Budget(int(sargv[sargv.index("--max-steps") + 1]), float(sargv[sargv.index("--max-minutes") + 1]))


def stages_for(preset: str) -> tuple[str, ...]:
    """sd2 keeps its own VAE (frozen), so it has no VAE stage."""
    from tiger import nets

    return tuple(s for s in STAGES if not (s == "vae" and nets.resolve_preset(preset)["kind"] == "folder"))


def run_chain(argv: list[str] | None = None) -> Path:
    from training import train_clip, train_coarse, train_fine, train_vae
    from tiger.device import pick_device

    args = build_parser().parse_args(argv)
    if not (Path(args.data) / "metadata.jsonl").exists():
        raise TrainingInputError(f"{args.data} is not a canonical dataset folder (no metadata.jsonl)")
    out = Path(args.out)
    work = Path(args.work) if args.work else out.with_name(out.name + "-work")
    work.mkdir(parents=True, exist_ok=True)
    dev = pick_device(args.device)
    modules = {"clip": train_clip, "vae": train_vae, "coarse": train_coarse, "fine": train_fine}
    t0 = time.time()
    ran, skipped = [], []
    for stage in stages_for(args.preset):
        sargv = stage_argv(stage, args, work, dev.type)
        if stage_is_done(work / stage, _budget(sargv)):
            skipped.append(stage)
            print(f"[chain] {stage}: already finished in {work / stage}, skipped", flush=True)
            continue
        print(f"[chain] {stage}: python -m training.train_{stage} {' '.join(sargv)}", flush=True)
        mod = modules[stage]
        mod.train(mod.build_parser().parse_args(sargv))
        ran.append(stage)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    info = {"command": "python -m training.train_chain " + " ".join(argv if argv is not None else sys.argv[1:]),
            "preset": args.preset, "data": str(Path(args.data).resolve()), "seed": args.seed,
            "chain_wall_clock_s_this_run": round(time.time() - t0, 1), "stages_run": ran,
            "stages_skipped": skipped, "python": platform.python_version(), "torch": torch.__version__,
            "device": str(dev) + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else "")}
    path = export_model(work, args.data, out, args.preset, args.split_seed, args.model_id, info)
    print(f"[chain] model folder written: {path}", flush=True)
    return path


def main(argv: list[str] | None = None) -> int:
    try:
        run_chain(argv)
    except (ValueError, FileNotFoundError) as e:  # TrainingInputError, DatasetFormatError, PresetError, ...
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
