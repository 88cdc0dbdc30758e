"""DDTI (Digital Database of Thyroid Images) as distributed: xml/<case>.xml + images/<case>_<n>.jpg.

What the importer does with the real-world quirks (see ../shared/data/README.md):
- every XML is parsed; one that is not XML is a per-file error, the others go on;
- `<svg>` JSON cut mid-list (2,500 chars) is salvaged: each region keeps its complete points
  (>= 3 needed for an outline); empty svgs are skipped marks; both are reported;
- scanner panels and burned-in text are cropped away (`frame.find_views`), coloured
  caliper marks are painted over; dual-view images become one sample per view, each view
  keeping only the outlines whose centroid lies in it; a view without outline is skipped
  (reported) because a nodule sample without its mask would teach the FG encoder "no nodule";
- labels come from TI-RADS only (2-3 benign, 4a-5 malignant, blank -> null), label_source
  "tirads"; DDTI has no pathology subtype, so subtype = "benign" for benign labels and null
  otherwise;
- plane: a dual view is transverse (left) + longitudinal (right), the scanner's layout; a
  single view is called longitudinal when its estimated gland extent is at least twice as
  wide as tall, transverse otherwise (plane_source says which rule decided).
"""
from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from tiger import conditions, knowledge
from tiger.importers.common import RawSample
from tiger.importers.frame import colour_overlay, find_views, remove_overlay
from tiger.importers.report import ImportInputError, ImportReport

FEATURE_FIELDS = {"composition": "composition", "echogenicity": "echogenicity",
                  "margins": "margin", "calcifications": "calcification"}
TIRADS_LABELS = {"2": "benign", "3": "benign", "4a": "malignant", "4b": "malignant",
                 "4c": "malignant", "5": "malignant"}
_POINT = re.compile(r'\{\s*"x"\s*:\s*(-?\d+(?:\.\d+)?)\s*,\s*"y"\s*:\s*(-?\d+(?:\.\d+)?)\s*\}')


class DDTIFormatError(ValueError):
    """One DDTI file cannot be read (not XML, bad image, unknown feature text)."""


def parse_svg(text: str) -> tuple[list[list[tuple[float, float]]], bool]:
    """Outlines (lists of (x, y)) from a mark's svg text; second value: True if salvaged.

    Valid JSON is read as such; otherwise each `"points"` region keeps its complete
    {"x":..,"y":..} pairs (a truncated tail is dropped). Regions with < 3 points are dropped.
    """
    text = (text or "").strip()
    if not text:
        return [], False
    try:
        data = json.loads(text)
        regions = [[(float(p["x"]), float(p["y"])) for p in r.get("points", [])] for r in data]
        salvaged = False
    except (ValueError, TypeError, KeyError, AttributeError):
        chunks = text.split('"points"')[1:]
        regions = [[(float(x), float(y)) for x, y in _POINT.findall(c)] for c in chunks]
        salvaged = True
    return [r for r in regions if len(r) >= 3], salvaged


def label_from_tirads(value: str | None) -> str | None:
    """TI-RADS 2-3 -> benign, 4a-5 -> malignant, blank -> None; anything else is an error."""
    v = (value or "").strip().lower().replace("tr", "")
    if not v:
        return None
    if v not in TIRADS_LABELS:
        raise DDTIFormatError(f"Unknown TI-RADS value {value!r} (expected 2, 3, 4a, 4b, 4c or 5).")
    return TIRADS_LABELS[v]


def case_features(root: ET.Element) -> dict:
    """Knowledge chips of a case from its feature fields plus phrases found in `reporteco`."""
    chips = {}
    for tag, group in FEATURE_FIELDS.items():
        try:
            v = knowledge.normalize_value(group, root.findtext(tag))
        except knowledge.ChipError as exc:
            raise DDTIFormatError(str(exc)) from exc
        if v is not None:
            chips[group] = v
    for g, v in knowledge.features_from_report(root.findtext("reporteco")).items():
        chips.setdefault(g, v)
    return knowledge.validate_chips(chips)


