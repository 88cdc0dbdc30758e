"""64-bit DCT perceptual hash (pHash) and Hamming distance.

Why our own: near-duplicate grouping (leakage-free splits), Turing-test distractor choice and
the pHash metric all need the same hash; the classic algorithm is a dozen lines of numpy/scipy,
so no extra dependency. Algorithm (Zauner 2010 / the `imagehash` package): greyscale, resize to
32x32, 2-D DCT-II, keep the top-left 8x8 low frequencies, bit = coefficient > median of them.
"""
from __future__ import annotations

import numpy as np
from PIL import Image
from scipy.fft import dctn

HASH_SIZE = 8
_HIGHFREQ = 4


def _as_grey(image: "Image.Image | np.ndarray") -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("L")
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = np.moveaxis(arr, 0, -1)  # CxHxW -> HxWxC
    if arr.ndim == 3:
        arr = arr.mean(axis=-1) if arr.shape[-1] == 3 else arr[..., 0]
    if arr.ndim != 2:
        raise ValueError(f"phash needs a 2-D greyscale or HxWx3 image, got shape {np.asarray(image).shape}.")
    if arr.dtype != np.uint8:
        a = arr.astype(np.float64)
        if a.size and a.min() >= -1.0 and a.max() <= 1.0 and a.min() < 0:
            a = (a + 1.0) * 127.5  # model output range [-1, 1]
        elif a.size and a.max() <= 1.0:
            a = a * 255.0  # [0, 1]
        arr = np.clip(a, 0, 255).astype(np.uint8)
    return Image.fromarray(arr, mode="L")


def phash(image: "Image.Image | np.ndarray") -> int:
    """64-bit perceptual hash of an image (PIL, uint8 array, or float array in [0,1]/[-1,1])."""
    size = HASH_SIZE * _HIGHFREQ
    pixels = np.asarray(_as_grey(image).resize((size, size), Image.Resampling.LANCZOS), dtype=np.float64)
    low = dctn(pixels, type=2, norm="ortho")[:HASH_SIZE, :HASH_SIZE]
    bits = (low > np.median(low)).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes."""
    return int(bin(int(a) ^ int(b)).count("1"))
