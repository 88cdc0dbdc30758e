"""What every importer shares: square crop + resize, conditions, texts, duplicates, groups, writing.

An importer only has to yield `RawSample`s (one cropped greyscale view + its nodule mask +
what the source says about it); `write_canonical` turns them into the canonical folder of
`docs/CONTRACTS.md` so that DDTI, BUSI and generic folders come out exactly alike.
"""
from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from tiger import conditions, knowledge
from tiger.imagehash import phash
from tiger.importers.report import ImportInputError, ImportReport

#: near-duplicate threshold (bits of 64), validated on BUSI: at 8 the grouping finds 131 multi-image
#: groups holding 296 images (the dataset notes report about 129 groups / 291 images), with the
#: conflicting-label twins such as "benign (433)"/"malignant (145)" inside; 10 already merges
#: unrelated images into groups of 6, 16 into a group of 40 (tests/test_importers.py).
PHASH_THRESHOLD = 8


@dataclass
class RawSample:
    """One view as an importer found it, before squaring/resizing."""

    id: str
    image: np.ndarray                 # uint8 HxW greyscale, already free of panels/text
    mask: np.ndarray                  # bool HxW, nodule outline(s) of this view
    label: str | None                 # "benign" | "malignant" | None
    label_source: str
    subtype: str | None
    features: dict                    # knowledge chips of the nodule (validated)
    source: dict                      # {"dataset", "id", ...}
    plane: str | None = None
    plane_source: str = "unknown"
    dup_key: str | None = None        # exact-duplicate key (md5 of the file + view index)
    group_hint: str | None = None     # samples with the same hint share a group (same case)
    extra: dict = field(default_factory=dict)


def square_window(shape: tuple[int, int], mask: np.ndarray) -> tuple[int, int, int, int]:
    """The largest square inside `shape`, slid along the long side to centre the nodule.

    Crop, not pad: padding would put black bars (a frame) back into every image, which the
    generator would then learn; the crop loses only tissue far from the nodule.
    """
    h, w = shape
    s = min(h, w)
    if mask.any():
        ys, xs = np.nonzero(mask)
        cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
    else:
        cy, cx = h / 2, w / 2
    x0 = int(round(min(max(cx - s / 2, 0), w - s)))
    y0 = int(round(min(max(cy - s / 2, 0), h - s)))
    return x0, y0, x0 + s, y0 + s


