"""MoSo-style influence scores for filtering synthetic samples (Tan et al., NeurIPS 2023,
"Data pruning via moving-one-sample-out").

MoSo scores a sample by how much the empirical risk on the data we care about would change if
the sample were left out of training; its first-order approximation is the alignment between
the sample's loss gradient and the full-data gradient, averaged over the training trajectory.
Here the model is a logistic-regression probe on (domain CLIP) embeddings trained on the REAL
labelled images, so a synthetic sample scores high when learning from it would lower the risk
on real data, and low (negative) when its gradient points against the real data: those are the
samples the quality filter drops. Cheap (a D-dimensional probe), deterministic, no labels of
synthetic images beyond the class they were generated for.
"""
from __future__ import annotations

import numpy as np

from tiger.metrics.errors import MetricInputError


def _grad(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-sample gradients of the logistic loss (N x (D+1), bias last)."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    p = 1 / (1 + np.exp(-(xb @ w)))
    return (p - y)[:, None] * xb


def moso_scores(real_x: np.ndarray, real_y: np.ndarray, cand_x: np.ndarray, cand_y: np.ndarray,
                steps: int = 200, lr: float = 0.5, checkpoints: int = 10) -> np.ndarray:
    """First-order MoSo score of each candidate: mean over probe checkpoints of <g_real, g_candidate>.

    real_x / cand_x: embeddings (N x D); real_y / cand_y: 0/1 labels. Higher = more helpful.
    """
    real_x, cand_x = np.asarray(real_x, float), np.asarray(cand_x, float)
    real_y, cand_y = np.asarray(real_y, float).ravel(), np.asarray(cand_y, float).ravel()
    if len(np.unique(real_y)) < 2:
        raise MetricInputError("MoSo scoring needs real images of both classes to train its probe")
    if real_x.shape[1] != cand_x.shape[1] or len(cand_x) != len(cand_y) or len(real_x) != len(real_y):
        raise MetricInputError("MoSo scoring: embeddings and labels do not match in shape")
    w = np.zeros(real_x.shape[1] + 1)
    # class-balanced real risk, so the rare class counts as much as the common one
    weights = np.where(real_y == 1, 0.5 / real_y.sum(), 0.5 / (1 - real_y).sum())
    scores = np.zeros(len(cand_x))
    every = max(1, steps // checkpoints)
    n_ck = 0
    for t in range(steps):
        g_real = (weights[:, None] * _grad(w, real_x, real_y)).sum(0)
        if t % every == 0:
            scores += _grad(w, cand_x, cand_y) @ g_real
            n_ck += 1
        w -= lr * g_real
    return scores / n_ck


def keep_mask(scores: np.ndarray, drop_fraction: float) -> np.ndarray:
    """Boolean mask keeping all but the lowest-scoring `drop_fraction` (ties broken by index)."""
    if not 0 <= drop_fraction < 1:
        raise MetricInputError(f"drop fraction must be in [0, 1), got {drop_fraction}")
    n_drop = int(round(len(scores) * drop_fraction))
    keep = np.ones(len(scores), bool)
    keep[np.argsort(scores, kind="stable")[:n_drop]] = False
    return keep
