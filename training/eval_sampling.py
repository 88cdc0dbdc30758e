"""Quality against steps per sampler: which sampler and how few steps keep the images as good.

Why: on 2 CPU cores the number of denoising steps is the time a clinician waits. The multistep
solvers (DPM-Solver++ 2M, UniPC) are meant to match DDIM's quality in fewer steps; this measures
it on the model itself instead of trusting the papers. Every arm makes the same images: one per
real validation record, with that record's own chips, nodule mask and Sobel background and the
same seed, so the arms differ only in the sampler and its steps. Measured per arm:

- FID and CMMD of the generated set against the real validation images (domain-CLIP embeddings
  of the model folder, `tiger.metrics`);
- mask adherence as in `training.eval_control`: the shipped segmenter's nodule on the generated
  image against the given mask (mean IoU, hit rate IoU > 0.3);
- seconds per image (this machine, this run).

The default is the fewest steps whose FID and CMMD stay within 5% of DDIM 25 (at most 1.05x)
and whose mean IoU stays within 5% (at least 0.95x); `reports/<name>/sampling.{json,md}`.

    python -m training.eval_sampling --model models/tiger-tiny-ddti --data data/ddti-128
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from tiger.data import read_grey
from tqdm import tqdm

REFERENCE = ("ddim", 25)
ARMS: tuple[tuple[str, int], ...] = (REFERENCE, *((s, k) for s in ("dpm++2m", "unipc") for k in (8, 12, 16)))
TOLERANCE = 0.05


def _chips(record: dict) -> dict:
    """The record's features as valid chips (a conflicting set falls back to the nodule-free texts)."""
    from tiger import knowledge
    feats = dict(record.get("features") or {})
    if record.get("plane"):
        feats["plane"] = record["plane"]
    try:
        return knowledge.validate_chips(feats)
    except knowledge.ChipError:
        return {}


def conditions_of(records: Sequence[dict], data: Path, size: int) -> list[dict]:
    """Per real record: its chips, mask and Sobel map (records without a nodule mask skipped)."""
    out = []
    for r in records:
        if not r.get("mask") or not r.get("condition_bg"):
            continue
        m = read_grey(data / r["mask"], size)
        if not (m > 127).any() or (m > 127).all():
            continue
        out.append(dict(id=r["id"], chips=_chips(r), mask=(m > 127).astype(np.uint8) * 255,
                        sobel=read_grey(data / r["condition_bg"], size)))
    return out


def generate_arm(pipe, conds: Sequence[dict], sampler: str, steps: int, seed: int) -> tuple[np.ndarray, float]:
    """One image per condition set with `sampler` at `steps`; (uint8 N x S x S, seconds per image)."""
    images = []
    t0 = time.perf_counter()
    for k, c in enumerate(tqdm(conds, desc=f"{sampler} {steps}", unit="img", leave=False)):
        out = pipe(chips=c["chips"] or None, mask=c["mask"], sobel=c["sobel"], num_inference_steps=steps,
                   seed=seed + k, scheduler=sampler)
        images.append(np.asarray(out.images[0]))
    return np.stack(images), (time.perf_counter() - t0) / max(1, len(conds))


def adherence(segmenter, images: np.ndarray, conds: Sequence[dict]) -> dict:
    """Mean IoU and hit rate of the segmented nodule against the mask each image was given."""
    from training.eval_control import HIT_IOU, iou
    segs = segmenter.predict_masks(list(images))
    ious = [iou(s, c["mask"] > 127) for s, c in zip(segs, conds)]
    return {"mean_iou": round(float(np.mean(ious)), 4), "hit_rate": round(float(np.mean([i > HIT_IOU for i in ious])), 4)}


def within(row: dict, ref: dict, tol: float = TOLERANCE) -> bool:
    """True when FID/CMMD are at most (1 + tol) x the reference's and mean IoU at least (1 - tol) x."""
    ok = row["fid"] <= ref["fid"] * (1 + tol) and row["cmmd"] <= ref["cmmd"] * (1 + tol)
    if ref.get("mean_iou") is not None and row.get("mean_iou") is not None:
        ok = ok and row["mean_iou"] >= ref["mean_iou"] * (1 - tol)
    return bool(ok)


def choose_default(rows: Sequence[dict], reference: tuple[str, int] = REFERENCE) -> dict:
    """The passing arm with the fewest steps (ties: the lower FID); the reference when none passes."""
    passing = [r for r in rows if r["within_5pct"] and (r["sampler"], r["steps"]) != reference]
    if not passing:
        return next(r for r in rows if (r["sampler"], r["steps"]) == reference)
    return min(passing, key=lambda r: (r["steps"], r["fid"]))


