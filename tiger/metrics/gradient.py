"""Gradient similarity: does the generated set have the edge structure of the real one?

Two views, both on Sobel gradient magnitudes (edges carry the anatomy of an ultrasound image:
gland borders, nodule margins, speckle):
- `gradient_distance` (the report's "GS", lower is better as in the paper's Table 2): the total
  variation distance between the two sets' pooled gradient-magnitude histograms, in [0, 1];
  0 for sets with the same edge statistics, large for blurred, shifted or collapsed sets.
- `gradient_similarity_pairs` (Liu, Lin & Narwaria, IEEE TIP 2012): per pixel
  (2 g1 g2 + C) / (g1^2 + g2^2 + C) averaged, 1 for identical images; the set version scores
  each generated image against its nearest real image, like `set_ssim`.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tiger.metrics.errors import MetricInputError
from tiger.metrics.images import same_size
from tiger.metrics.ssim import nearest_real

BINS = 64
MAX_MAGNITUDE = 4 * 255.0  # |Gx| + |Gy| bound of a 3x3 Sobel on uint8 (each at most 4*255)
LIU_C = 0.0026 * (MAX_MAGNITUDE ** 2)  # Liu et al.'s constant on their [0,1] scale, rescaled


def sobel_magnitude(pixels: np.ndarray, batch: int = 512) -> np.ndarray:
    """sqrt(Gx^2 + Gy^2) of uint8 N x H x W (valid 3x3 Sobel), float32 N x (H-2) x (W-2)."""
    kx = torch.tensor([[1., 0., -1.], [2., 0., -2.], [1., 0., -1.]]).view(1, 1, 3, 3)
    ky = kx.transpose(2, 3)
    out = []
    for i in range(0, len(pixels), batch):
        x = torch.from_numpy(pixels[i:i + batch]).float().unsqueeze(1)
        gx, gy = F.conv2d(x, kx), F.conv2d(x, ky)
        out.append(torch.sqrt(gx * gx + gy * gy)[:, 0])
    return torch.cat(out).numpy()


def gradient_histogram(pixels: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Normalised histogram of pooled gradient magnitudes (fixed range, so sets are comparable)."""
    if len(pixels) == 0:
        raise MetricInputError("gradient histogram of an empty set")
    mag = sobel_magnitude(pixels)
    h, _ = np.histogram(np.clip(mag, 0, MAX_MAGNITUDE - 1e-3), bins=bins, range=(0, MAX_MAGNITUDE))
    return h / h.sum()


def gradient_distance(real: np.ndarray, generated: np.ndarray, bins: int = BINS) -> float:
    """Total variation distance of the gradient-magnitude histograms (0 = same edge statistics)."""
    return float(0.5 * np.abs(gradient_histogram(real, bins) - gradient_histogram(generated, bins)).sum())


def _liu(g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    return ((2 * g1 * g2 + LIU_C) / (g1 * g1 + g2 * g2 + LIU_C)).flatten(1).mean(1)


def gradient_similarity_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Liu et al. gradient similarity of each pair (a[i], b[i]); N floats in (0, 1]."""
    if a.shape != b.shape:
        raise MetricInputError(f"gradient similarity pairs need equal shapes, got {a.shape} and {b.shape}")
    return _liu(torch.from_numpy(sobel_magnitude(a)), torch.from_numpy(sobel_magnitude(b))).double().numpy()


def set_gradient_similarity(real: np.ndarray, generated: np.ndarray, candidates: int = 5, batch: int = 512) -> float:
    """Mean over generated images of the best Liu similarity against their nearest real images
    (gradient maps computed once per image, then indexed per pair)."""
    if len(real) == 0 or len(generated) == 0:
        raise MetricInputError("gradient similarity needs non-empty real and generated sets")
    same_size(real, generated, "gradient similarity")
    idx = torch.as_tensor(nearest_real(real, generated, candidates))
    k = idx.shape[1]
    gr, gg = torch.from_numpy(sobel_magnitude(real)), torch.from_numpy(sobel_magnitude(generated))
    ir, ig = idx.reshape(-1), torch.arange(len(generated)).repeat_interleave(k)
    s = torch.cat([_liu(gr[ir[j:j + batch]], gg[ig[j:j + batch]]) for j in range(0, len(ir), batch)])
    return float(s.view(-1, k).max(1).values.double().mean())
