"""The parameter record of a generated image, embedded in the PNG it is saved as.

Why: every synthetic image must be reproducible and recallable into the UI from the file alone
(DESIGN.md), even after it has been copied out of the app. The record (texts, chips, seed, steps,
scales, beta, encoders, mask, background id, model id, mode, strength) is JSON in one iTXt chunk
under the key `tiger`; small arrays such as the mask travel inside it as base64 PNG.
"""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, PngImagePlugin

KEY = "tiger"


class RecordError(ValueError):
    """A file that is not a PNG or carries no (or an unreadable) Tiger parameter record."""


def array_to_b64png(arr: np.ndarray) -> str:
    """uint8 HxW array -> base64 PNG text (lossless, small for binary masks)."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def b64png_to_array(text: str) -> np.ndarray:
    try:
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))).convert("L"))
    except (ValueError, OSError) as e:
        raise RecordError(f"the record's embedded image is unreadable ({e})") from e


def write_png(image: Image.Image | np.ndarray, record: dict, path_or_buffer: str | Path | IO[bytes]) -> None:
    """Save `image` as PNG with `record` as JSON in an iTXt chunk (key "tiger")."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    info = PngImagePlugin.PngInfo()
    info.add_itxt(KEY, json.dumps(record, sort_keys=True), zip=True)
    if isinstance(path_or_buffer, (str, Path)):
        image.save(str(path_or_buffer), format="PNG", pnginfo=info)
    else:
        image.save(path_or_buffer, format="PNG", pnginfo=info)


def read_record(path_or_image: str | Path | IO[bytes] | Image.Image | bytes) -> dict[str, Any]:
    """The record embedded by `write_png` (a path, a file object, bytes or an opened PIL image)."""
    try:
        if isinstance(path_or_image, Image.Image):
            img = path_or_image
        elif isinstance(path_or_image, bytes):
            img = Image.open(io.BytesIO(path_or_image))
        else:
            img = Image.open(path_or_image)
    except (OSError, ValueError) as e:
        raise RecordError(f"not an image file: {e}") from e
    text = getattr(img, "text", None) or img.info
    raw = text.get(KEY) if hasattr(text, "get") else None
    if raw is None:
        raise RecordError("this image carries no Tiger parameter record (was it made by Tiger Studio and saved as PNG?)")
    try:
        rec = json.loads(raw)
    except ValueError as e:
        raise RecordError(f"the Tiger parameter record is corrupt ({e})") from e
    if not isinstance(rec, dict):
        raise RecordError("the Tiger parameter record is not a JSON object")
    return rec