def evaluate_sampling(model: Path, data: Path, n: int = 24, seed: int = 5000, split_name: str = "val",
                      arms: Sequence[tuple[str, int]] = ARMS) -> dict:
    """Run every arm on the same conditions and seeds; the rows, the chosen default and the setup."""
    from tiger.data import load_metadata, split
    from tiger.metrics.cmmd import cmmd
    from tiger.metrics.embeddings import load_embedder
    from tiger.metrics.fid import fid
    from tiger.pipeline import TigerPipeline
    from tiger.segment import default_segmenter

    ref_arm = (str(arms[0][0]), int(arms[0][1]))   # the first arm is the reference (DDIM 25 by default)
    pipe = TigerPipeline.from_pretrained(model, device="cpu")
    pipe.set_progress_bar_config(disable=True)
    S = pipe.image_size
    records = split(load_metadata(data), seed=0)[split_name]
    real = np.stack([read_grey(data / r["file_name"], S) for r in records])
    conds = conditions_of(records, data, S)[:n]
    if len(conds) < 4:
        raise ValueError(f"{data} has only {len(conds)} {split_name} records with a nodule mask; need at least 4")
    embedder = load_embedder(model)
    real_emb = embedder.images(real)
    segmenter = default_segmenter(model)
    rows = []
    for sampler, steps in tqdm(arms, desc="eval_sampling", unit="arm"):
        images, sec = generate_arm(pipe, conds, sampler, steps, seed)
        emb = embedder.images(images)
        row = {"sampler": sampler, "steps": steps, "fid": round(fid(real_emb, emb), 4),
               "cmmd": round(cmmd(real_emb, emb), 4), "s_per_image": round(sec, 3)}
        row.update(adherence(segmenter, images, conds) if segmenter is not None else {"mean_iou": None, "hit_rate": None})
        rows.append(row)
    ref = rows[0]
    for r in rows:
        r["within_5pct"] = within(r, ref)
    best = choose_default(rows, ref_arm)
    return {"model": str(model), "model_id": pipe.model_id, "data": str(data), "split": split_name,
            "real_images": int(len(real)), "generated_per_arm": len(conds), "seed": seed,
            "embedder": embedder.source, "segmenter": segmenter is not None, "tolerance": TOLERANCE,
            "reference": {"sampler": ref_arm[0], "steps": ref_arm[1]}, "rows": rows,
            "default": {"sampler": best["sampler"], "steps": best["steps"]}}


def markdown(result: dict) -> str:
    """The table for the model card."""
    ref = result["reference"]
    lines = [f"Quality against steps ({result['generated_per_arm']} generated images per row, the real "
             f"{result['split']} split's own chips, masks and backgrounds; {result['real_images']} real images; "
             f"{result['embedder']}). Within 5%: FID and CMMD <= 1.05x and mask IoU >= 0.95x of "
             f"{ref['sampler'].upper()} {ref['steps']}.", "",
             "| sampler | steps | FID | CMMD | mask IoU | hit rate | s / image | within 5% |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['sampler']} | {r['steps']} | {r['fid']:.3f} | {r['cmmd']:.3f} | {r['mean_iou']} | "
                     f"{r['hit_rate']} | {r['s_per_image']:.2f} | {'yes' if r['within_5pct'] else 'no'} |")
    d = result["default"]
    lines += ["", f"Default chosen: **{d['sampler']} at {d['steps']} steps**."]
    return "\n".join(lines) + "\n"


def write_report(result: dict, out: Path) -> tuple[Path, Path]:
    """reports/<...>/sampling.json and sampling.md."""
    out.mkdir(parents=True, exist_ok=True)
    j, m = out / "sampling.json", out / "sampling.md"
    j.write_text(json.dumps(result, indent=1))
    m.write_text(markdown(result))
    return j, m


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path, help="model folder (any: the default comes from it)")
    ap.add_argument("--data", required=True, type=Path, help="canonical dataset folder (real images)")
    ap.add_argument("--n", type=int, default=24, help="generated images per arm (one per real record)")
    ap.add_argument("--split", default="val", choices=("train", "val", "test"))
    ap.add_argument("--seed", type=int, default=5000)
    ap.add_argument("--out", type=Path, default=Path("reports/sampling"))
    args = ap.parse_args(argv)
    if not (args.model / "model_index.json").exists():
        ap.error(f"{args.model} is not a model folder (no model_index.json)")
    if not (args.data / "metadata.jsonl").exists():
        ap.error(f"{args.data} is not a dataset folder (no metadata.jsonl)")
    result = evaluate_sampling(args.model, args.data, n=args.n, seed=args.seed, split_name=args.split)
    j, m = write_report(result, args.out)
    print(m.read_text())
    print(f"wrote {j} and {m}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
