"""Pixel measures of a nodule in an image, given its mask: what the control evaluation
(training.eval_control) and the Teach tab report, applied alike to real and generated images.

Pure functions on uint8 greyscale images and boolean masks; None where a measure is undefined
(an empty mask, a ring with no signal), so that callers can tell "not measurable" from 0.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def ring(mask: np.ndarray, size: int = 9) -> np.ndarray:
    m = np.asarray(mask) > 0
    return ndimage.binary_dilation(m, structure=np.ones((size, size), bool)) & ~m


def grey_ratio(image: np.ndarray, mask: np.ndarray) -> float | None:
    """Mean grey inside the mask / mean grey in the 9x9 ring around it (None when undefined)."""
    img = np.asarray(image, np.float64)
    m = np.asarray(mask) > 0
    r = ring(m)
    if not m.any() or not r.any() or img[r].mean() < 1e-6:
        return None
    return float(img[m].mean() / img[r].mean())


def bright_foci(image: np.ndarray, mask: np.ndarray, level: float = 40.0) -> int:
    """Bright spots inside the (slightly eroded) mask: white top-hat over a 7-px window above
    `level` grey levels, counted as connected components of at least 2 pixels."""
    img = np.asarray(image, np.float32)
    m = ndimage.binary_erosion(np.asarray(mask) > 0, iterations=1)
    tophat = img - ndimage.grey_opening(img, size=(7, 7))
    comp, n = ndimage.label((tophat > level) & m)
    if not n:
        return 0
    sizes = ndimage.sum(np.ones_like(img), comp, index=np.arange(1, n + 1))
    return int((sizes >= 2).sum())


def edge_sharpness(image: np.ndarray, mask: np.ndarray) -> float | None:
    """Mean gradient magnitude on the mask's boundary over the mean in its ring: a crisp margin
    is well above 1, an ill-defined one near 1."""
    img = ndimage.gaussian_filter(np.asarray(image, np.float32), 1.0)
    grad = np.hypot(ndimage.sobel(img, 0), ndimage.sobel(img, 1))
    m = np.asarray(mask) > 0
    edge = m & ~ndimage.binary_erosion(m)
    r = ring(m)
    if not edge.any() or not r.any() or grad[r].mean() < 1e-6:
        return None
    return float(grad[edge].mean() / grad[r].mean())


def irregularity(mask: np.ndarray) -> float | None:
    """1 - solidity (area over convex-hull area) of the mask's largest component."""
    from skimage.measure import label, regionprops
    m = np.asarray(mask) > 0
    if m.sum() < 4:
        return None
    props = max(regionprops(label(m)), key=lambda p: p.area)
    return float(1.0 - props.solidity)
