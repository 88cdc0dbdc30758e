"""Bulk generation of synthetic images for one class or subtype: resumable, shardable, filtered.

  python training/augment.py --model models/tiger-tiny-ddti --label benign --n 500 \
      --out runs/aug-benign --data data/ddti --chips-from data
  accelerate launch --num_processes 2 --cpu training/augment.py ...   (or across GPUs)

Why it is built this way:
- Image i always gets seed `seed + i`, and blocks of `batch` consecutive images share one chip
  set drawn with a generator seeded by (seed, block). The output is therefore the same whatever
  the number of processes, shards are disjoint (block b goes to rank b mod world size), and a
  rerun skips every image already written (resumable: nothing is generated twice or lost).
- Chips come from the real distribution of the class (`--chips-from data`: the feature sets of
  training-split images of that class/subtype) or from the knowledge base's typical profile
  (`--chips-from profile`); backgrounds come from the model's background bank (picked by seed).
- Each rank appends to its own `manifest.rank<r>.jsonl`; rank 0 merges them into one
  `manifest.jsonl` after all ranks finish. Every PNG carries its full parameter record.
- `--filter clip|moso --drop 0.2` drops the lowest-scoring samples from `manifest.jsonl` (the
  images stay, `manifest_all.jsonl` lists every sample with its score and `kept` flag).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tiger  # noqa: F401,E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402


class AugmentInputError(ValueError):
    """Bad input to bulk generation (unknown class, no matching images, bad filter)."""


@dataclass
class AugmentConfig:
    model: str
    out: str
    n: int = 100
    label: str = "benign"          # class (benign/malignant) or subtype (papillary, follicular, ...)
    data: str | None = None        # canonical folder: chip distribution, MoSo probe data
    chips_from: str = "data"       # "data" | "profile"
    encoders: str = "both"
    steps: int = 25
    guidance_scale: float = 4.0
    seed: int = 0
    batch: int = 4
    filter: str = "none"           # "none" | "clip" | "moso"
    drop: float = 0.2
    split_seed: int = 0
    device: str | None = None


def class_of(label: str) -> tuple[str, str | None]:
    """(malignancy, subtype or None) of a class or subtype name."""
    from tiger import knowledge

    label = label.strip().lower()
    if label in ("benign", "malignant"):
        return label, ("benign" if label == "benign" else None)
    if label in knowledge.GROUPS["subtype"]:
        return "malignant", label
    raise AugmentInputError(f"unknown class or subtype {label!r}; choose benign, malignant or one of "
                            + ", ".join(knowledge.GROUPS["subtype"]))


def chip_pool(cfg: AugmentConfig) -> list[dict]:
    """The chip sets to draw from: real training-split feature sets of the class, or its profile."""
    from tiger import knowledge

    malignancy, subtype = class_of(cfg.label)
    base = {"malignancy": malignancy} | ({"subtype": subtype} if subtype else {})
    if cfg.chips_from == "profile":
        key = subtype or ("benign" if malignancy == "benign" else "papillary")
        if key not in knowledge.SUBTYPE_PROFILES:
            raise AugmentInputError(f"the knowledge base has no typical profile for {key!r}")
        return [knowledge.validate_chips(dict(knowledge.SUBTYPE_PROFILES[key]) | base)]
    if cfg.chips_from != "data":
        raise AugmentInputError(f"--chips-from must be data or profile, got {cfg.chips_from!r}")
    if not cfg.data:
        raise AugmentInputError("--chips-from data needs --data (a canonical dataset folder)")
    from tiger.data import load_metadata, split

    rows = split(load_metadata(cfg.data), seed=cfg.split_seed)["train"]
    pool = []
    for r in rows:
        if str(r.get("label") or "").lower() != malignancy or (subtype not in (None, "benign") and r.get("subtype") != subtype):
            continue
        chips = {k: v for k, v in (r.get("features") or {}).items() if v} | base
        if r.get("plane"):
            chips["plane"] = r["plane"]
        try:
            pool.append(knowledge.validate_chips(chips))
        except ValueError:
            continue  # a contradictory real feature set is skipped, not generated
    if not pool:
        raise AugmentInputError(f"no training images of class {cfg.label!r} in {cfg.data}; use --chips-from profile")
    return pool


def blocks(n: int, batch: int) -> list[list[int]]:
    return [list(range(i, min(i + batch, n))) for i in range(0, n, batch)]


def done_indices(out: Path) -> set[int]:
    """Indices already generated: listed in some rank manifest AND present on disk."""
    done = set()
    for shard in out.glob("manifest.rank*.jsonl"):
        for line in shard.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash: that image is regenerated
            if (out / row["file"]).is_file():
                done.add(int(row["index"]))
    return done


def generate_shard(cfg: AugmentConfig, rank: int = 0, world: int = 1) -> int:
    """Generate this rank's missing images; returns how many were written now."""
    from tiger.pipeline import TigerPipeline
    from tiger.pngmeta import write_png

    out = Path(cfg.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    pool = chip_pool(cfg)
    done = done_indices(out)
    mine = [b for k, b in enumerate(blocks(cfg.n, cfg.batch)) if k % world == rank]
    todo = [(k * world + rank, b) for k, b in enumerate(mine) if not set(b) <= done]
    if not todo:
        return 0
    pipe = TigerPipeline.from_pretrained(cfg.model, device=cfg.device)
    pipe.set_progress_bar_config(disable=True)  # one bar per shard, not one per call
    malignancy, subtype = class_of(cfg.label)
    written = 0
    with open(out / f"manifest.rank{rank}.jsonl", "a") as manifest:
        for block_id, idx in tqdm(todo, desc=f"generate {cfg.label} (rank {rank})", position=rank, unit="batch"):
            rng = np.random.default_rng([cfg.seed, block_id])
            chips = pool[int(rng.integers(len(pool)))]
            res = pipe(chips=chips, encoders=cfg.encoders, num_inference_steps=cfg.steps,
                       guidance_scale=cfg.guidance_scale, seed=[cfg.seed + i for i in idx], num_images=len(idx))
            for i, img, rec in zip(idx, res.images, res.records):
                if i in done:
                    continue
                name = f"images/{cfg.label}_{i:06d}.png"
                write_png(img, rec, out / name)
                manifest.write(json.dumps({"index": i, "file": name, "label": malignancy, "subtype": subtype,
                                           "seed": rec["seed"], "chips": rec["chips"], "text": rec["text_full"],
                                           "text_fg": rec["text_fg"], "text_bg": rec["text_bg"],
                                           "background_id": rec["background_id"], "encoders": cfg.encoders,
                                           "model_id": rec["model_id"], "rank": rank}) + "\n")
                manifest.flush()
                written += 1
    return written


def merge_manifests(out: Path) -> list[dict]:
    """All rank manifests -> one list sorted by index (last write of an index wins)."""
    rows: dict[int, dict] = {}
    for shard in sorted(out.glob("manifest.rank*.jsonl")):
        for line in shard.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if (out / row["file"]).is_file():
                rows[int(row["index"])] = row
    return [rows[i] for i in sorted(rows)]


def quality_scores(cfg: AugmentConfig, rows: list[dict]) -> np.ndarray:
    """Per-sample score for the filter: CLIP text-image agreement or the MoSo influence score."""
    from PIL import Image

    from tiger.metrics.clip_score import clip_scores
    from tiger.metrics.embeddings import load_embedder

    emb = load_embedder(cfg.model, allow_random=False)
    out = Path(cfg.out)
    px = np.stack([np.asarray(Image.open(out / r["file"]).convert("L")) for r in rows])
    feats = emb.images(px)
    if cfg.filter == "clip":
        return clip_scores(feats, emb.texts([r["text"] for r in rows]))
    if cfg.filter == "moso":
        if not cfg.data:
            raise AugmentInputError("--filter moso needs --data (real labelled images train its probe)")
        from tiger.data import load_metadata, split
        from tiger.metrics.influence import moso_scores
        from training.train_classifier import image_path, label_of

        real = [r for r in split(load_metadata(cfg.data), seed=cfg.split_seed)["train"] if label_of(r.get("label")) is not None]
        size = px.shape[1]
        rpx = np.stack([np.asarray(Image.open(image_path(Path(cfg.data), r)).convert("L").resize((size, size), Image.BICUBIC))
                        for r in real])
        return moso_scores(emb.images(rpx), [label_of(r["label"]) for r in real], feats,
                           [label_of(r["label"]) for r in rows])
    raise AugmentInputError(f"--filter must be none, clip or moso, got {cfg.filter!r}")


def finalize(cfg: AugmentConfig) -> dict:
    """Merge rank manifests, apply the filter, write manifest.jsonl (+ manifest_all.jsonl, augment.json)."""
    out = Path(cfg.out)
    rows = merge_manifests(out)
    summary = {"config": asdict(cfg), "n_generated": len(rows), "n_requested": cfg.n}
    if cfg.filter != "none" and rows:
        from tiger.metrics.influence import keep_mask

        scores = quality_scores(cfg, rows)
        keep = keep_mask(scores, cfg.drop)
        for r, s, k in zip(rows, scores, keep):
            r["score"], r["kept"] = float(s), bool(k)
        (out / "manifest_all.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        summary["filter"] = {"kind": cfg.filter, "drop": cfg.drop, "kept": int(keep.sum()),
                             "score_min_kept": float(scores[keep].min()) if keep.any() else None}
        rows = [r for r in rows if r["kept"]]
    tmp = out / "manifest.jsonl.tmp"
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(out / "manifest.jsonl")
    summary["n_in_manifest"] = len(rows)
    (out / "augment.json").write_text(json.dumps(summary, indent=2))
    return summary


def run_augment(cfg: AugmentConfig) -> dict:
    """Single-process or accelerate-launched generation, then (rank 0) the merged manifest."""
    class_of(cfg.label)
    if cfg.n < 1:
        raise AugmentInputError("--n must be at least 1")
    from accelerate import PartialState

    state = PartialState(cpu=cfg.device == "cpu") if _launched() else None
    rank, world = (state.process_index, state.num_processes) if state else (0, 1)
    if state is not None and cfg.device is None and state.device.type == "cuda":
        cfg.device = str(state.device)
    generate_shard(cfg, rank, world)
    if state is not None:
        state.wait_for_everyone()
    summary = finalize(cfg) if rank == 0 else {}
    if state is not None:
        state.wait_for_everyone()
    return summary


def _launched() -> bool:
    import os

    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Bulk synthetic images for one class/subtype (resumable, shardable)")
    ap.add_argument("--model", required=True, help="Tiger model folder")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--label", default="benign", help="benign, malignant or a subtype")
    ap.add_argument("--data", default=None, help="canonical dataset folder (chip distribution, MoSo probe)")
    ap.add_argument("--chips-from", default="data", choices=["data", "profile"])
    ap.add_argument("--encoders", default="both", choices=["both", "fg", "bg", "none"])
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--guidance-scale", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--filter", default="none", choices=["none", "clip", "moso"])
    ap.add_argument("--drop", type=float, default=0.2, help="fraction dropped by the filter")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--device", default=None)
    a = ap.parse_args(argv)
    cfg = AugmentConfig(**{k.replace("-", "_"): v for k, v in vars(a).items()})
    try:
        summary = run_augment(cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if summary:
        print(json.dumps({k: v for k, v in summary.items() if k != "config"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
