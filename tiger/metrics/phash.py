"""pHash distances: closeness to the real images, diversity, and the memorisation check.

Uses `tiger.imagehash.phash` (64-bit DCT hash). A generated image whose hash lies within
`threshold` bits of a training image is counted as a near-copy: the share of near-copies is the
memorisation check a researcher must see before trusting synthetic augmentation.
"""
from __future__ import annotations

import numpy as np

from tiger.metrics.errors import MetricInputError

NEAR_COPY_BITS = 6


def hashes(pixels: np.ndarray) -> np.ndarray:
    """uint64 pHash of each image (uint8 N x H x W)."""
    from PIL import Image

    from tiger.imagehash import phash

    return np.array([phash(Image.fromarray(p)) for p in pixels], dtype=np.uint64)


def hamming_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distances between every hash of `a` and every hash of `b` (int N x M)."""
    x = np.bitwise_xor(a.astype(np.uint64)[:, None], b.astype(np.uint64)[None, :])
    return np.bitwise_count(x).astype(np.int64)


def phash_report(generated: np.ndarray, reference: np.ndarray, threshold: int = NEAR_COPY_BITS) -> dict[str, float]:
    """Mean nearest distance to the reference (training) set, near-copy share, within-set diversity.

    - `phash_nearest`: mean over generated of the smallest Hamming distance to any reference image;
    - `near_copy_share`: share of generated images within `threshold` bits of a reference image;
    - `phash_within`: mean pairwise distance inside the generated set (0 when collapsed).
    """
    if len(generated) == 0 or len(reference) == 0:
        raise MetricInputError("pHash distances need non-empty generated and reference sets")
    hg, hr = hashes(generated), hashes(reference)
    d = hamming_matrix(hg, hr)
    nearest = d.min(1)
    within = hamming_matrix(hg, hg)
    n = len(hg)
    return {
        "phash_nearest": float(nearest.mean()),
        "near_copy_share": float((nearest <= threshold).mean()),
        "near_copy_bits": int(threshold),
        "phash_within": float(within.sum() / (n * (n - 1))) if n > 1 else 0.0,
    }
