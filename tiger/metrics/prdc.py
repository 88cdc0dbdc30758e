"""Precision, recall, density and coverage (Naeem et al., ICML 2020) on embeddings.

Density (how many real k-NN balls hold each fake sample, / k) rewards realism without being
fooled by real outliers; coverage (share of real samples whose k-NN ball holds a fake) measures
diversity and falls when the generator collapses. Both are near 1 for two samples of one
distribution. Balls are k-NN radii among the real samples (self excluded).
"""
from __future__ import annotations

import numpy as np

from tiger.metrics._checks import features_pair
from tiger.metrics.errors import MetricInputError


def _sqdist(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.clip((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T, 0, None)


def prdc(real: np.ndarray, generated: np.ndarray, k: int = 5) -> dict[str, float]:
    """{"precision", "recall", "density", "coverage"} for feature matrices (N x D)."""
    a, b = features_pair(real, generated, "density/coverage", min_n=1)
    if len(a) <= k or len(b) <= k:
        raise MetricInputError(f"density/coverage with k={k} needs more than {k} samples per set "
                               f"(got {len(a)} real, {len(b)} generated)")
    d_rr = _sqdist(a, a)
    d_ff = _sqdist(b, b)
    d_rf = _sqdist(a, b)  # real x fake
    # k-th nearest neighbour (index k: column 0 after sorting is the point itself, distance 0)
    r_real = np.sort(d_rr, axis=1)[:, k]
    r_fake = np.sort(d_ff, axis=1)[:, k]
    inside = d_rf < r_real[:, None]
    precision = inside.any(axis=0).mean()
    recall = (d_rf < r_fake[None, :]).any(axis=1).mean()
    density = inside.sum(axis=0).mean() / k
    coverage = (d_rf.min(axis=1) < r_real).mean()
    return {"precision": float(precision), "recall": float(recall),
            "density": float(density), "coverage": float(coverage)}
