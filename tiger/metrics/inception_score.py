"""Inception Score from class probabilities: exp(E_x KL(p(y|x) || p(y))).

No Inception network exists offline, so the probabilities come from a classifier chosen by the
caller; `zero_shot_probabilities` gives the default, the domain CLIP zero-shot over text prompts
(e.g. the knowledge base's subtype prompts). Reports name the classifier. With K classes the
score lies in [1, K]: 1 for collapsed or uninformative output, K for confident, balanced output.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from tiger.metrics.errors import MetricInputError


def inception_score(probs: np.ndarray, splits: int = 1) -> tuple[float, float]:
    """(mean, std over `splits` equal parts). `probs` N x K, rows summing to 1."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or len(p) == 0:
        raise MetricInputError(f"Inception Score needs an N x K probability matrix, got shape {p.shape}")
    if (p < -1e-9).any() or not np.allclose(p.sum(1), 1.0, atol=1e-4):
        raise MetricInputError("Inception Score: rows must be probabilities (non-negative, summing to 1)")
    if splits < 1 or splits > len(p):
        raise MetricInputError(f"Inception Score: splits must be in 1..{len(p)}, got {splits}")
    p = np.clip(p, 1e-12, 1.0)
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(0, keepdims=True)
        kl = (part * (np.log(part) - np.log(marginal))).sum(1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def zero_shot_probabilities(image_emb: np.ndarray, text_emb: np.ndarray, logit_scale: float = 100.0) -> np.ndarray:
    """softmax(logit_scale * cos(image, prompt)) over the prompts (both inputs L2-normalised)."""
    logits = logit_scale * np.asarray(image_emb) @ np.asarray(text_emb).T
    logits -= logits.max(1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(1, keepdims=True)


def default_prompts() -> tuple[list[str], str]:
    """Class prompts for the zero-shot IS: the knowledge base's subtype profiles when present."""
    try:
        from tiger import knowledge

        names = list(knowledge.SUBTYPE_PROFILES)
        prompts = [knowledge.full_prompt(knowledge.SUBTYPE_PROFILES[n]) for n in names]
        return prompts, "domain CLIP zero-shot over knowledge-base subtype profiles: " + ", ".join(names)
    except (ImportError, AttributeError):
        names = ["benign", "papillary", "follicular", "medullary"]
        prompts = [f"thyroid nodule, {n}" for n in names]
        return prompts, "domain CLIP zero-shot over subtype names: " + ", ".join(names)


def zero_shot_inception_score(image_emb: np.ndarray, embedder, prompts: Sequence[str] | None = None,
                              splits: int = 1) -> tuple[float, float, str]:
    """IS with the embedder as classifier; returns (mean, std, description of the classifier)."""
    if prompts is None:
        prompts, desc = default_prompts()
    else:
        desc = f"zero-shot over {len(prompts)} given prompts"
    probs = zero_shot_probabilities(image_emb, embedder.texts(list(prompts)), embedder.logit_scale())
    mean, std = inception_score(probs, splits=splits)
    return mean, std, desc
