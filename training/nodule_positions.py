"""Where the nodules of a split sit and how big they are: the share in each third of the gland,
the spread of their centroids across the frame, and their long side against the gland's short
side (the unit of the size chips, `conditions.SIZE_FRACTIONS`) and against the frame (JSON).

Why: a model learns where nodules go from where the training nodules are. DDTI puts almost all
of them in the middle third, which is why the fine stage needs `--shifts` (training/views.py)
before a nodule placed at a pole can be drawn there.

  python -m training.nodule_positions --data data/ddti-128 [--split train]
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from tiger import conditions
from training.tensor_data import load_split


def nodule_positions(data: str, split: str = "train") -> dict:
    """Counts per third (the eval's `conditions.location_of`), centroid x / width quantiles and
    long-side quantiles (over the gland's short side, over the frame's short side)."""
    d = load_split(data, split)
    xs, thirds = [], {name: 0 for name in conditions.LOCATIONS}
    over_gland, over_frame = [], []
    for i in range(len(d)):
        m = d.masks[i, 0].numpy() > 0.5
        if not m.any():
            continue
        xs.append(float(np.nonzero(m)[1].mean()) / m.shape[1])
        r = d.records[i]
        grey = ((d.images[i, 0].numpy() + 1.0) * 127.5).round().astype(np.uint8)
        gland = (conditions.GlandExtent.from_dict(r["gland"]) if r.get("gland")
                 else conditions.estimate_gland_extent(grey, m))
        thirds[conditions.location_of(m, gland)] += 1
        ys, xs_ = np.nonzero(m)
        long_side = max(np.ptp(ys) + 1, np.ptp(xs_) + 1)
        over_gland.append(long_side / max(1, min(gland.width, gland.height)))
        over_frame.append(long_side / min(m.shape))
    q = lambda v: np.quantile(v, [0.05, 0.25, 0.5, 0.75, 0.95]).round(3).tolist() if v else []  # noqa: E731
    return {"split": split, "nodules": len(xs), "thirds": thirds,
            "centroid_x_over_width_q05_q25_q50_q75_q95": q(xs),
            "long_side_over_gland_short_side_q05_q25_q50_q75_q95": q(over_gland),
            "long_side_over_frame_q05_q25_q50_q75_q95": q(over_frame)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="train")
    args = ap.parse_args(argv)
    print(json.dumps(nodule_positions(args.data, args.split)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
