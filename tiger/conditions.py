"""Condition images for the two encoders: Sobel BG maps and nodule-mask placement.

All functions are pure numpy/scipy (no torch, no I/O) so the UI, the importers, the pipeline
and property tests share one definition of "upper pole", "large" and "extension".

Conventions (image coordinates, x to the right, y down, boxes half-open [x0, x1) x [y0, y1)):
- the gland extent is a box; its long axis is `axis`; `upper` says which end of that axis is
  the upper pole ("start" = left/top, the usual screen orientation of a longitudinal view);
- thirds along the long axis: "upper pole" at the `upper` end, then "middle", "inferior";
- "extension" (extrathyroidal extension) makes the nodule cross the gland's *top* edge (y0,
  the anterior capsule on an ultrasound image) by 0-10 px.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

LOCATIONS = ("inferior", "middle", "upper pole")
#: nodule bbox long side as a fraction of the gland box's short side, per size chip
SIZE_FRACTIONS = {"small": 0.3, "middle": 0.5, "large": 0.75}
MAX_EXTENSION_PX = 10


class ConditionError(ValueError):
    """Bad input to a condition function (empty mask, wrong shape, unknown location)."""


def _as_2d_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] in (1, 3, 4):
        arr = arr[..., :3].mean(axis=-1) if arr.shape[-1] >= 3 else arr[..., 0]
    if arr.ndim != 2 or arr.size == 0:
        raise ConditionError(f"{name} must be a 2-D greyscale array, got shape {np.asarray(image).shape}.")
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return arr


def sobel_map(image: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """BG condition: Gaussian blur, |Gx| + |Gy| (Sobel), min-max scaled to uint8.

    The blur suppresses speckle so the map keeps anatomy edges rather than noise; a constant
    image gives an all-zero map instead of a division by zero.
    """
    img = _as_2d_uint8(image).astype(np.float32)
    blurred = ndimage.gaussian_filter(img, sigma=sigma) if sigma > 0 else img
    mag = np.abs(ndimage.sobel(blurred, axis=1)) + np.abs(ndimage.sobel(blurred, axis=0))
    lo, hi = float(mag.min()), float(mag.max())
    if hi - lo < 1e-6:
        return np.zeros(img.shape, np.uint8)
    return np.round((mag - lo) / (hi - lo) * 255.0).astype(np.uint8)


#: pixels the nodule mask is grown by before its region is refilled in a background map
NODULE_MARGIN_PX = 6


def fill_region(sobel: np.ndarray, region: np.ndarray, seed: int = 0) -> np.ndarray:
    """Replace `region` of a Sobel map by edge texture copied from elsewhere in the same map (uint8).

    Why not zeros or noise: a blank hole, or a patch of another texture, is itself an outline of
    the nodule, so the BG encoder would learn "nodule where the odd patch is" and the leak the
    filling is meant to close would stay. Copying the map's own texture from the nearest shifted
    window that lies outside the region keeps its grain and its edge statistics; several shifts
    are used when no single window fits, and the seam is feathered over about a pixel. `seed`
    only breaks ties between equally near windows.
    """
    sob = _as_2d_uint8(sobel, "Sobel map").astype(np.float32)
    reg = np.asarray(region) > 0
    if reg.shape != sob.shape:
        raise ConditionError(f"The region {reg.shape} and the Sobel map {sob.shape} differ in size.")
    if not reg.any() or reg.all():
        return sob.astype(np.uint8)
    H, W = sob.shape
    ys, xs = np.nonzero(reg)
    rng = np.random.default_rng(seed)
    step = 2
    shifts = [(dy, dx) for dy in range(-H + 1, H, step) for dx in range(-W + 1, W, step) if (dy, dx) != (0, 0)]
    # nearest first; horizontal shifts preferred (ultrasound layers run horizontally)
    shifts.sort(key=lambda d: (abs(d[0]) * 2 + abs(d[1]), rng.random()))
    out = sob.copy()
    todo = np.ones(ys.size, bool)
    # shifts that cover a large share of what is left first (few seams, no mosaic), then any
    for share in (0.5, 0.25, 0.1, 0.0):
        for dy, dx in shifts:
            if not todo.any():
                break
            sy, sx = ys + dy, xs + dx
            ok = todo & (sy >= 0) & (sy < H) & (sx >= 0) & (sx < W)
            if not ok.any():
                continue
            ok[ok] = ~reg[sy[ok], sx[ok]]
            if not ok.any() or ok.sum() < share * todo.sum():
                continue
            out[ys[ok], xs[ok]] = sob[sy[ok], sx[ok]]
            todo &= ~ok
    if todo.any():
        out[ys[todo], xs[todo]] = float(np.median(sob[~reg]))
    alpha = np.clip(ndimage.gaussian_filter(reg.astype(np.float32), 0.8) * 2.0, 0.0, 1.0)
    alpha[reg] = 1.0
    return np.round(sob * (1 - alpha) + out * alpha).astype(np.uint8)


def background_sobel(image: np.ndarray, mask: np.ndarray | None, margin_px: int = NODULE_MARGIN_PX,
                     seed: int = 0) -> np.ndarray:
    """BG condition without the image's own nodule: `sobel_map` with the grown nodule region refilled.

    A full-image Sobel map also outlines the nodule, so a BG encoder trained on it can draw the
    nodule by itself (and a bank background then brings its nodule to its own place, wherever the
    user put the mask). The paper's backgrounds include normal thyroids: the nodule need not be in
    them. Training maps and bank maps are made by this one function, so the two agree.
    """
    sob = sobel_map(image)
    if mask is None:
        return sob
    m = np.asarray(mask) > 0
    if m.shape != sob.shape:
        raise ConditionError(f"The mask {m.shape} and the image {sob.shape} differ in size.")
    if not m.any():
        return sob
    grown = ndimage.binary_dilation(m, iterations=margin_px) if margin_px > 0 else m
    return fill_region(sob, grown, seed)


@dataclass(frozen=True)
class GlandExtent:
    """Where the thyroid gland lies in one image (an estimate the user may adjust)."""

    x0: int
    y0: int
    x1: int
    y1: int
    axis: Literal["horizontal", "vertical"] = "horizontal"
    upper: Literal["start", "end"] = "start"

    def __post_init__(self) -> None:
        if not (self.x1 > self.x0 and self.y1 > self.y0):
            raise ConditionError(f"Gland extent must have positive size, got ({self.x0},{self.y0})-({self.x1},{self.y1}).")
        if self.axis not in ("horizontal", "vertical"):
            raise ConditionError(f"Gland axis must be 'horizontal' or 'vertical', got {self.axis!r}.")
        if self.upper not in ("start", "end"):
            raise ConditionError(f"Gland 'upper' must be 'start' or 'end', got {self.upper!r}.")

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GlandExtent":
        try:
            return cls(int(d["x0"]), int(d["y0"]), int(d["x1"]), int(d["y1"]),
                       d.get("axis", "horizontal"), d.get("upper", "start"))
        except (KeyError, TypeError) as exc:
            raise ConditionError(f"Gland extent needs x0, y0, x1, y1: {exc}") from exc

    def clipped(self, shape: tuple[int, int]) -> "GlandExtent":
        h, w = shape
        x0, y0 = min(max(self.x0, 0), w - 1), min(max(self.y0, 0), h - 1)
        return GlandExtent(x0, y0, max(min(self.x1, w), x0 + 1), max(min(self.y1, h), y0 + 1), self.axis, self.upper)


def estimate_gland_extent(image_or_sobel: np.ndarray, mask: np.ndarray | None = None) -> GlandExtent:
    """Image-based estimate of the gland box: the largest connected mid/bright textured region.

    Why this heuristic: no dataset here outlines the gland, but thyroid parenchyma is the
    large homogeneous mid-to-bright band in the upper half of a neck scan, while muscle,
    trachea shadow and the dark frame are darker. Heavy blurring merges the speckle into that
    band, Otsu's threshold separates it, and the largest component is kept. When a nodule
    `mask` is given the box is widened to contain it (a nodule lies inside its gland).
    Falls back to a central box when nothing sensible is found.
    """
    img = _as_2d_uint8(image_or_sobel).astype(np.float32)
    h, w = img.shape
    blurred = ndimage.gaussian_filter(img, sigma=max(h, w) / 40.0)
    valid = blurred[blurred > 1]
    box = None
    if valid.size > 16:
        thr = _otsu(valid)
        comp, n = ndimage.label(blurred > thr)
        if n:
            sizes = ndimage.sum(np.ones_like(blurred), comp, index=np.arange(1, n + 1))
            biggest = int(np.argmax(sizes)) + 1
            if sizes[biggest - 1] >= 0.05 * h * w:
                ys, xs = np.nonzero(comp == biggest)
                box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
    if box is None:
        box = [int(0.1 * w), int(0.15 * h), int(0.9 * w), int(0.75 * h)]
    if mask is not None:
        m = np.asarray(mask) > 0
        if m.shape == img.shape and m.any():
            ys, xs = np.nonzero(m)
            box = [min(box[0], int(xs.min())), min(box[1], int(ys.min())),
                   max(box[2], int(xs.max()) + 1), max(box[3], int(ys.max()) + 1)]
    # thirds need some length; keep at least a quarter of the image along each side
    for lo, hi, full in ((0, 2, w), (1, 3, h)):
        if box[hi] - box[lo] < full // 4:
            c = (box[hi] + box[lo]) // 2
            box[lo], box[hi] = max(0, c - full // 8), min(full, c + full // 8 + 1)
    axis = "horizontal" if box[2] - box[0] >= box[3] - box[1] else "vertical"
    return GlandExtent(box[0], box[1], box[2], box[3], axis, "start")


def _otsu(values: np.ndarray) -> float:
    hist, edges = np.histogram(values, bins=64)
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers) / np.maximum(w0, 1)
    m1 = ((hist * centers).sum() - np.cumsum(hist * centers)) / np.maximum(w1, 1)
    return float(centers[int(np.argmax(w0 * w1 * (m0 - m1) ** 2))])


def thirds(extent: GlandExtent) -> dict[str, tuple[int, int, int, int]]:
    """The three equal parts of the gland along its long axis, keyed by location name."""
    e = extent
    lo, hi = (e.x0, e.x1) if e.axis == "horizontal" else (e.y0, e.y1)
    cuts = [lo, lo + round((hi - lo) / 3), lo + round(2 * (hi - lo) / 3), hi]
    parts = [(cuts[i], cuts[i + 1]) for i in range(3)]
    names = ["upper pole", "middle", "inferior"] if e.upper == "start" else ["inferior", "middle", "upper pole"]
    out = {}
    for name, (a, b) in zip(names, parts):
        out[name] = (a, e.y0, b, e.y1) if e.axis == "horizontal" else (e.x0, a, e.x1, b)
    return out


def _centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        raise ConditionError("The nodule mask is empty: draw or upload a mask with at least one pixel set.")
    return float(xs.mean()), float(ys.mean())


def location_of(mask: np.ndarray, extent: GlandExtent) -> str:
    """Which third of the gland holds the mask's centroid (nearest third if outside)."""
    cx, cy = _centroid(np.asarray(mask) > 0)
    pos = cx if extent.axis == "horizontal" else cy
    best, dist = "middle", float("inf")
    for name, (x0, y0, x1, y1) in thirds(extent).items():
        a, b = (x0, x1) if extent.axis == "horizontal" else (y0, y1)
        d = 0.0 if a <= pos < b else min(abs(pos - a), abs(pos - (b - 1)))
        if d < dist:
            best, dist = name, d
    return best


