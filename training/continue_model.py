"""Write continued stages into an existing model folder: a decoder-only VAE run and/or a
fine-stage run that started from the folder's own weights (train_vae --train-part decoder
--init, train_fine --init).

Why not training.export: export assembles a model from a full set of stage folders of one
chain, but a continuation session has only the stages it trained (the others live on as the
shipped fp16 weights, their checkpoints gone with the machine that made them). This keeps the
untouched parts byte for byte, swaps in the continued ones (fp16), appends each continuation's
log, loss curve and done.json to training_log/, and gives the folder a new model id so PNGs made
by the earlier weights are not mistaken for this model's.

    python -m training.continue_model --base models/tiger-tiny-ddti --vae runs/v2/vae \
        --fine runs/v2/fine --model-id tiger-tiny-ddti-v2
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import tiger  # noqa: F401
import torch

from training.errors import TrainingInputError
from training.stage_run import stage_is_done

FINE_PARTS = ("controlnet_fg", "controlnet_bg", "fusion")


def _finished_model(stage_dir: Path, what: str) -> Path:
    if not stage_is_done(stage_dir):
        raise TrainingInputError(f"{what} run {stage_dir} has not finished (no done.json / model/)")
    return stage_dir / "model"


def _save_fp16(module: torch.nn.Module, dest: Path) -> None:
    """Replace `dest` with the module's fp16 weights (diffusers save_pretrained)."""
    if dest.exists():
        shutil.rmtree(dest)
    module.to(torch.float16).save_pretrained(str(dest))


def _same_encoder(old, new) -> bool:
    """Encoder, quant conv and latent scale unchanged (compared at the shipped fp16 precision)."""
    a, b = old.state_dict(), new.state_dict()
    keys = [k for k in a if k.startswith(("encoder.", "quant_conv."))]
    return (abs(float(old.config.scaling_factor) - float(new.config.scaling_factor)) < 1e-6
            and all(torch.equal(a[k].half(), b[k].half()) for k in keys))


def rebuild_bank(base: Path, data: str | Path, split_seed: int) -> int:
    """Replace the folder's background bank by one built from the TRAINING split of `data`
    (e.g. after the importer's BG maps changed); returns the number of backgrounds."""
    from tiger.background_bank import BackgroundBank
    from tiger.data import load_metadata, split

    train = split(load_metadata(data), seed=split_seed)["train"]
    tmp = base / "background_bank.new"
    if tmp.exists():
        shutil.rmtree(tmp)
    bank = BackgroundBank.build(data, train, tmp)
    shutil.rmtree(base / "background_bank", ignore_errors=True)
    tmp.rename(base / "background_bank")
    return len(bank)


