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

from tiger.greyscale import GreyscaleError, to_grey

HASH_SIZE = 8
_HIGHFREQ = 4


def _as_grey(image: "Image.Image | np.ndarray") -> Image.Image:
    try:
        return Image.fromarray(to_grey(image), mode="L")
    except GreyscaleError as e:
        raise ValueError(f"phash needs a greyscale or colour image: {e}") from e


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
