"""One rule for turning any picture into the uint8 greyscale every part of Tiger works on.

Why one module: the pipeline, the segmenter, the metrics, the hash, the importers and the uploads
each used to convert on their own, and they disagreed (RGB by channel mean or by luma, floats in
[-1, 1] read as black, 16-bit PNGs clipped to white), so the same upload gave different pixels
depending on where it went. Callers wrap `GreyscaleError` in their own error for their users.

The rule, for an array:
- H x W, H x W x 1, 1 x H x W; colour as H x W x 3/4 or 3/4 x H x W (alpha dropped), reduced
  with ITU-R 601 luma, as PIL's `convert("L")` does for images;
- bool -> 0/255; uint8 as is; uint16 (or int values above 255) -> / 257 (16-bit full range);
- floats: [-1, 1] (a model's output range, when any value is negative) -> (x + 1) * 127.5;
  [0, 1] -> x * 255; [0, 255] as is; anything else (NaN, inf, out of those ranges) is refused.
For a PIL image: 16-bit and float modes by the same numeric rule, every other mode by
`convert("L")`. Paths and bytes are opened with PIL first.

One departure is kept on purpose: scanner frames with colour marks (tiger.importers.ddti and the
reader-study images made the same way) are reduced by channel mean before the marks are painted
over, because the prepared DDTI data, its pHash leakage groups and so the shipped model's split
and evaluation were made from those pixels.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

#: ITU-R 601-2 luma weights, the ones PIL's convert("L") uses
LUMA = np.array([0.299, 0.587, 0.114])


class GreyscaleError(ValueError):
    """The input is not a picture that can be read as greyscale; the message says why."""


def _from_numbers(arr: np.ndarray) -> np.ndarray:
    """A 2-D numeric array -> uint8 by the module's range rule."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if not np.issubdtype(arr.dtype, np.number):
        raise GreyscaleError(f"pixels must be numbers, got dtype {arr.dtype}")
    a = arr.astype(np.float64)
    if a.size == 0:
        raise GreyscaleError("the picture has no pixels")
    if not np.isfinite(a).all():
        raise GreyscaleError("the picture holds NaN or infinite values")
    lo, hi = float(a.min()), float(a.max())
    if np.issubdtype(arr.dtype, np.integer):
        if lo < 0 or hi > 65535:
            raise GreyscaleError(f"integer pixels must lie in 0-65535, got {lo:g} to {hi:g}")
        a = a / 257.0 if (arr.dtype == np.uint16 or hi > 255) else a
    elif lo < 0:
        if lo < -1.0 - 1e-6 or hi > 1.0 + 1e-6:
            raise GreyscaleError(f"float pixels with negative values must lie in [-1, 1], got {lo:g} to {hi:g}")
        a = (a + 1.0) * 127.5
    elif hi <= 1.0:
        a = a * 255.0
    elif hi > 255.0:
        raise GreyscaleError(f"float pixels must lie in [0, 1], [-1, 1] or [0, 255], got up to {hi:g}")
    return np.clip(np.round(a), 0, 255).astype(np.uint8)


def array_to_grey(arr: Any) -> np.ndarray:
    """An array (see the module rule) -> H x W uint8."""
    a = np.asarray(arr)
    if a.dtype == object:
        raise GreyscaleError("the picture is not a numeric array")
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)                     # C x H x W -> H x W x C
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        rgb = _from_numbers(a[..., :3])               # range first, then luma, as for an RGB image
        return np.clip(np.round(rgb.astype(np.float64) @ LUMA), 0, 255).astype(np.uint8)
    if a.ndim != 2:
        raise GreyscaleError(f"expected H x W greyscale or H x W x 3 colour, got shape {a.shape}")
    return _from_numbers(a)


def image_to_grey(image: Image.Image) -> np.ndarray:
    """A PIL image -> H x W uint8 (16-bit and float modes by value, others by convert("L"))."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(image)
        if image.mode.startswith("I;16"):
            arr = arr.astype(np.uint16)
        return _from_numbers(arr)
    return np.asarray(image.convert("L"), dtype=np.uint8)


def open_image(source: str | Path | bytes | bytearray) -> Image.Image:
    """A path or encoded bytes -> a loaded PIL image; unreadable files raise GreyscaleError."""
    try:
        im = Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
        im.load()
        return im
    except (OSError, UnidentifiedImageError, ValueError) as e:
        name = "the bytes" if isinstance(source, (bytes, bytearray)) else Path(source).name
        raise GreyscaleError(f"{name} is not a readable image ({e})") from e


def to_grey(picture: Any) -> np.ndarray:
    """Path, bytes, PIL image or array -> H x W uint8 greyscale, by the module's one rule."""
    if isinstance(picture, (str, Path, bytes, bytearray)):
        picture = open_image(picture)
    if isinstance(picture, Image.Image):
        return image_to_grey(picture)
    return array_to_grey(picture)


def was_colour(picture: Any) -> bool:
    """Whether `to_grey` had to reduce colour (reported by the metrics as 'converted to grey')."""
    if isinstance(picture, Image.Image):
        return picture.mode not in ("L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F", "1", "LA")
    a = np.asarray(picture)
    return a.ndim == 3 and (a.shape[-1] in (3, 4) or (a.shape[0] in (3, 4) and a.shape[-1] not in (1, 3, 4)))
