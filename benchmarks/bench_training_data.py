"""Batch supply of the training stages: tensors loaded once (training/tensor_data.py `load_split`,
batches drawn by index) vs a torch DataLoader over `tiger.data.TigerDataset` (PNG decode per
item), the usual recipe. Both yield the same batches (image, mask, Sobel map, flipped) for
the same number of steps; the DataLoader is the baseline measured in the same run.

Prints one JSON object: seconds per batch of each, the ratio (goal < 0.1: batch supply must
be negligible next to a training step) and the one-off load time of the tensor path.

    python benchmarks/bench_training_data.py [--data data/ddti-128] [--batches 60] [--batch-size 16]
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
from tqdm import tqdm  # noqa: E402

from tiger.paths import DATA_ROOT  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from tiger.data import TigerDataset, load_metadata, split
    from training.draws import batch_indices, random_hflip, step_generator
    from training.tensor_data import load_split

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DATA_ROOT / "ddti-128"))
    ap.add_argument("--batches", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args(argv)
    if not (Path(args.data) / "metadata.jsonl").exists():
        print(json.dumps({"error": f"{args.data} is not a canonical dataset folder; run training.prepare first"}))
        return 2

    t = time.perf_counter()
    data = load_split(args.data, "train")
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    for step in tqdm(range(args.batches), desc="tensors"):
        g = step_generator(data.images.device, 0, step)
        idx = batch_indices(len(data), args.batch_size, g)
        x, m, s = random_hflip(g, data.images[idx], data.masks[idx], data.sobel[idx])
    tensor_s = (time.perf_counter() - t) / args.batches

    recs = split(load_metadata(args.data))["train"]
    loader = torch.utils.data.DataLoader(TigerDataset(args.data, records=recs, augment=True),
                                         batch_size=args.batch_size, shuffle=True, num_workers=0)
    t = time.perf_counter()
    n, it = 0, iter(loader)
    with tqdm(total=args.batches, desc="DataLoader") as bar:
        while n < args.batches:
            try:
                next(it)
            except StopIteration:
                it = iter(loader)
                continue
            n += 1
            bar.update(1)
    loader_s = (time.perf_counter() - t) / args.batches
    print(json.dumps({
        "benchmark": "training batch supply", "train_images": len(data), "batch_size": args.batch_size,
        "tensor_s_per_batch": round(tensor_s, 6), "dataloader_s_per_batch": round(loader_s, 6),
        "ratio_tensor_vs_dataloader": round(tensor_s / loader_s, 4), "goal_ratio_below": 0.1,
        "tensor_one_off_load_s": round(load_s, 3),
    }, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
