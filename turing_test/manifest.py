"""Study input: cases from a manifest (CSV / JSON / JSONL), a folder, or a generated batch.

Everything is validated before anything is created, and every bad row is named (row number,
file, reason) in one ManifestError, so an admin fixes the file once instead of once per error.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from turing_test.errors import ManifestError
from turing_test.features import check_features, groups
from turing_test.models import TRUTHS

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
_IMAGE_KEYS = ("image", "file", "file_name", "path", "filename")
_TEXT_KEYS = ("description", "text", "text_fg")
_FEATURE_KEYS = ("features", "chips")
_METHOD_KEYS = ("method", "model_id", "model")


@dataclass
class CaseSpec:
    """One case as the admin described it, before validation (paths may still be wrong)."""

    image: str
    truth: str
    method: str
    subtype: str = ""
    description: str = ""
    features: dict = field(default_factory=dict)
    where: str = ""  # "manifest.csv row 4": used in error messages


@dataclass
class ValidCase:
    """A validated case: resolved image path, content hash and perceptual hash."""

    image_path: Path
    sha256: str
    phash: int
    truth: str
    method: str
    subtype: str
    description: str
    features: dict


def _first(row: dict, keys: tuple[str, ...], default=None):
    for key in keys:
        if row.get(key) not in (None, ""):
            return row[key]
    return default


def _parse_features(raw) -> dict:
    """Features come as a dict, a JSON object string, or 'group=value; group=value'."""
    if raw in (None, ""):
        return {}
    if isinstance(raw, dict):
        return dict(raw)
    text = str(raw).strip()
    if text.startswith("{"):
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError("features JSON must be an object")
        return value
    out = {}
    for part in text.split(";"):
        if part.strip():
            if "=" not in part:
                raise ValueError(f"feature {part.strip()!r} is not 'group=value'")
            g, v = part.split("=", 1)
            out[g.strip()] = v.strip()
    return out


def _spec_from_row(row: dict, base: Path, where: str, default_truth: str | None = None,
                   default_method: str | None = None) -> CaseSpec | str:
    """A CaseSpec, or a problem text for this row."""
    if not isinstance(row, dict):
        return f"{where}: expected an object, got {type(row).__name__}"
    image = _first(row, _IMAGE_KEYS)
    if not image:
        return f"{where}: no image column (one of {', '.join(_IMAGE_KEYS)})"
    path = Path(str(image))
    if not path.is_absolute():
        path = base / path
    features_raw = _first(row, _FEATURE_KEYS, {})
    try:
        features = _parse_features(features_raw)
    except (ValueError, json.JSONDecodeError) as exc:
        return f"{where}: features unreadable ({exc})"
    features = {k: v for k, v in features.items() if v not in (None, "")}
    subtype = str(row.get("subtype") or features.get("subtype") or "")
    return CaseSpec(
        image=str(path),
        truth=str(row.get("truth") or default_truth or "").strip().lower(),
        method=str(_first(row, _METHOD_KEYS, default_method) or "").strip(),
        subtype=subtype.strip().lower(),
        description=str(_first(row, _TEXT_KEYS, "") or "").strip(),
        features=features,
        where=where,
    )


def _rows_of(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8-sig")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return list(csv.DictReader(io.StringIO(text)))
    if suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if suffix == ".json":
        data = json.loads(text)
        if isinstance(data, dict):
            data = data.get("cases", data.get("records", data.get("images")))
        if not isinstance(data, list):
            raise ManifestError([f"{path.name}: expected a list of cases or {{\"cases\": [...]}}"])
        return data
    raise ManifestError([f"{path.name}: unknown manifest type {suffix!r} (use .csv, .json or .jsonl)"])


def load_manifest(path: str | Path, default_truth: str | None = None,
                  default_method: str | None = None) -> list[CaseSpec]:
    """Read a manifest; relative image paths are relative to the manifest's folder.

    Raises ManifestError naming every unreadable row (validation of files comes later).
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError([f"manifest {path} does not exist"])
    try:
        rows = _rows_of(path)
    except (json.JSONDecodeError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError([f"{path.name}: not readable ({exc})"]) from None
    specs, problems = [], []
    for i, row in enumerate(rows, start=1):
        spec = _spec_from_row(row, path.parent, f"{path.name} row {i}", default_truth, default_method)
        (problems.append if isinstance(spec, str) else specs.append)(spec)
    if problems:
        raise ManifestError(problems)
    return specs


def cases_from_folder(folder: str | Path, truth: str, method: str) -> list[CaseSpec]:
    """Every image of a folder as cases with one truth and method.

    A canonical dataset folder (metadata.jsonl) also contributes text, subtype and features.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ManifestError([f"folder {folder} does not exist"])
    meta = folder / "metadata.jsonl"
    if meta.is_file():
        specs = load_manifest(meta, default_truth=truth, default_method=method)
        for spec in specs:  # canonical rows carry a label, not a truth: the caller's truth wins
            spec.truth, spec.method = truth, method
            spec.features = {k: v for k, v in spec.features.items() if k in groups()}
        return specs
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and "_mask" not in p.stem)
    if not files:
        raise ManifestError([f"folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"])
    return [CaseSpec(image=str(p), truth=truth, method=method, where=f"{folder.name}/{p.name}") for p in files]


def cases_from_generated_batch(batch_manifest: str | Path, real_folder: str | Path | None = None,
                               real_method: str = "real") -> list[CaseSpec]:
    """A generated batch (the manifest the Synthesize page exports) plus a folder of real images."""
    specs = load_manifest(batch_manifest, default_truth="synthetic", default_method="tiger")
    if real_folder is not None:
        specs += cases_from_folder(real_folder, truth="real", method=real_method)
    return specs


def _image_problem(path: Path) -> str | None:
    if not path.is_file():
        return "image file not found"
    try:
        with Image.open(path) as im:
            im.verify()
    except (UnidentifiedImageError, OSError) as exc:
        return f"not a readable image ({exc.__class__.__name__})"
    return None


def validate_cases(specs: list[CaseSpec], progress: bool = False) -> list[ValidCase]:
    """Check every spec; raise ManifestError listing all problems, else return ValidCases.

    Checks: truth value, method present, image exists and decodes, features known, duplicate
    images (by content hash, so a copy under another name is caught too).
    """
    from tiger.imagehash import phash

    if not specs:
        raise ManifestError(["the study has no cases"])
    problems: list[str] = []
    valid: list[ValidCase] = []
    seen: dict[str, str] = {}
    for spec in tqdm(specs, desc="checking cases", unit="case", disable=not progress):
        where = spec.where or spec.image
        row_problems = []
        if spec.truth not in TRUTHS:
            row_problems.append(f"truth must be 'real' or 'synthetic', got {spec.truth!r}")
        if not spec.method:
            row_problems.append("method is empty")
        row_problems += check_features(spec.features)
        path = Path(spec.image).resolve()
        image_problem = _image_problem(path)
        if image_problem:
            row_problems.append(f"{image_problem}: {spec.image}")
        digest = None
        if not image_problem:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest in seen:
                row_problems.append(f"duplicate image (same content as {seen[digest]})")
            else:
                seen[digest] = where
        if row_problems:
            problems += [f"{where}: {p}" for p in row_problems]
            continue
        with Image.open(path) as im:
            h = phash(im.convert("L"))
        valid.append(ValidCase(path, digest, int(h), spec.truth, spec.method, spec.subtype,
                               spec.description, dict(spec.features)))
    if problems:
        raise ManifestError(problems)
    return valid
