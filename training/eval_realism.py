"""Realism of one sampling setting on a held-out split: the model card's realism checks, alone.

Why: a sampling ablation (control guidance beta, the share of steps it takes) changes realism
as much as adherence; v3 at beta 2 moved the nodule but a CNN told its images from real ones
95% of the time. The full model card takes 40-60 minutes on 2 cores; this runs only its realism
part, on the validation split by default (ablations choose on validation; the card reports
test), in a few minutes:

- the real-vs-synthetic CNN judge (`training.card_realism`; 0.5 = indistinguishable);
- FID and CMMD of the generated set against the same real images (domain-CLIP embeddings of
  the model folder);
- nearest-neighbour RMS to the training images, generated against real held-out (no copies).

The generated side is the card's (b): one image per real record, with its chips and its nodule
mask and a training background of its plane, so only the sampling arguments differ between arms.

    python -m training.eval_realism --model runs/v3 --data data/ddti-128 --beta 2 --beta-until 0.5
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from tiger import knowledge
from tiger.data import load_metadata, read_grey, record_chips, split


def evaluate(pipe, embedder, data: Path, split_name: str = "val", split_seed: int = 0, n: int = 64,
             steps: int = 25, seed: int = 0, gen_kw: dict | None = None, device: str = "cpu") -> dict:
    """Judge accuracy, FID/CMMD and nearest-neighbour distances of one sampling setting."""
    from tiger.metrics.report import evaluate_sets
    from training.card_realism import nearest_neighbour_distance, real_vs_synthetic_accuracy
    from training.card_samples import generate_for_records

    parts = split(load_metadata(data), seed=split_seed)
    rng = np.random.default_rng(seed)
    held = [parts[split_name][i] for i in rng.permutation(len(parts[split_name]))[:n]]
    size = pipe.image_size
    real = np.stack([read_grey(data / r["file_name"], size) for r in held])
    train_px = np.stack([read_grey(data / r["file_name"], size) for r in parts["train"]])
    gen = generate_for_records(pipe, held, data, "both", steps, seed, f"generating ({split_name})", gen_kw)
    texts = [knowledge.full_prompt(record_chips(r)) for r in held]
    metrics = evaluate_sets(real, gen, embedder=embedder, reference=train_px, texts=texts, size=None)["metrics"]
    judge = real_vs_synthetic_accuracy(real, gen, seed=seed, device=device)
    nn_gen, nn_real = nearest_neighbour_distance(gen, train_px), nearest_neighbour_distance(real, train_px)
    return {"split": split_name, "n_images": len(held), "steps": steps, "seed": seed, "gen_kw": dict(gen_kw or {}),
            "judge_accuracy": judge["accuracy"], "fid": metrics.get("fid"), "cmmd": metrics.get("cmmd"),
            "nearest_neighbour_rms": {"generated_min": float(nn_gen.min()), "real_min": float(nn_real.min()),
                                      "generated_mean": float(nn_gen.mean()), "real_mean": float(nn_real.mean())}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model folder")
    ap.add_argument("--data", required=True, help="canonical dataset folder (the real images)")
    ap.add_argument("--split", default="val", choices=("val", "test"))
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=64, help="images (at most the split's size)")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--beta", type=float, default=None, help="control guidance beta (default: the model's)")
    ap.add_argument("--beta-until", type=float, default=None,
                    help="share of the steps (from the first) that take beta (default: the model's)")
    ap.add_argument("--out", default=None, help="write the JSON here too")
    args = ap.parse_args(argv)
    gen_kw = {k: v for k, v in (("beta", args.beta), ("beta_until", args.beta_until)) if v is not None}

    from tiger.metrics.embeddings import load_embedder
    from tiger.pipeline import TigerPipeline

    t0 = time.time()
    model = Path(args.model)
    pipe = TigerPipeline.from_pretrained(model, device="cpu")
    pipe.set_progress_bar_config(disable=True)
    result = evaluate(pipe, load_embedder(model, device="cpu"), Path(args.data), args.split, args.split_seed,
                      args.n, args.steps, args.seed, gen_kw)
    result["command"] = "python -m training.eval_realism " + " ".join(argv if argv is not None else sys.argv[1:])
    result["seconds"] = round(time.time() - t0, 1)
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
