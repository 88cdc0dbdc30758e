"""Find the ultrasound picture inside a scanner screenshot and split dual views.

Why not a fixed crop: scanners place side panels, scale bars, orientation pictograms and
text ("DER", "TIRADS 2", "P100 12L6 ...") differently per preset, and a fixed 20/60 px crop
still leaves label text in a corner. Text and panels are sparse (few lit pixels per row or
column) while the B-mode picture is a dense block of speckle, so the picture is the largest
run of densely lit columns, then of densely lit rows inside it. Dual views (transverse and
longitudinal side by side) are two such blocks, either with a dark gap between them or
abutting at a seam (a column where the texture jumps).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

LIT = 12            # grey level above which a (blurred) pixel counts as picture
DENSE = 0.35        # fraction of lit pixels that makes a column/row part of the picture
MIN_VIEW = 60       # px: narrower blocks are panels or text
DUAL_RATIO = 1.45   # width/height above which one block is two abutting views
INSET = 2           # px trimmed off each side (picture border lines, tick dots)


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """Half-open [a, b) runs of True."""
    out, start = [], None
    for i, f in enumerate(flags):
        if f and start is None:
            start = i
        elif not f and start is not None:
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, len(flags)))
    return out


def colour_overlay(rgb: np.ndarray) -> np.ndarray:
    """Pixels that are clearly coloured (calipers, measurement marks): B-mode is grey."""
    if rgb.ndim != 3:
        return np.zeros(rgb.shape[:2], bool)
    c = rgb.astype(np.int16)
    return (c.max(axis=-1) - c.min(axis=-1)) > 40


def remove_overlay(grey: np.ndarray, overlay: np.ndarray) -> np.ndarray:
    """Replace overlay pixels (dilated by 1) by the median of their surroundings."""
    if not overlay.any():
        return grey
    m = ndimage.binary_dilation(overlay, iterations=1)
    med = ndimage.median_filter(grey, size=7)
    out = grey.copy()
    out[m] = med[m]
    return out


def find_views(grey: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Boxes (x0, y0, x1, y1) of the ultrasound view(s), left to right; [] when none found."""
    g = ndimage.gaussian_filter(grey.astype(np.float32), 2.0)
    lit = g > LIT
    h, w = g.shape
    col_runs = [r for r in _runs(lit.mean(axis=0) > DENSE) if r[1] - r[0] >= MIN_VIEW]
    # merge runs split by a thin dark seam (< 6 px): one block that may hold two abutting views
    merged: list[list[int]] = []
    for a, b in col_runs:
        if merged and a - merged[-1][1] < 6:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    if not merged:
        return []
    widest = max(b - a for a, b in merged)
    blocks = [(a, b) for a, b in merged if b - a >= 0.4 * widest]
    views = []
    for a, b in blocks:
        row_runs = _runs(lit[:, a:b].mean(axis=1) > DENSE)
        if not row_runs:
            continue
        y0, y1 = max(row_runs, key=lambda r: r[1] - r[0])
        views.append((a, y0, b, y1))
    if len(views) == 1:
        x0, y0, x1, y1 = views[0]
        if (x1 - x0) > DUAL_RATIO * (y1 - y0):
            seam = _seam(g[y0:y1, x0:x1]) + x0
            views = [(x0, y0, seam, y1), (seam, y0, x1, y1)]
    return [(x0 + INSET, y0 + INSET, x1 - INSET, y1 - INSET) for x0, y0, x1, y1 in views
            if x1 - x0 > 2 * INSET + 8 and y1 - y0 > 2 * INSET + 8]


def _seam(block: np.ndarray) -> int:
    """Column (near the middle) where two abutting views meet: the largest texture jump."""
    w = block.shape[1]
    lo, hi = int(0.35 * w), int(0.65 * w)
    jump = np.abs(np.diff(block, axis=1)).mean(axis=0)  # jump[c] between c and c+1
    return lo + int(np.argmax(jump[lo:hi])) + 1
