"""Downstream classifier metrics: AUROC with bootstrap CI, sensitivity, specificity, Brier score,
paired bootstrap comparisons and ROC plots.

The question researchers ask ("does synthetic augmentation help the rare class?") is answered by
a difference of AUROCs on one test set, so the comparison is paired: the same bootstrap resample
of test cases is applied to both arms. A test set holding a single class has no AUROC; that is
an error with a message, never a NaN in a report.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from tiger.metrics.errors import MetricInputError


def _check(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(int).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    if len(y) != len(p) or len(y) == 0:
        raise MetricInputError(f"need one probability per label (got {len(y)} labels, {len(p)} probabilities)")
    if not set(np.unique(y)) <= {0, 1}:
        raise MetricInputError(f"labels must be 0/1, got {sorted(set(np.unique(y)))}")
    if len(np.unique(y)) < 2:
        only = "malignant (1)" if y[0] == 1 else "benign (0)"
        raise MetricInputError(f"the test set holds only {only} cases: AUROC, sensitivity and specificity "
                               "are undefined; use a split with both classes")
    if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1:
        raise MetricInputError("probabilities must be finite and within [0, 1]")
    return y, p


def youden_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold maximising sensitivity + specificity (chosen on validation data)."""
    y, p = _check(y, p)
    fpr, tpr, thr = roc_curve(y, p)
    best = int(np.argmax(tpr - fpr))
    return float(min(thr[best], 1.0))


def bootstrap_indices(y: np.ndarray, n: int, seed: int) -> list[np.ndarray]:
    """Resamples stratified by class, so every resample has both classes (AUROC defined)."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    return [np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]) for _ in range(n)]


def binary_report(y, p, threshold: float = 0.5, n_boot: int = 1000, seed: int = 0) -> dict:
    """AUROC (+ stratified bootstrap 95% CI), sensitivity, specificity, accuracy, Brier score."""
    y, p = _check(y, p)
    auc = float(roc_auc_score(y, p))
    boots = [roc_auc_score(y[i], p[i]) for i in bootstrap_indices(y, n_boot, seed)]
    pred = p >= threshold
    tp, tn = int((pred & (y == 1)).sum()), int((~pred & (y == 0)).sum())
    return {
        "auroc": auc, "auroc_ci95": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))],
        "sensitivity": tp / int((y == 1).sum()), "specificity": tn / int((y == 0).sum()),
        "accuracy": float((pred == (y == 1)).mean()), "brier": float(np.mean((p - y) ** 2)),
        "threshold": float(threshold), "n": int(len(y)), "n_positive": int((y == 1).sum()),
    }


def paired_auroc_difference(y, p_a, p_b, n_boot: int = 1000, seed: int = 0) -> dict:
    """AUROC(a) - AUROC(b) on the same cases, with a paired bootstrap 95% CI and two-sided p-value."""
    y, p_a = _check(y, p_a)
    _, p_b = _check(y, p_b)
    diff = float(roc_auc_score(y, p_a) - roc_auc_score(y, p_b))
    boots = np.array([roc_auc_score(y[i], p_a[i]) - roc_auc_score(y[i], p_b[i])
                      for i in bootstrap_indices(y, n_boot, seed)])
    p_value = float(min(1.0, 2 * min((boots <= 0).mean(), (boots >= 0).mean())))
    return {"auroc_difference": diff, "ci95": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))],
            "p_value": p_value, "n_boot": n_boot}


def plot_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str = "ROC") -> Path:
    """ROC curves of several arms (name -> (labels, probabilities)) into one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    for name, (y, p) in curves.items():
        y, p = _check(y, p)
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{name} (AUROC {roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
