"""Fréchet distance (FID) and kernel distance (KID) between two embedding sets, by torchmetrics.

Computed on embeddings (by default the domain CLIP's, see embeddings.py) rather than Inception
pool features, because no Inception weights exist offline. torchmetrics' `FrechetInceptionDistance`
and `KernelInceptionDistance` take the extractor as `feature=<nn.Module>`; the embeddings are
computed once per image set and shared by FID, KID, CMMD and precision/recall, so the module
handed to torchmetrics is `PrecomputedFeatures`, which passes each row through unchanged.
The formulas are those of Heusel et al. 2017 (FID) and Bińkowski et al. 2018 (KID, unbiased
MMD^2 with the cubic polynomial kernel).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from tiger.metrics._checks import features_pair
from tiger.metrics.errors import MetricInputError


class PrecomputedFeatures(torch.nn.Module):
    """The `feature=` extractor for rows that already are embeddings (N x D -> N x D)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def fid(real: np.ndarray, generated: np.ndarray) -> float:
    """FID between feature matrices (N x D). Lower is better; 0 for identical sets."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    a, b = features_pair(real, generated, "FID")
    metric = FrechetInceptionDistance(feature=PrecomputedFeatures(a.shape[1]), reset_real_features=True)
    metric.update(torch.from_numpy(a), real=True)
    metric.update(torch.from_numpy(b), real=False)
    return float(max(float(metric.compute()), 0.0))


def kid(real: np.ndarray, generated: np.ndarray, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """KID (mean, std over random subsets). Unbiased: about 0 (can be slightly < 0) for one distribution.

    `subset_size` is capped at the smaller set; sets smaller than 2 raise MetricInputError. The
    subsets are drawn from a torch generator seeded by `seed` (the global RNG is left as it was).
    """
    from torchmetrics.image.kid import KernelInceptionDistance

    a, b = features_pair(real, generated, "KID")
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise MetricInputError("KID needs at least 2 samples per set")
    if size == len(a) == len(b):
        subsets = 1  # every subset would be the whole of both sets
    with warnings.catch_warnings():  # "will save all extracted features": they are already in memory
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(feature=PrecomputedFeatures(a.shape[1]), subsets=subsets, subset_size=size)
    metric.update(torch.from_numpy(a), real=True)
    metric.update(torch.from_numpy(b), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)
