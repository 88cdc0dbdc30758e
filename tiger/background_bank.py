"""The background bank: Sobel edge maps of TRAINING images, with their plane and gland extent.

Why a bank: Diversify mode needs a BG condition (a Sobel map) without a real image from the
user, and the paper's rule is that BG conditions come from training images only, never from
test images (otherwise generated images would leak test anatomy into evaluations). The bank is
built once from the training split, stored inside the model folder (`background_bank/`), and the
pipeline, the UI's background picker and bulk augmentation all read it from there.

Folder layout: `index.jsonl` (one row per background: id, file, plane, gland, source) and
`sobel/<id>.png` (uint8 greyscale).
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from tiger.conditions import GlandExtent, estimate_gland_extent, sobel_map


class BackgroundError(ValueError):
    """An unknown background id or an unreadable bank; the message says which."""


_SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]+")


def _safe_id(raw: str) -> str:
    """File-system-safe id (ids become file names; no path may leave the bank folder)."""
    s = _SAFE_ID.sub("_", str(raw)).strip("._") or "bg"
    return s[:120]


class BackgroundBank:
    """Read access to a bank folder: `.list(plane=None)`, `.get(id) -> (sobel, gland)`."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        index = self.folder / "index.jsonl"
        if not index.exists():
            raise BackgroundError(f"background bank {self.folder} is missing index.jsonl")
        self._rows: dict[str, dict] = {}
        for n, line in enumerate(index.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                self._rows[str(row["id"])] = row
            except (ValueError, KeyError) as e:
                raise BackgroundError(f"background bank index.jsonl line {n} is unreadable ({e})") from e

    def __len__(self) -> int:
        return len(self._rows)

    def list(self, plane: str | None = None) -> list[dict]:
        """Rows (id, file, plane, gland, source), optionally only those of one plane."""
        return [dict(r) for r in self._rows.values() if plane is None or r.get("plane") == plane]

    def ids(self, plane: str | None = None) -> list[str]:
        return [r["id"] for r in self.list(plane)]

    def get(self, bg_id: str, size: int | None = None) -> tuple[np.ndarray, GlandExtent]:
        """The Sobel map (uint8 HxW) and gland extent of one background.

        With `size`, the map is resized to size x size and the extent scaled with it.
        """
        row = self._rows.get(str(bg_id))
        if row is None:
            raise BackgroundError(f"unknown background id {bg_id!r}; the bank has {len(self)} backgrounds")
        path = (self.folder / row["file"]).resolve()
        if self.folder.resolve() not in path.parents:
            raise BackgroundError(f"background {bg_id!r} points outside the bank")
        try:
            sob = np.asarray(Image.open(path).convert("L"))
        except (OSError, ValueError) as e:
            raise BackgroundError(f"background {bg_id!r}: cannot read {row['file']} ({e})") from e
        gland = GlandExtent.from_dict(row["gland"]) if row.get("gland") else estimate_gland_extent(sob)
        if size is not None and sob.shape != (size, size):
            h, w = sob.shape
            sob = np.asarray(Image.fromarray(sob).resize((size, size), Image.BILINEAR))
            sx, sy = size / w, size / h
            gland = GlandExtent(int(gland.x0 * sx), int(gland.y0 * sy), max(int(round(gland.x1 * sx)), int(gland.x0 * sx) + 1),
                                max(int(round(gland.y1 * sy)), int(gland.y0 * sy) + 1), gland.axis, gland.upper)
        return sob, gland

    def pick(self, plane: str | None = None, seed: int = 0) -> str:
        """A background id chosen reproducibly by seed (of the plane when it has any)."""
        ids = self.ids(plane) or self.ids()
        if not ids:
            raise BackgroundError("the background bank is empty")
        return sorted(ids)[seed % len(ids)]

    def save(self, out_folder: str | Path) -> "BackgroundBank":
        """Copy the bank into another folder (e.g. a model folder's background_bank/)."""
        out = Path(out_folder)
        if out.resolve() == self.folder.resolve():
            return self
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(self.folder, out)
        return BackgroundBank(out)

    @classmethod
    def build(cls, dataset_folder: str | Path, records: Iterable[dict], out_folder: str | Path,
              size: int | None = None) -> "BackgroundBank":
        """Build a bank from canonical-dataset rows. Pass the TRAINING split's rows only.

        The Sobel map is the dataset's `condition_bg`/`sobel/<id>.png` when present, else computed
        from the image with `tiger.conditions.sobel_map`; the gland extent is the row's `gland`
        when present, else estimated from the image (with the nodule mask as a hint).
        """
        ds = Path(dataset_folder)
        out = Path(out_folder)
        (out / "sobel").mkdir(parents=True, exist_ok=True)
        rows = []
        for rec in records:
            rid = _safe_id(rec.get("id") or Path(rec["file_name"]).stem)
            sob_path = ds / rec["condition_bg"] if rec.get("condition_bg") else ds / "sobel" / f"{rid}.png"
            img = None
            if sob_path.exists():
                sob = np.asarray(Image.open(sob_path).convert("L"))
            else:
                img = np.asarray(Image.open(ds / rec["file_name"]).convert("L"))
                sob = sobel_map(img)
            resized = size is not None and sob.shape != (size, size)
            if resized:
                sob = np.asarray(Image.fromarray(sob).resize((size, size), Image.BILINEAR))
            if rec.get("gland") and not resized:
                gland = GlandExtent.from_dict(rec["gland"])
            else:
                mask = None
                mpath = ds / rec["mask"] if rec.get("mask") else None
                if mpath is not None and mpath.exists():
                    mask = np.asarray(Image.open(mpath).convert("L").resize(sob.shape[::-1], Image.NEAREST))
                if img is None:
                    ipath = ds / rec["file_name"]
                    img = np.asarray(Image.open(ipath).convert("L")) if ipath.exists() else sob
                if img.shape != sob.shape:
                    img = np.asarray(Image.fromarray(img).resize(sob.shape[::-1], Image.BILINEAR))
                gland = estimate_gland_extent(img, mask=mask)
            Image.fromarray(sob).save(out / "sobel" / f"{rid}.png")
            rows.append({"id": rid, "file": f"sobel/{rid}.png", "plane": rec.get("plane"),
                         "gland": gland.to_dict(), "source": rec.get("source")})
        (out / "index.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return cls(out)
