"""Fréchet distance (FID) and kernel distance (KID) between two embedding sets.

Computed on embeddings (by default the domain CLIP's, see embeddings.py) rather than Inception
pool features, because no Inception weights exist offline; the formulas are those of Heusel et
al. 2017 (FID) and Bińkowski et al. 2018 (KID, unbiased MMD^2 with the cubic polynomial kernel).
"""
from __future__ import annotations

import numpy as np

from tiger.metrics._checks import features_pair
from tiger.metrics.errors import MetricInputError


def _sqrtm_psd(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance_from_stats(mu1: np.ndarray, c1: np.ndarray, mu2: np.ndarray, c2: np.ndarray) -> float:
    """||mu1-mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)).

    Tr((C1 C2)^(1/2)) = Tr((S C2 S)^(1/2)) with S = C1^(1/2): symmetric PSD, so two `eigh`
    calls replace a general `sqrtm` (stable, no complex parts, fast for D = 128..512).
    """
    s1 = _sqrtm_psd(c1)
    m = s1 @ c2 @ s1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(c1) + np.trace(c2) - 2 * tr_covmean, 0.0))


def fid(real: np.ndarray, generated: np.ndarray) -> float:
    """FID between feature matrices (N x D). Lower is better; 0 for identical sets."""
    a, b = features_pair(real, generated, "FID")
    return frechet_distance_from_stats(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def _poly_mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def kid(real: np.ndarray, generated: np.ndarray, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """KID (mean, std over random subsets). Unbiased: about 0 (can be slightly < 0) for one distribution.

    `subset_size` is capped at the smaller set; sets smaller than 2 raise MetricInputError.
    """
    a, b = features_pair(real, generated, "KID")
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise MetricInputError("KID needs at least 2 samples per set")
    rng = np.random.default_rng(seed)
    if size == len(a) == len(b):
        subsets = 1  # every subset would be the whole of both sets
    vals = []
    for _ in range(subsets):
        ia = rng.choice(len(a), size, replace=False)
        ib = rng.choice(len(b), size, replace=False)
        vals.append(_poly_mmd2_unbiased(a[ia], b[ib]))
    return float(np.mean(vals)), float(np.std(vals))
