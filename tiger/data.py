"""The canonical dataset folder as Python objects: metadata, leakage-free splits, a torch Dataset.

Folder layout (written by `tiger.importers`): `metadata.jsonl`, `images/<id>.png`,
`masks/<id>.png`, `sobel/<id>.png`, `report.json`. Splits are made *by group* (near-duplicate
images and views of one case share a group) and stratified by label, so no picture of a test
nodule is ever seen in training; they are seeded, hence reproducible across programs.
"""
from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from tiger.knowledge import validate_chips

SPLITS = ("train", "val", "test")
LABEL_INDEX = {"benign": 0, "malignant": 1, None: -1}
REQUIRED_KEYS = ("id", "file_name", "mask", "condition_bg", "text_fg", "text_bg", "label", "group")


class DatasetFormatError(ValueError):
    """A folder or metadata row that does not follow the canonical format."""


def load_metadata(folder: str | Path) -> list[dict]:
    """Rows of `<folder>/metadata.jsonl`; a clear error names the first bad line."""
    path = Path(folder) / "metadata.jsonl"
    if not path.is_file():
        raise DatasetFormatError(f"{folder} is not a canonical dataset folder (no metadata.jsonl); "
                                 "create one with `python -m training.prepare`.")
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DatasetFormatError(f"{path} line {n} is not JSON: {exc}") from exc
            missing = [k for k in REQUIRED_KEYS if k not in row]
            if missing:
                raise DatasetFormatError(f"{path} line {n} lacks {', '.join(missing)}.")
            if row["label"] not in LABEL_INDEX:
                raise DatasetFormatError(f"{path} line {n}: label {row['label']!r} is not benign/malignant/null.")
            rows.append(row)
    return rows


def split(records: list[dict], seed: int = 0, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
          ) -> dict[str, list[dict]]:
    """Train/val/test by `group`, stratified by the group's majority label, seeded.

    Groups are dealt per label stratum (shuffled, largest first) to whichever split is
    furthest below its target share of samples, so fractions hold in samples, not groups.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}.")
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[str(r["group"])].append(r)
    strata: dict[str, list[str]] = defaultdict(list)
    for g, rows in groups.items():
        labels = [str(r["label"]) for r in rows]
        strata[max(sorted(set(labels)), key=labels.count)].append(g)
    rng = random.Random(seed)
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for label in sorted(strata):
        names = sorted(strata[label])
        rng.shuffle(names)
        names.sort(key=lambda g: -len(groups[g]))  # stable: big groups first, random among equals
        total = sum(len(groups[g]) for g in names)
        have = dict.fromkeys(SPLITS, 0)
        for g in names:
            deficit = {s: fractions[i] * total - have[s] for i, s in enumerate(SPLITS)}
            s = max(SPLITS, key=lambda k: (deficit[k], -SPLITS.index(k)))
            out[s].extend(groups[g])
            have[s] += len(groups[g])
    return out


def read_grey(path: Path, size: int | None = None) -> np.ndarray:
    """A dataset image file as uint8 greyscale, resized (bilinear) to size x size when given and
    different: the one loader of canonical dataset files for training and evaluation."""
    with Image.open(path) as im:
        im = im.convert("L")
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


class TigerDataset(Dataset):
    """Items: image (1xHxW in [-1,1]), mask (1xHxW {0,1}), sobel (1xHxW [0,1]), texts, label, id.

    `split` picks "train"/"val"/"test" of `split(records, seed)`; `augment` adds a random
    horizontal flip applied to image, mask and Sobel map alike (ultrasound left/right is
    arbitrary for a nodule; up/down is not: depth runs downwards).
    """

    def __init__(self, folder: str | Path, records: list[dict] | None = None, split: str | None = None,
                 seed: int = 0, augment: bool = False) -> None:
        self.folder = Path(folder)
        rows = load_metadata(self.folder) if records is None else list(records)
        if split is not None:
            if split not in SPLITS:
                raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
            rows = globals()["split"](rows, seed=seed)[split]
        self.records = rows
        self.augment = augment
        self._rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.records)

    def _path(self, rel: str) -> Path:
        p = (self.folder / rel).resolve()
        if self.folder.resolve() not in p.parents:
            raise DatasetFormatError(f"metadata path {rel!r} points outside {self.folder}.")
        return p

    def __getitem__(self, i: int) -> dict:
        r = self.records[i]
        image = read_grey(self._path(r["file_name"]))
        mask = read_grey(self._path(r["mask"]))
        sobel = read_grey(self._path(r["condition_bg"]))
        if not (image.shape == mask.shape == sobel.shape):
            raise DatasetFormatError(f"sample {r['id']}: image {image.shape}, mask {mask.shape} and "
                                     f"sobel {sobel.shape} differ in size.")
        if self.augment and self._rng.random() < 0.5:
            image, mask, sobel = image[:, ::-1], mask[:, ::-1], sobel[:, ::-1]

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None]

        return {
            "image": t(image) / 127.5 - 1.0,
            "mask": (t(mask) > 127).float(),
            "sobel": t(sobel) / 255.0,
            "text_fg": r["text_fg"],
            "text_bg": r["text_bg"],
            "text": r.get("text") or f"{r['text_fg']}. {r['text_bg']}",
            "label": LABEL_INDEX[r["label"]],
            "id": r["id"],
        }


def record_chips(rec: dict) -> dict:
    """The chips a canonical row was described with (features, label, subtype, plane), validated:
    what the model was prompted with for that image, to re-synthesise it or evaluate against it."""
    chips = dict(rec.get("features") or {})
    if rec.get("label") in ("benign", "malignant"):
        chips["malignancy"] = rec["label"]
    if rec.get("subtype"):
        chips["subtype"] = rec["subtype"]
    if rec.get("plane"):
        chips["plane"] = rec["plane"]
    return validate_chips(chips)