def to_square(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Square-crop around the nodule and resize; returns image, 0/255 mask, kept mask fraction."""
    x0, y0, x1, y1 = square_window(image.shape, mask)
    img = Image.fromarray(image[y0:y1, x0:x1]).resize((size, size), Image.Resampling.BICUBIC)
    m_crop = mask[y0:y1, x0:x1]
    kept = float(m_crop.sum()) / float(mask.sum()) if mask.any() else 1.0
    m = Image.fromarray(m_crop.astype(np.uint8) * 255).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img), (np.asarray(m) >= 128).astype(np.uint8) * 255, kept


def size_chip(mask: np.ndarray, gland: conditions.GlandExtent) -> str:
    """small / middle / large from the nodule's long side relative to the gland's short side."""
    ys, xs = np.nonzero(mask)
    long_side = max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
    r = long_side / max(1, min(gland.width, gland.height))
    lo = (conditions.SIZE_FRACTIONS["small"] + conditions.SIZE_FRACTIONS["middle"]) / 2
    hi = (conditions.SIZE_FRACTIONS["middle"] + conditions.SIZE_FRACTIONS["large"]) / 2
    return "small" if r < lo else ("middle" if r < hi else "large")


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.p = list(range(n))

    def find(self, i: int) -> int:
        while self.p[i] != i:
            self.p[i] = self.p[self.p[i]]
            i = self.p[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.p[max(ra, rb)] = min(ra, rb)


def assign_groups(rows: list[dict], hashes: list[int], hints: list[str | None], threshold: int,
                  links: Iterable[tuple[str, str]] = ()) -> None:
    """Set row['group']: union of same-hint samples, linked hints (cases that shared an exact
    duplicate image) and pHash near-duplicates (hamming <= threshold). Group id = first member id."""
    n = len(rows)
    uf = _UnionFind(n)
    first: dict[str, int] = {}
    for i, h in enumerate(hints):
        if h is not None:
            uf.union(first.setdefault(h, i), i)
    for a, b in links:
        if a in first and b in first:
            uf.union(first[a], first[b])
    if n:
        bits = np.array([[(h >> k) & 1 for k in range(64)] for h in hashes], dtype=np.uint8)
        for i in range(n - 1):
            d = (bits[i + 1:] != bits[i]).sum(axis=1)
            for j in np.nonzero(d <= threshold)[0]:
                uf.union(i, i + 1 + int(j))
    for i, r in enumerate(rows):
        r["group"] = rows[uf.find(i)]["id"]


def _conflicts(a: RawSample, b: RawSample) -> dict:
    out = {}
    for key in ("label", "subtype"):
        if getattr(a, key) != getattr(b, key):
            out[key] = [getattr(a, key), getattr(b, key)]
    for g in sorted(set(a.features) | set(b.features)):
        if a.features.get(g) != b.features.get(g):
            out[g] = [a.features.get(g), b.features.get(g)]
    return out


def collapse_duplicates(samples: Iterable[RawSample], report: ImportReport) -> list[RawSample]:
    """Keep the first sample of each exact duplicate (same dup_key); record merges/conflicts.

    The duplicates' group hints are united with the kept one (via `extra['merged_hints']`), so
    a case that shared an image with another case lands in the same leakage group.
    """
    kept: dict[str, RawSample] = {}
    out: list[RawSample] = []
    merged: dict[str, dict] = {}
    for s in samples:
        if s.dup_key is None or s.dup_key not in kept:
            if s.dup_key is not None:
                kept[s.dup_key] = s
            out.append(s)
            continue
        k = kept[s.dup_key]
        entry = merged.setdefault(k.id, {"kept": k.id, "merged": [], "conflicts": {}})
        entry["merged"].append(s.id)
        for key, vals in _conflicts(k, s).items():
            entry["conflicts"].setdefault(key, []).append({s.id: vals[1], k.id: vals[0]})
        k.extra.setdefault("merged_ids", []).append(s.id)
        if s.group_hint is not None:
            k.extra.setdefault("merged_hints", []).append(s.group_hint)
    report.duplicates = list(merged.values())
    return out


def write_canonical(samples: Iterable[RawSample], out: str | Path, size: int, report: ImportReport,
                    total: int | None = None, phash_threshold: int = PHASH_THRESHOLD) -> list[dict]:
    """Write images/, masks/, sobel/, metadata.jsonl and report.json into `out` (replaced).

    Each sample gets its FG condition (mask), BG condition (Sobel map with the nodule region refilled, `conditions.background_sobel`), gland extent, derived
    location/size chips, and FG/BG texts from the knowledge base.
    """
    if not isinstance(size, int) or size < 16:
        raise ImportInputError(f"--size must be an integer of at least 16 pixels, got {size!r}.")
    t0 = time.perf_counter()
    out = Path(out)
    if out.exists():
        if not (out / "metadata.jsonl").exists() and any(out.iterdir()):
            raise ImportInputError(f"Refusing to overwrite {out}: it exists and is not a canonical dataset folder.")
        shutil.rmtree(out)
    for sub in ("images", "masks", "sobel"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    report.phash_threshold = phash_threshold
    unique = collapse_duplicates(samples, report)
    rows, hashes, hints = [], [], []
    union_hints: list[tuple[str, str]] = []
    for s in tqdm(unique, total=len(unique) or total, desc=f"writing {report.source}", unit="sample"):
        img, mask, kept = to_square(s.image, s.mask, size)
        if s.mask.any() and kept < 0.999:
            report.nodules_cut.append({"id": s.id, "kept_fraction": round(kept, 3)})
        sobel = conditions.background_sobel(img, mask if mask.any() else None)
        gland = conditions.estimate_gland_extent(img, mask if mask.any() else None)
        feats = dict(s.features)
        derived = []
        if mask.any():
            if "location" not in feats:
                feats["location"] = conditions.location_of(mask, gland)
                derived.append("location")
            if "size" not in feats:
                feats["size"] = size_chip(mask > 0, gland)
                derived.append("size")
        chips = dict(feats)
        if s.label is not None:
            chips["malignancy"] = s.label
        if s.subtype is not None:
            chips["subtype"] = s.subtype
        if s.plane is not None:
            chips["plane"] = s.plane
        chips = knowledge.validate_chips(chips)
        text_fg, text_bg = knowledge.build_prompts(chips, organ=s.extra.get("organ", "thyroid"))
        name = f"{s.id}.png"
        Image.fromarray(img).save(out / "images" / name)
        Image.fromarray(mask).save(out / "masks" / name)
        Image.fromarray(sobel).save(out / "sobel" / name)
        row = {
            "id": s.id, "file_name": f"images/{name}", "mask": f"masks/{name}",
            "condition_fg": f"masks/{name}", "condition_bg": f"sobel/{name}",
            "text_fg": text_fg, "text_bg": text_bg, "text": f"{text_fg}. {text_bg}",
            "label": s.label, "label_source": s.label_source, "subtype": s.subtype,
            "features": {g: v for g, v in chips.items() if g not in ("malignancy", "subtype", "plane")},
            "derived_features": derived, "plane": s.plane, "plane_source": s.plane_source,
            "group": None, "gland": gland.to_dict(), "source": s.source,
        }
        if s.extra.get("merged_ids"):
            row["merged_ids"] = s.extra["merged_ids"]
        rows.append(row)
        hashes.append(phash(img))
        hints.append(s.group_hint)
        union_hints += [(s.group_hint, h) for h in s.extra.get("merged_hints", []) if s.group_hint]
    # cases that shared an exact duplicate are one patient/group as far as leakage goes
    assign_groups(rows, hashes, hints, phash_threshold, links=union_hints)
    with open(out / "metadata.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    report.count_rows(rows)
    report.seconds = round(time.perf_counter() - t0, 2)
    report.complete = True
    report.write(out)
    return rows
