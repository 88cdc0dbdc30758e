"""Image-set metrics: realism, diversity, memorisation, text agreement.

Inputs are image sets (folders, arrays or PIL lists, see `images.py`) or embedding matrices
(from `embeddings.load_embedder`). Each metric is a small pure function with a known-case test;
`report.evaluate_sets` runs them all and records which embedder and classifier were used.
"""
from tiger.metrics.clip_score import clip_score, clip_scores
from tiger.metrics.cmmd import cmmd
from tiger.metrics.embeddings import Embedder, load_embedder
from tiger.metrics.errors import MetricInputError
from tiger.metrics.fid import fid, kid
from tiger.metrics.gradient import gradient_distance, gradient_similarity_pairs, set_gradient_similarity
from tiger.metrics.images import ImageSet, load_image_set
from tiger.metrics.inception_score import inception_score, zero_shot_inception_score, zero_shot_probabilities
from tiger.metrics.phash import phash_report
from tiger.metrics.prdc import prdc
from tiger.metrics.report import evaluate_sets, to_markdown, write_report
from tiger.metrics.ssim import set_ssim, ssim_pairs

__all__ = [
    "Embedder", "ImageSet", "MetricInputError", "clip_score", "clip_scores", "cmmd", "evaluate_sets",
    "fid", "gradient_distance", "gradient_similarity_pairs", "inception_score",
    "kid", "load_embedder", "load_image_set", "phash_report", "prdc", "set_gradient_similarity", "set_ssim",
    "ssim_pairs", "to_markdown", "write_report", "zero_shot_inception_score", "zero_shot_probabilities",
]