def _scale_shape(crop: np.ndarray, factor: float) -> np.ndarray:
    h, w = crop.shape
    nh, nw = max(1, round(h * factor)), max(1, round(w * factor))
    zoomed = ndimage.zoom(crop.astype(np.float32), (nh / h, nw / w), order=1) > 0.5
    if not zoomed.any():
        zoomed = np.zeros((max(nh, 1), max(nw, 1)), bool)
        zoomed[nh // 2, nw // 2] = True
    # thresholding can leave empty border rows/columns; trim them so the shape's box is its extent
    # (an extension's top edge is placed by the box)
    ys, xs = np.nonzero(zoomed)
    return zoomed[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]


def place_mask(mask: np.ndarray, extent: GlandExtent, location: str | None = None,
               size: str | float | None = None, extension: bool = False,
               rng: np.random.Generator | None = None, center: tuple[float, float] | None = None,
               gland_fraction: float | None = None) -> np.ndarray:
    """Move/scale a nodule mask within the gland; returns a uint8 0/255 mask of the same shape.

    The one placement path: the pipeline's Diversify masks (size chip) and the Synthesize
    canvas (size slider) both come through here, so a chip means the same size in both.

    - `location`: put the centroid in that third of the gland (random point inside it when
      `rng` is given, its centre otherwise); `center` = (x, y) pins the centroid instead.
    - `size`: "small" | "middle" | "large" (long side = `SIZE_FRACTIONS` x gland short side) or
      a float scale factor; None keeps the size.
    - `gland_fraction`: long side as this fraction of the gland's short side (the slider's
      unit; a size chip is `SIZE_FRACTIONS[chip]`); overrides `size`.
    - `extension`: the top edge of the nodule sits 0-10 px above the gland's top edge
      (random with `rng`, 5 px otherwise).
    The mask never leaves the image: a nodule too large to keep its centroid in the requested
    third is shrunk until it fits.
    """
    m = np.asarray(mask) > 0
    if m.ndim != 2:
        raise ConditionError(f"The mask must be 2-D, got shape {m.shape}.")
    H, W = m.shape
    cx0, cy0 = _centroid(m)
    if location is not None and location not in LOCATIONS:
        raise ConditionError(f"Unknown location {location!r}; expected one of: {', '.join(LOCATIONS)}.")
    extent = extent.clipped((H, W))
    ys, xs = np.nonzero(m)
    crop = m[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    if isinstance(size, str) and gland_fraction is None:
        if size not in SIZE_FRACTIONS:
            raise ConditionError(f"Unknown size {size!r}; expected small, middle, large or a number.")
        gland_fraction = SIZE_FRACTIONS[size]
    if gland_fraction is not None:
        if not np.isfinite(gland_fraction) or gland_fraction <= 0:
            raise ConditionError(f"Gland fraction must be a positive number, got {gland_fraction!r}.")
        factor = float(gland_fraction) * min(extent.width, extent.height) / max(crop.shape)
    elif size is None:
        factor = 1.0
    else:
        factor = float(size)
        if not np.isfinite(factor) or factor <= 0:
            raise ConditionError(f"Size factor must be a positive number, got {size!r}.")
    factor = min(factor, (H - 1) / crop.shape[0], (W - 1) / crop.shape[1]) if max(crop.shape) > 1 else factor

    # target centroid
    if center is not None:
        tx, ty = float(center[0]), float(center[1])
    elif location is not None:
        x0, y0, x1, y1 = thirds(extent)[location]
        if rng is not None:
            tx, ty = rng.uniform(x0, x1 - 1) if x1 - x0 > 1 else x0, rng.uniform(y0, y1 - 1) if y1 - y0 > 1 else y0
        else:
            tx, ty = (x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2
    else:
        tx, ty = cx0, cy0
    ext_px = None
    if extension:
        ext_px = int(rng.integers(0, MAX_EXTENSION_PX + 1)) if rng is not None else MAX_EXTENSION_PX // 2

    for _ in range(40):
        shape = _scale_shape(crop, factor) if factor != 1.0 else crop
        sh, sw = shape.shape
        scx, scy = _centroid(shape)
        left = int(round(tx - scx))
        top = int(round(ty - scy))
        if ext_px is not None:
            top = extent.y0 - ext_px
        left = min(max(left, 0), W - sw)
        top = min(max(top, 0), H - sh)
        ok = True
        if location is not None and center is None and not (ext_px is not None and extent.axis == "vertical"):
            a, b = _axis_range(thirds(extent)[location], extent.axis)
            pos = (left + scx) if extent.axis == "horizontal" else (top + scy)
            ok = a <= pos < b
        if ok or max(sh, sw) <= 2:
            break
        factor *= 0.8
    out = np.zeros((H, W), np.uint8)
    out[top: top + sh, left: left + sw][shape] = 255
    return out


def _axis_range(box: tuple[int, int, int, int], axis: str) -> tuple[int, int]:
    return (box[0], box[2]) if axis == "horizontal" else (box[1], box[3])


def default_mask(shape: tuple[int, int], size: str | float = "middle") -> np.ndarray:
    """An upright ellipse (1.3:1, wider than tall) in the image centre, uint8 0/255.

    For Diversify mode without a drawn mask; `size` as in `place_mask` (fraction of the
    image's short side for the long axis when a float).
    """
    h, w = int(shape[0]), int(shape[1])
    if h <= 0 or w <= 0:
        raise ConditionError(f"Mask shape must be positive, got {shape}.")
    frac = SIZE_FRACTIONS.get(size) if isinstance(size, str) else float(size)
    if frac is None or not (0 < frac <= 1):
        raise ConditionError(f"Unknown size {size!r}; expected small, middle, large or a fraction in (0, 1].")
    a = max(1.0, frac * min(h, w) / 2)
    b = max(1.0, a / 1.3)
    yy, xx = np.mgrid[0:h, 0:w]
    inside = ((xx - (w - 1) / 2) / a) ** 2 + ((yy - (h - 1) / 2) / b) ** 2 <= 1.0
    return inside.astype(np.uint8) * 255
