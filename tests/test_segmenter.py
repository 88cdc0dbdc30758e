"""Segmenter: YOLO polygon export round trip, offline training from the yaml, IoU/Dice report,
and the tiger.segment wrapper used by Reference mode."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tiger.metrics.errors import MetricInputError
from tiger.metrics.segmentation import iou_dice, mean_iou_dice

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from training import train_segmenter  # noqa: E402


def test_iou_dice_known_cases():
    a = np.zeros((10, 10), np.uint8)
    a[:, :5] = 255
    b = np.zeros((10, 10), np.uint8)
    b[:, 2:7] = 1
    assert iou_dice(a, a) == (1.0, 1.0)
    assert iou_dice(a, b) == pytest.approx((30 / 70, 2 * 30 / 100))
    assert iou_dice(a, 255 - a) == (0.0, 0.0)
    assert iou_dice(np.zeros((4, 4)), np.zeros((4, 4))) == (1.0, 1.0)
    assert mean_iou_dice([np.zeros((4, 4))], [np.ones((4, 4))])["missed"] == 1
    with pytest.raises(MetricInputError, match="shapes differ"):
        iou_dice(np.zeros((4, 4)), np.zeros((5, 4)))


def test_polygons_round_trip_real_masks(ddti_small):
    """Rasterising the exported polygons gives back the real masks (IoU > 0.85 each)."""
    rows = [json.loads(x) for x in (ddti_small / "metadata.jsonl").read_text().splitlines()][:8]
    for r in rows:
        mask = np.asarray(Image.open(ddti_small / r["mask"]).convert("L"))
        polys = train_segmenter.mask_polygons(mask)
        assert polys, r["id"]
        canvas = Image.new("L", mask.shape[::-1], 0)
        for p in polys:
            ImageDraw.Draw(canvas).polygon([tuple(map(float, xy)) for xy in p], fill=255, outline=255)
        assert iou_dice(np.asarray(canvas), mask)[0] > 0.85, r["id"]


def test_train_segmenter_offline_and_report(ddti_small, tmp_path, monkeypatch):
    import socket

    def no_network(*a, **k):
        raise AssertionError("the segmenter tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    out = tmp_path / "seg"
    model = tmp_path / "model"
    rc = train_segmenter.main(["--data", str(ddti_small), "--out", str(out), "--epochs", "1", "--imgsz", "128",
                               "--batch", "8", "--install", str(model)])
    assert rc == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["test"]["n"] == rep["split_counts"]["test"]["images"] > 0
    assert 0 <= rep["test"]["iou"] <= 1 and 0 <= rep["test"]["dice"] <= 1
    labels = list((out / "dataset" / "labels" / "train").glob("*.txt"))
    assert labels and all(line.startswith("0 ") for f in labels for line in f.read_text().splitlines())

    from tiger.segment import Segmenter, default_segmenter

    seg = default_segmenter(model)
    assert isinstance(seg, Segmenter)
    img = Image.open(next((ddti_small / "images").glob("*.png")))
    mask = seg.predict_mask(img)
    assert mask.shape == np.asarray(img).shape[:2] and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
    rgb = np.repeat(np.asarray(img.convert("L"))[..., None], 3, 2)
    assert seg.predict_mask(rgb).shape == rgb.shape[:2]


def test_segmenter_missing_weights_and_empty_data(tmp_path):
    from tiger.segment import Segmenter, SegmenterError, default_segmenter

    assert default_segmenter(tmp_path) is None
    with pytest.raises(SegmenterError, match="do not exist"):
        Segmenter.load(tmp_path / "none.pt")
    (tmp_path / "metadata.jsonl").write_text("")
    assert train_segmenter.main(["--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