def continue_model(base: str | Path, vae: str | Path | None = None, fine: str | Path | None = None,
                   model_id: str | None = None, commands: list[str] | None = None,
                   bank_data: str | Path | None = None, split_seed: int = 0,
                   control_guidance: float | None = None, control_guidance_until: float | None = None) -> dict:
    """Update the model folder `base` in place; returns the continuation record it appended."""
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel

    from tiger import nets

    base = Path(base)
    index_path = base / "model_index.json"
    if not index_path.exists():
        raise TrainingInputError(f"{base} is not a model folder (no model_index.json)")
    guidance = {k: v for k, v in (("control_guidance", control_guidance),
                                  ("control_guidance_until", control_guidance_until)) if v is not None}
    if vae is None and fine is None and bank_data is None and not guidance:
        raise TrainingInputError("nothing to continue: give --vae, --fine, --bank-data, --control-guidance "
                                 "and/or --control-guidance-until")
    if control_guidance is not None and not (0.0 <= control_guidance <= 3.0):
        raise TrainingInputError(f"--control-guidance must be within 0..3 (the pipeline's beta range), got {control_guidance}")
    if control_guidance_until is not None and not (0.0 <= control_guidance_until <= 1.0):
        raise TrainingInputError(f"--control-guidance-until must be within 0..1 (a share of the steps), "
                                 f"got {control_guidance_until}")
    if bank_data is not None and not (Path(bank_data) / "metadata.jsonl").exists():
        raise TrainingInputError(f"--bank-data {bank_data} is not a canonical dataset folder (no metadata.jsonl)")
    f32 = dict(torch_dtype=torch.float32)
    # check every input before writing anything, so a refused call leaves the folder as it was
    new_vae = None
    if vae is not None:
        new_vae = AutoencoderKL.from_pretrained(str(_finished_model(Path(vae), "VAE")), **f32)
        if not _same_encoder(AutoencoderKL.from_pretrained(str(base / "vae"), **f32), new_vae):
            raise TrainingInputError("the continued VAE's encoder differs from the model's: only a decoder-only "
                                     "run (--train-part decoder) keeps the latents of the trained UNets valid")
    fine_model = _finished_model(Path(fine), "fine") if fine is not None else None
    replaced: dict[str, dict] = {}
    if new_vae is not None:
        _save_fp16(new_vae, base / "vae")
        replaced["vae"] = {"run": str(vae), **json.loads((Path(vae) / "done.json").read_text())}
    if fine_model is not None:
        # a fine stage that trained the UNet too (--unet-lr, --mask-channel) replaces it as well
        parts = FINE_PARTS + (("unet",) if (fine_model / "unet" / "config.json").exists() else ())
        for part in parts:
            cls = {"fusion": nets.AFFFusion, "unet": UNet2DConditionModel}.get(part, ControlNetModel)
            _save_fp16(cls.from_pretrained(str(fine_model / part), **f32), base / part)
        replaced["fine"] = {"run": str(fine), **json.loads((Path(fine) / "done.json").read_text())}
    bank_rec = None
    if bank_data is not None:
        bank_rec = {"data": str(bank_data), "split_seed": split_seed,
                    "backgrounds": rebuild_bank(base, bank_data, split_seed)}

    log = base / "training_log"
    log.mkdir(exist_ok=True)
    for stage, rec in replaced.items():
        run = Path(rec["run"])
        for src, dst in (("log.csv", f"{stage}_continued.csv"), ("loss.png", f"{stage}_continued_loss.png")):
            if (run / src).exists():
                shutil.copyfile(run / src, log / dst)
    info_path = log / "train_info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    record = {"stages": replaced, "commands": list(commands or [])}
    if bank_rec is not None:
        record["background_bank"] = bank_rec
    index = json.loads(index_path.read_text())
    if model_id:
        record["model_id"] = {"from": index.get("tiger", {}).get("model_id"), "to": model_id}
        index.setdefault("tiger", {})["model_id"] = model_id
    for key, value in guidance.items():  # the defaults of calls that give none (chosen by eval_control)
        record[key] = {"from": index.get("tiger", {}).get(key, 1.0), "to": float(value)}
        index.setdefault("tiger", {})[key] = float(value)
    if model_id or guidance:
        index_path.write_text(json.dumps(index, indent=2))
    info.setdefault("continuations", []).append(record)
    info_path.write_text(json.dumps(info, indent=2, default=str))
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="model folder to update in place")
    ap.add_argument("--vae", default=None, help="finished decoder-only VAE stage folder")
    ap.add_argument("--fine", default=None, help="finished fine stage folder (trained with --init)")
    ap.add_argument("--model-id", default=None, help="new model id written into model_index.json")
    ap.add_argument("--bank-data", default=None,
                    help="rebuild background_bank/ from the training split of this dataset folder")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--control-guidance", type=float, default=None,
                    help="default control guidance beta of the model's calls (paper eq. 13), as measured best "
                         "by training.eval_control --beta")
    ap.add_argument("--control-guidance-until", type=float, default=None,
                    help="default share of the steps (from the first) that take that beta; later steps use beta 1")
    ap.add_argument("--command", action="append", default=[],
                    help="the training command of a continued stage, for the model card (repeatable)")
    args = ap.parse_args(argv)
    try:
        rec = continue_model(args.base, args.vae, args.fine, args.model_id, args.command,
                             args.bank_data, args.split_seed, args.control_guidance, args.control_guidance_until)
    except (TrainingInputError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: {"run": v["run"], "steps": v.get("steps")} for k, v in rec["stages"].items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
