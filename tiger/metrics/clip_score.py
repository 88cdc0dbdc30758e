"""CLIP score (Hessel et al. 2021): 100 * mean max(cos(image, its text), 0).

With the domain CLIP it measures text-image agreement of generated images with the chips that
asked for them; the per-image scores also drive augment.py's quality filter.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from tiger.metrics.errors import MetricInputError


def clip_scores(image_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
    """Per-pair scores 100 * max(cos, 0) for L2-normalised image/text embeddings (N x D each)."""
    a, b = np.asarray(image_emb, float), np.asarray(text_emb, float)
    if a.shape != b.shape or a.ndim != 2 or len(a) == 0:
        raise MetricInputError(f"CLIP score needs one text per image (got {a.shape} images, {b.shape} texts)")
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    return 100.0 * np.clip((an * bn).sum(1), 0, None)


def clip_score(pixels: np.ndarray, texts: Sequence[str], embedder) -> float:
    """Mean CLIP score of images (uint8 N x H x W) against their texts."""
    if len(pixels) != len(texts):
        raise MetricInputError(f"CLIP score needs one text per image: {len(pixels)} images, {len(texts)} texts")
    return float(clip_scores(embedder.images(pixels), embedder.texts(list(texts))).mean())
