"""Nodule segmentation with ultralytics YOLOv8n-seg, for Reference mode and unmasked imports.

Reference mode needs the nodule mask of a real image, and an imported image without a mask
needs one before it can be used as a condition; a small instance-segmentation network trained
here (training/train_segmenter.py, from the yaml, no downloaded weights) supplies it. The
wrapper hides ultralytics: it takes greyscale images in any of the library's forms and returns
a uint8 0/255 mask of the image's own size. It never downloads (ultralytics runs with
YOLO_OFFLINE, which `import tiger` sets).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import tiger  # noqa: F401  (offline settings before ultralytics is imported)
from tiger.greyscale import GreyscaleError, to_grey
from tiger.paths import DEFAULT_MODEL

#: where a model folder keeps its segmenter weights
SEGMENTER_SUBDIR = "segmenter"
WEIGHTS_NAME = "yolov8n-seg-nodule.pt"


class SegmenterError(ValueError):
    """Missing weights or an image the segmenter cannot read."""


def _grey(image: Any) -> np.ndarray:
    try:
        return to_grey(image)
    except GreyscaleError as e:
        raise SegmenterError(f"the segmenter needs a greyscale or RGB image: {e}") from e


class Segmenter:
    """A trained YOLOv8-seg nodule segmenter."""

    def __init__(self, model: Any, weights: Path, imgsz: int):
        self.model = model
        self.weights = weights
        self.imgsz = imgsz

    @classmethod
    def load(cls, weights: str | Path, imgsz: int | None = None) -> "Segmenter":
        weights = Path(weights)
        if not weights.is_file():
            raise SegmenterError(f"segmenter weights {weights} do not exist (train them with training/train_segmenter.py)")
        from ultralytics import YOLO

        model = YOLO(str(weights), task="segment")
        size = imgsz or int(getattr(model, "overrides", {}).get("imgsz", 128) or 128)
        return cls(model, weights, size)

    def predict_masks(self, images: list, conf: float = 0.25, union: bool = False) -> list[np.ndarray]:
        """One uint8 0/255 mask per image, at the image's size: the most confident nodule
        (or, with `union`, all of them); an all-zero mask when nothing is found."""
        greys = [_grey(im) for im in images]
        rgb = [np.repeat(g[..., None], 3, axis=2) for g in greys]
        results = self.model.predict(rgb, imgsz=self.imgsz, conf=conf, retina_masks=True, verbose=False,
                                     device="cpu" if not _cuda() else None)
        out = []
        for g, r in zip(greys, results):
            mask = np.zeros(g.shape, np.uint8)
            if r.masks is not None and len(r.masks.data):
                data = r.masks.data.cpu().numpy() > 0.5
                if data.shape[1:] != g.shape:
                    data = np.stack([np.asarray(Image.fromarray(d.astype(np.uint8) * 255).resize(g.shape[::-1])) > 127
                                     for d in data])
                if union:
                    mask[data.any(0)] = 255
                else:
                    best = int(r.boxes.conf.argmax()) if r.boxes is not None and len(r.boxes) else 0
                    mask[data[best]] = 255
            out.append(mask)
        return out

    def predict_mask(self, image: Any, conf: float = 0.25, union: bool = False) -> np.ndarray:
        return self.predict_masks([image], conf=conf, union=union)[0]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def default_weights(model_folder: str | Path = DEFAULT_MODEL) -> Path:
    return Path(model_folder) / SEGMENTER_SUBDIR / WEIGHTS_NAME


def default_segmenter(model_folder: str | Path = DEFAULT_MODEL) -> Segmenter | None:
    """The segmenter shipped with a model folder, or None when it has none (the UI then asks for a mask)."""
    w = default_weights(model_folder)
    return Segmenter.load(w) if w.is_file() else None
