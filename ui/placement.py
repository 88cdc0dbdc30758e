"""Where the nodule sits: the state behind the canvas, and every way the user can move it.

The state keeps the *template* shape (the user's mask or the default ellipse) separately from
the placed mask, and every change re-places the template with tiger.conditions.place_mask.
Why: repeated moves and resizes of an already-placed mask would accumulate resampling damage;
placing the pristine template each time keeps the outline exact however often it is dragged.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from tiger import conditions as cond
from ui import canvas

SIZE_RANGE = (0.1, 0.9)   # nodule long side as a fraction of the gland's short side (slider)

Placement = dict[str, Any]  # keys: sobel, gland, background_id, shape, mask, frac, extension, location


def size_fraction(size: str | float | None) -> float:
    """Size chip or slider value -> fraction of the gland's short side."""
    if size is None or size == "unspecified":
        return cond.SIZE_FRACTIONS["middle"]
    if isinstance(size, str):
        if size not in cond.SIZE_FRACTIONS:
            raise cond.ConditionError(f"Unknown size {size!r}; expected small, middle or large.")
        return cond.SIZE_FRACTIONS[size]
    frac = float(size)
    if not (SIZE_RANGE[0] <= frac <= SIZE_RANGE[1]):
        raise cond.ConditionError(f"Size must be between {SIZE_RANGE[0]} and {SIZE_RANGE[1]} of the gland, got {frac}.")
    return frac


def nearest_size_chip(frac: float) -> str:
    """The size chip (small/middle/large) closest to a slider fraction."""
    return min(cond.SIZE_FRACTIONS, key=lambda k: abs(cond.SIZE_FRACTIONS[k] - float(frac)))


def _extent(state: Placement) -> cond.GlandExtent:
    return cond.GlandExtent.from_dict(state["gland"])


def _place(state: Placement, location: str | None = None, center: tuple[float, float] | None = None) -> Placement:
    """Re-place the template at `location` or `center` (else where the mask is now)."""
    extent = _extent(state)
    shape = state["shape"]
    if location is None and center is None and state.get("mask") is not None and np.any(state["mask"]):
        ys2, xs2 = np.nonzero(state["mask"])
        center = (float(xs2.mean()), float(ys2.mean()))
    mask = cond.place_mask(shape, extent, location=location, gland_fraction=float(state["frac"]),
                           extension=bool(state["extension"]), center=center)
    new = dict(state)
    new["mask"] = mask
    new["location"] = cond.location_of(mask, extent)
    return new


def new_placement(sobel: np.ndarray, gland: cond.GlandExtent | dict | None = None,
                  background_id: str | None = None, shape: np.ndarray | None = None,
                  size: str | float | None = "middle", location: str | None = "middle",
                  extension: bool = False) -> Placement:
    """A placement on a background; the gland is estimated from the Sobel map when not given."""
    sobel = np.asarray(sobel, dtype=np.uint8)
    if gland is None:
        gland = cond.estimate_gland_extent(sobel)
    gland_dict = gland.to_dict() if isinstance(gland, cond.GlandExtent) else dict(gland)
    if shape is None:
        shape = cond.default_mask(sobel.shape, "middle")
    state: Placement = {"sobel": sobel, "gland": gland_dict, "background_id": background_id,
                        "shape": np.asarray(shape, dtype=np.uint8), "mask": None,
                        "frac": size_fraction(size), "extension": bool(extension), "location": None}
    return _place(state, location=location if location not in (None, "unspecified") else "middle")


def move_to_location(state: Placement, location: str) -> Placement:
    """Choosing a pole chip moves the nodule into that third."""
    return _place(state, location=location)


def move_to_center(state: Placement, cx: float, cy: float) -> Placement:
    """A drop on the canvas pins the centroid there; the Location follows from the third."""
    return _place(state, center=(float(cx), float(cy)))


def set_size(state: Placement, size: str | float) -> Placement:
    new = dict(state)
    new["frac"] = size_fraction(size)
    return _place(new)


def set_extension(state: Placement, extension: bool) -> Placement:
    new = dict(state)
    new["extension"] = bool(extension)
    return _place(new)


def set_shape(state: Placement, mask: np.ndarray, keep_position: bool = True) -> Placement:
    """Use a drawn/uploaded mask as the template (already checked by ui.uploads)."""
    new = dict(state)
    new["shape"] = np.asarray(mask, dtype=np.uint8)
    new["mask"] = new["mask"] if keep_position else None
    return _place(new)


def adopt_mask(state: Placement, mask: np.ndarray) -> Placement:
    """Take an already placed mask exactly as it is (recall of a result's condition).

    The size fraction is set to what the mask measures, so later drags keep its size.
    """
    mask = (np.asarray(mask) > 0).astype(np.uint8) * 255
    extent = _extent(state)
    ys, xs = np.nonzero(mask)
    new = dict(state)
    new["shape"] = mask
    new["mask"] = mask
    new["frac"] = max(np.ptp(ys) + 1, np.ptp(xs) + 1) / min(extent.width, extent.height)
    new["location"] = cond.location_of(mask, extent)
    return new


def set_gland(state: Placement, x0: float, y0: float, x1: float, y1: float) -> Placement:
    """The user's correction of the estimated gland box (the estimate is only a heuristic)."""
    old = _extent(state)
    h, w = state["sobel"].shape
    extent = cond.GlandExtent(int(x0), int(y0), int(x1), int(y1), old.axis, old.upper).clipped((h, w))
    new = dict(state)
    new["gland"] = extent.to_dict()
    return _place(new, location=state.get("location") or "middle")


def canvas_for(state: Placement | None, note: str = "") -> dict[str, Any]:
    """The canvas value for a placement (or the empty canvas with `note`)."""
    if not state:
        return canvas.empty_value(note or "Choose a background to place the nodule.")
    extent = _extent(state)
    box = (extent.x0, extent.y0, extent.x1, extent.y1)
    return canvas.canvas_value(state["sobel"], box, cond.thirds(extent), state["mask"],
                               location=state["location"] or "", note=note)


def condition_preview(state: Placement | None, scale: int = 2) -> Image.Image | None:
    """The two conditions as the model will see them: Sobel map (grey) with the mask in red."""
    if not state:
        return None
    sobel = state["sobel"].astype(np.float32)
    rgb = np.stack([sobel] * 3, axis=-1)
    if state.get("mask") is not None:
        m = state["mask"] > 0
        rgb[m] = 0.45 * rgb[m] + 0.55 * np.array([255.0, 60.0, 40.0])
    img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img
