"""A generic folder: images, masks and one CSV with label/text columns.

CSV columns (header names, case-insensitive): `image` (or `file`/`file_name`, a path relative
to the folder; required), `mask` (optional path; blank = no outline), `label` (benign /
malignant / blank), `text` (optional prompt-like text parsed by the knowledge base), `plane`,
and any feature group of `tiger.knowledge.GROUPS` as its own column (e.g. `composition`).
Each bad row (missing or corrupt image, mask of the wrong size, unknown label or feature,
path outside the folder) is a per-file error in the report; the other rows are imported.
"""
from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tiger import knowledge
from tiger.greyscale import to_grey
from tiger.importers.common import RawSample
from tiger.importers.report import ImportInputError, ImportReport

_IMAGE_COLS = ("image", "file", "file_name", "filename")
_LABELS = {"benign": "benign", "malignant": "malignant", "0": "benign", "1": "malignant", "": None}


class RowError(ValueError):
    """One CSV row cannot be imported."""


def _find_csv(root: Path, csv_name: str | None) -> Path:
    if csv_name:
        p = (root / csv_name).resolve()
        if not p.is_file():
            raise ImportInputError(f"CSV file {csv_name} not found in {root}.")
        return p
    found = sorted(root.glob("*.csv"))
    if len(found) != 1:
        raise ImportInputError(f"{root} must hold exactly one *.csv (found {len(found)}); pass --csv to choose.")
    return found[0]


def _inside(root: Path, rel: str) -> Path:
    p = (root / rel).resolve()
    if root.resolve() not in p.parents:
        raise RowError(f"path {rel!r} points outside the input folder")
    return p


def _grey(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise RowError(f"{what} {path.name} not found")
    try:
        return to_grey(path)
    except Exception as exc:
        raise RowError(f"unreadable {what} {path.name} ({type(exc).__name__}: {exc})") from exc


def _row_sample(root: Path, row: dict, line: int, report: ImportReport) -> RawSample:
    image_rel = next((row[c] for c in _IMAGE_COLS if row.get(c)), None)
    if not image_rel:
        raise RowError("no image path (column image/file/file_name)")
    image_path = _inside(root, image_rel)
    image = _grey(image_path, "image")
    mask = np.zeros(image.shape, bool)
    if row.get("mask"):
        m = _grey(_inside(root, row["mask"]), "mask")
        if m.shape != image.shape:
            raise RowError(f"mask {row['mask']} is {m.shape[1]}x{m.shape[0]} but the image is "
                           f"{image.shape[1]}x{image.shape[0]}")
        mask = m > 127
    label_text = (row.get("label") or "").strip().lower()
    if label_text not in _LABELS:
        raise RowError(f"unknown label {row.get('label')!r} (expected benign, malignant or blank)")
    label = _LABELS[label_text]
    try:
        chips = {g: row[g] for g in knowledge.GROUPS if row.get(g)}
        if row.get("text"):
            try:
                for g, v in knowledge.parse_prompt(row["text"]).items():
                    chips.setdefault(g, v)
            except knowledge.ChipError as exc:
                report.notes.append(f"line {line}: text not fully understood, kept in source.text ({exc})")
        chips = knowledge.validate_chips(chips)
    except knowledge.ChipError as exc:
        raise RowError(str(exc)) from exc
    if label is None and "malignancy" in chips:
        label = chips["malignancy"]
    elif label is not None and chips.get("malignancy", label) != label:
        raise RowError(f"label {label} contradicts the text/columns ({chips['malignancy']})")
    subtype = chips.pop("subtype", None)
    plane = chips.pop("plane", None)
    chips.pop("malignancy", None)
    raw = image_path.read_bytes()
    return RawSample(
        id=f"generic-{Path(image_rel).stem}".replace(" ", "_"), image=image, mask=mask, label=label,
        label_source="csv" if label else "none", subtype=subtype, features=chips,
        source={"dataset": "generic", "id": image_rel, "text": row.get("text") or None},
        plane=plane, plane_source="csv" if plane else "unknown", dup_key=hashlib.md5(raw).hexdigest(),
        group_hint=row.get("group") or None,
    )


def iter_generic(input_dir: str | Path, report: ImportReport, csv: str | None = None) -> Iterator[RawSample]:
    """Yield one RawSample per good CSV row."""
    root = Path(input_dir).resolve()
    with open(_find_csv(root, csv), newline="", encoding="utf-8-sig") as f:
        rows = [{(k or "").strip().lower(): (v or "").strip() for k, v in r.items()} for r in _reader(f)]
    for line, row in enumerate(tqdm(rows, desc="reading generic", unit="row"), start=2):
        report.files_seen += 1
        try:
            sample = _row_sample(root, row, line, report)
        except RowError as exc:
            name = next((row[c] for c in _IMAGE_COLS if row.get(c)), f"line {line}")
            report.error(name, str(exc))
            continue
        report.images_imported += 1
        yield sample


def _reader(f):
    return csv.DictReader(f)
