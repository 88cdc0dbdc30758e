"""Mask overlap: IoU and Dice of binary masks (the segmenter's report numbers).

Both are undefined when prediction and truth are empty; that case is scored 1 (both agree
there is no nodule) and counted separately, so a report never averages a NaN.
"""
from __future__ import annotations

import numpy as np

from tiger.metrics.errors import MetricInputError


def iou_dice(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(IoU, Dice) of two masks of one shape (any non-zero pixel is foreground), by torchmetrics'
    `binary_jaccard_index` and `binary_f1_score` (Dice is the F1 score of the foreground)."""
    import torch
    from torchmetrics.functional.classification import binary_f1_score, binary_jaccard_index

    p, t = np.asarray(pred) > 0, np.asarray(truth) > 0
    if p.shape != t.shape:
        raise MetricInputError(f"mask shapes differ: predicted {p.shape}, truth {t.shape}")
    if not (p | t).any():
        return 1.0, 1.0
    pt, tt = torch.from_numpy(p.ravel()).long(), torch.from_numpy(t.ravel()).long()
    return float(binary_jaccard_index(pt, tt)), float(binary_f1_score(pt, tt))


def mean_iou_dice(preds, truths) -> dict[str, float]:
    """Mean IoU and Dice over pairs, plus how many truths were empty or missed entirely."""
    if len(preds) != len(truths) or len(preds) == 0:
        raise MetricInputError(f"need one predicted mask per true mask (got {len(preds)} and {len(truths)})")
    scores = np.array([iou_dice(p, t) for p, t in zip(preds, truths)])
    missed = sum(int((np.asarray(p) > 0).sum() == 0 and (np.asarray(t) > 0).any()) for p, t in zip(preds, truths))
    return {"iou": float(scores[:, 0].mean()), "dice": float(scores[:, 1].mean()), "n": len(preds),
            "missed": missed}
