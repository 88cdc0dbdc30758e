"""BUSI (Breast Ultrasound Images) as distributed: benign/, malignant/, normal/ class folders.

Files are `<class> (N).png` with masks `<class> (N)_mask.png` and `_mask_1.png`, `_mask_2.png`
for further lesions (united into one mask). Labels come from the class folder (label_source
"class folder"); "normal" images have no lesion: label null, empty mask, kept as background
examples. BUSI has no report text, so texts carry only the class (name-guided generation).
The pictures are already cropped by the dataset authors, so no frame detection is applied.
Exact duplicates are collapsed by md5; near-duplicates (including BUSI's conflicting-label
twins) share a leakage group through the pHash grouping of `write_canonical`.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tiger.greyscale import to_grey
from tiger.importers.common import RawSample
from tiger.importers.report import ImportInputError, ImportReport

CLASSES = {"benign": "benign", "malignant": "malignant", "normal": None}
_MASK = re.compile(r"^(?P<stem>.+)_mask(?:_\d+)?$")


def iter_busi(input_dir: str | Path, report: ImportReport) -> Iterator[RawSample]:
    """Yield one RawSample per readable BUSI image (masks united, class label)."""
    root = Path(input_dir)
    folders = [root / c for c in CLASSES if (root / c).is_dir()]
    if not folders:
        raise ImportInputError(f"{root} is not a BUSI folder: expected benign/, malignant/ or normal/ inside it.")
    items = []
    for folder in folders:
        masks: dict[str, list[Path]] = {}
        images = []
        for p in sorted(folder.glob("*.png")):
            m = _MASK.match(p.stem)
            if m:
                masks.setdefault(m.group("stem"), []).append(p)
            else:
                images.append(p)
        items += [(folder.name, p, masks.get(p.stem, [])) for p in images]
        orphans = set(masks) - {p.stem for p in images}
        for o in sorted(orphans):
            report.error(f"{folder.name}/{o}_mask.png", "mask without its image")
    items.sort(key=lambda t: (t[0], _number(t[1].stem)))
    for cls, path, mask_paths in tqdm(items, desc="reading busi", unit="image"):
        report.files_seen += 1 + len(mask_paths)
        rel = f"{cls}/{path.name}"
        try:
            raw = path.read_bytes()
            image = to_grey(path)
        except Exception as exc:
            report.error(rel, f"unreadable image ({type(exc).__name__}: {exc})")
            continue
        mask = np.zeros(image.shape, bool)
        bad = None
        for mp in mask_paths:
            try:
                m = to_grey(mp)
            except Exception as exc:
                bad = f"unreadable mask {mp.name} ({type(exc).__name__})"
                break
            if m.shape != image.shape:
                bad = f"mask {mp.name} is {m.shape[1]}x{m.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}"
                break
            mask |= m > 127
        if bad:
            report.error(rel, bad)
            continue
        label = CLASSES[cls]
        if label is not None and not mask.any():
            report.error(rel, "lesion image without a usable mask")
            continue
        report.images_imported += 1
        n = _number(path.stem)
        yield RawSample(
            id=f"busi-{cls}-{n}", image=image, mask=mask, label=label, label_source="class folder",
            subtype=None, features={}, source={"dataset": "busi", "id": path.stem, "class": cls},
            plane=None, plane_source="unknown", dup_key=hashlib.md5(raw).hexdigest(), extra={"organ": "breast"},
        )


def _number(stem: str) -> int:
    m = re.search(r"\((\d+)\)", stem)
    return int(m.group(1)) if m else -1
