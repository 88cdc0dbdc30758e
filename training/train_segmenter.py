"""Train the nodule segmenter: ultralytics YOLOv8n-seg from its yaml (no weights), offline.

  python training/train_segmenter.py --data data/ddti --out runs/segmenter --epochs 30 --imgsz 128 \
      [--install models/tiger-tiny-ddti]

Steps: (1) the canonical dataset's grouped split (tiger.data.split, same seed as everything else)
is exported as a YOLO segmentation dataset: images plus one polygon per connected component of
the nodule mask (normalised coordinates, class 0 "nodule"); (2) YOLO("yolov8n-seg.yaml") trains
on it with amp=False (ultralytics' AMP check would download yolo11n.pt) and plots=False;
(3) the best weights segment the TEST split and the report gives mask IoU and Dice against the
true masks (report.json). `--install` copies the weights to `<model>/segmenter/`, where
`tiger.segment.default_segmenter` finds them.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tiger  # noqa: F401,E402  (YOLO_OFFLINE, YOLO_CONFIG_DIR before ultralytics)
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from tqdm import tqdm  # noqa: E402


class SegmenterDataError(ValueError):
    """A dataset the segmenter cannot train on (no masks, empty split)."""


def mask_polygons(mask: np.ndarray, min_area: float = 4.0) -> list[np.ndarray]:
    """Outer contours of the mask's components as N x 2 (x, y) pixel polygons (>= 3 points)."""
    import cv2

    m = (np.asarray(mask) > 127).astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1, 2) for c in contours if len(c) >= 3 and cv2.contourArea(c) >= min_area]


def export_yolo(data: str | Path, out: str | Path, split_seed: int = 0) -> tuple[Path, dict]:
    """Write a YOLO-seg dataset (images/, labels/, data.yaml) from a canonical folder."""
    from tiger.data import load_metadata, split

    data, out = Path(data), Path(out)
    rows = [r for r in load_metadata(data) if r.get("mask") and (data / r["mask"]).is_file()]
    if not rows:
        raise SegmenterDataError(f"{data} has no rows with a nodule mask")
    parts = split(rows, seed=split_seed)
    counts = {}
    for name, part in parts.items():
        if not part:
            raise SegmenterDataError(f"the {name} split of {data} is empty")
        (out / "images" / name).mkdir(parents=True, exist_ok=True)
        (out / "labels" / name).mkdir(parents=True, exist_ok=True)
        n_poly = 0
        for r in tqdm(part, desc=f"export {name}", leave=False):
            img = Image.open(data / r["file_name"]).convert("L")
            mask = np.asarray(Image.open(data / r["mask"]).convert("L"))
            w, h = img.size
            stem = Path(r["file_name"]).stem
            img.save(out / "images" / name / f"{stem}.png")
            lines = []
            for poly in mask_polygons(mask):
                xy = (poly / np.array([mask.shape[1], mask.shape[0]])).clip(0, 1).ravel()
                lines.append("0 " + " ".join(f"{v:.5f}" for v in xy))
            n_poly += len(lines)
            (out / "labels" / name / f"{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
        counts[name] = {"images": len(part), "polygons": n_poly, "ids": [str(r["id"]) for r in part]}
    yaml = out / "data.yaml"
    yaml.write_text(f"path: {out.resolve()}\ntrain: images/train\nval: images/val\ntest: images/test\nnames:\n  0: nodule\n")
    return yaml, counts


def train_yolo(yaml: Path, out: Path, epochs: int, imgsz: int, batch: int, seed: int, device: str | None) -> Path:
    """Train YOLOv8n-seg from its yaml; returns the best weights."""
    from ultralytics import YOLO

    model = YOLO("yolov8n-seg.yaml", task="segment")
    model.train(data=str(yaml), epochs=epochs, imgsz=imgsz, batch=batch, seed=seed, deterministic=True,
                device=device or "cpu", amp=False, plots=False, workers=0, pretrained=False,
                project=str(out.resolve()), name="yolo", exist_ok=True, verbose=False, val=True)
    best = out / "yolo" / "weights" / "best.pt"
    if not best.is_file():
        best = out / "yolo" / "weights" / "last.pt"
    if not best.is_file():
        raise SegmenterDataError(f"training wrote no weights under {out / 'yolo' / 'weights'}")
    return best


def evaluate_segmenter(weights: Path, data: Path, ids: Sequence[str], imgsz: int) -> dict:
    """Mask IoU / Dice of the segmenter on the given rows (the test split)."""
    from tiger.data import load_metadata
    from tiger.metrics.segmentation import mean_iou_dice
    from tiger.segment import Segmenter

    by_id = {str(r["id"]): r for r in load_metadata(data)}
    rows = [by_id[i] for i in ids]
    seg = Segmenter.load(weights, imgsz=imgsz)
    preds = seg.predict_masks([data / r["file_name"] for r in rows])
    truths = [np.asarray(Image.open(data / r["mask"]).convert("L")) for r in rows]
    return mean_iou_dice(preds, truths)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train YOLOv8n-seg (from yaml, offline) on canonical nodule masks")
    ap.add_argument("--data", required=True, help="canonical dataset folder with masks/")
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--imgsz", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--install", default=None, help="model folder to copy the weights into (<model>/segmenter/)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    try:
        yaml, counts = export_yolo(a.data, out / "dataset", a.split_seed)
        best = train_yolo(yaml, out, a.epochs, a.imgsz, a.batch, a.seed, a.device)
        test = evaluate_segmenter(best, Path(a.data), counts["test"]["ids"], a.imgsz)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    final = out / "segmenter.pt"
    shutil.copyfile(best, final)
    report = {"data": str(a.data), "split_seed": a.split_seed, "epochs": a.epochs, "imgsz": a.imgsz,
              "weights": str(final), "architecture": "yolov8n-seg.yaml (from scratch, no pretrained weights)",
              "split_counts": {k: {kk: vv for kk, vv in v.items() if kk != "ids"} for k, v in counts.items()},
              "test": test}
    if a.install:
        from tiger.segment import default_weights

        target = default_weights(a.install)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(final, target)
        report["installed"] = str(target)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({"test_iou": test["iou"], "test_dice": test["dice"], "n": test["n"], "weights": str(final)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
