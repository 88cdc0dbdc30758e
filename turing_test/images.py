"""Serving case images without giving the answer away.

Readers get pixels only: the image is decoded and re-encoded as a fresh PNG, which drops PNG
text chunks (our generated PNGs carry their generation parameters), EXIF, ICC profiles and the
original file name. A small LRU keeps recent re-encodings, since many readers see the same case.
"""
from __future__ import annotations

import functools
import io
from pathlib import Path

from PIL import Image


@functools.lru_cache(maxsize=256)
def _clean_png(path: str, mtime_ns: int) -> bytes:
    with Image.open(path) as im:
        im.load()
        mode = "L" if im.mode in ("L", "1", "I", "I;16") else "RGB"  # greyscale stays greyscale
        clean = Image.frombytes(mode, im.size, im.convert(mode).tobytes())  # pixels only
    buf = io.BytesIO()
    clean.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def clean_png_bytes(path: str | Path) -> bytes:
    """PNG bytes of the image's pixels, with every metadata chunk removed."""
    p = Path(path)
    return _clean_png(str(p), p.stat().st_mtime_ns)