def _outline_mask(shape: tuple[int, int], outlines: list[list[tuple[float, float]]]) -> np.ndarray:
    canvas = Image.new("L", (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(canvas)
    for pts in outlines:
        draw.polygon(pts, fill=255, outline=255)
    return np.asarray(canvas) > 0


def _centroid(pts: list[tuple[float, float]]) -> tuple[float, float]:
    a = np.asarray(pts, dtype=np.float64)
    return float(a[:, 0].mean()), float(a[:, 1].mean())


def _view_of(pt: tuple[float, float], views: list[tuple[int, int, int, int]]) -> int:
    x, y = pt
    dists = [max(x0 - x, 0, x - x1) + max(y0 - y, 0, y - y1) for x0, y0, x1, y1 in views]
    return int(np.argmin(dists))


def _read_case(path: Path) -> ET.Element:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise DDTIFormatError(f"not valid XML ({exc})") from exc
    if root.tag != "case" or root.findtext("number") is None:
        raise DDTIFormatError("XML has no <case><number> (not a DDTI case file)")
    return root


def iter_ddti(input_dir: str | Path, report: ImportReport) -> Iterator[RawSample]:
    """Yield one RawSample per outlined view of every readable DDTI image."""
    root_dir = Path(input_dir)
    xml_dir, img_dir = root_dir / "xml", root_dir / "images"
    if not xml_dir.is_dir() or not img_dir.is_dir():
        raise ImportInputError(f"{root_dir} is not a DDTI folder: expected xml/ and images/ inside it.")
    xml_files = sorted(xml_dir.glob("*.xml"), key=lambda p: (len(p.stem), p.stem))
    if not xml_files:
        raise ImportInputError(f"No XML files in {xml_dir}.")
    for xml_path in tqdm(xml_files, desc="reading ddti", unit="case"):
        report.files_seen += 1
        try:
            case = _read_case(xml_path)
            number = case.findtext("number").strip()
            features = case_features(case)
            label = label_from_tirads(case.findtext("tirads"))
        except DDTIFormatError as exc:
            report.error(xml_path.name, str(exc))
            continue
        marks: dict[str, list] = {}
        for mark in case.findall("mark"):
            n = (mark.findtext("image") or "").strip()
            outlines, salvaged = parse_svg(mark.findtext("svg"))
            ref = f"{number}_{n}"
            if salvaged:
                report.salvaged_svg.append({"image": ref, "regions": len(outlines),
                                            "points": sum(len(o) for o in outlines)})
            if not outlines:
                report.skipped_marks.append({"image": ref, "reason": "empty svg" if not (mark.findtext("svg") or "").strip()
                                             else "no outline with 3 complete points"})
                continue
            marks.setdefault(n, []).extend(outlines)
        for n, outlines in sorted(marks.items()):
            yield from _image_samples(img_dir / f"{number}_{n}.jpg", number, n, outlines,
                                      features, label, case.findtext("tirads"), report)


def _image_samples(path: Path, number: str, n: str, outlines: list, features: dict, label: str | None,
                   tirads: str | None, report: ImportReport) -> Iterator[RawSample]:
    report.files_seen += 1
    try:
        raw = path.read_bytes()
        with Image.open(path) as im:
            im.load()
            rgb = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        report.error(path.name, "image listed in the XML is missing")
        return
    except Exception as exc:  # PIL raises many types for broken files
        report.error(path.name, f"unreadable image ({type(exc).__name__}: {exc})")
        return
    grey = remove_overlay(rgb.mean(axis=-1).astype(np.uint8), colour_overlay(rgb))
    views = find_views(grey)
    if not views:
        report.error(path.name, "no ultrasound picture found in the image")
        return
    report.images_imported += 1
    md5 = hashlib.md5(raw).hexdigest()
    per_view: dict[int, list] = {}
    for o in outlines:
        per_view.setdefault(_view_of(_centroid(o), views), []).append(o)
    if len(views) > 1:
        report.split_views += 1
    full_mask_shape = grey.shape
    for vi, (x0, y0, x1, y1) in enumerate(views):
        ident = f"ddti-{number}_{n}" + (f"-v{vi}" if len(views) > 1 else "")
        if vi not in per_view:
            report.views_without_outline.append(ident)
            continue
        mask = _outline_mask(full_mask_shape, per_view[vi])[y0:y1, x0:x1]
        if not mask.any():
            report.skipped_marks.append({"image": ident, "reason": "outline lies outside the picture"})
            continue
        image = grey[y0:y1, x0:x1]
        if len(views) > 1:
            plane, plane_source = ("transverse" if vi == 0 else "longitudinal"), "dual-view order"
        else:
            g = conditions.estimate_gland_extent(image)
            plane = "longitudinal" if g.width >= 2 * g.height else "transverse"
            plane_source = "gland aspect estimate"
        yield RawSample(
            id=ident, image=image, mask=mask, label=label, label_source="tirads" if label else "none",
            subtype="benign" if label == "benign" else None, features=features,
            source={"dataset": "ddti", "id": f"{number}_{n}", "case": number, "view": vi,
                    "views": len(views), "box": [x0, y0, x1, y1], "tirads": (tirads or "").strip() or None},
            plane=plane, plane_source=plane_source, dup_key=f"{md5}:{vi}", group_hint=f"ddti-case-{number}",
        )
