"""Shared input checks for embedding metrics (two feature matrices of one width)."""
from __future__ import annotations

import numpy as np

from tiger.metrics.errors import MetricInputError


def features_pair(a: np.ndarray, b: np.ndarray, what: str, min_n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    for name, x in (("real", a), ("generated", b)):
        if x.ndim != 2:
            raise MetricInputError(f"{what}: {name} features must be N x D, got shape {x.shape}")
        if len(x) < min_n:
            raise MetricInputError(f"{what} needs at least {min_n} {name} samples, got {len(x)}")
        if not np.isfinite(x).all():
            raise MetricInputError(f"{what}: {name} features contain NaN or inf")
    if a.shape[1] != b.shape[1]:
        raise MetricInputError(f"{what}: feature widths differ ({a.shape[1]} vs {b.shape[1]}); use one embedder")
    return a, b
