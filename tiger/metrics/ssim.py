"""SSIM (Wang et al. 2004) for image pairs and for unpaired real vs generated sets.

Paired SSIM matches scikit-image's `structural_similarity(data_range=255, gaussian_weights=True,
sigma=1.5, use_sample_covariance=False)`: an 11-tap Gaussian window, mean over the map with
the 5-pixel border cropped (so border padding never matters). It runs batched in torch because
a scikit-image loop over thousands of pairs is the slow part of an evaluation.

Generated images have no paired real image in Diversify mode, so the set score compares each
generated image with its most similar real images: the `candidates` nearest by pixel distance at
32 x 32, scored with full SSIM, best one kept. 1 for identical sets, lower when structure differs.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tiger.metrics.errors import MetricInputError
from tiger.metrics.images import same_size

SIGMA = 1.5
RADIUS = int(3.5 * SIGMA + 0.5)  # scipy's gaussian_filter with truncate=3.5
C1 = (0.01 * 255) ** 2
C2 = (0.03 * 255) ** 2


def _kernel(dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(-RADIUS, RADIUS + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / SIGMA) ** 2)
    return (k / k.sum()).to(dtype)


def _blur(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Separable valid Gaussian blur of N x H x W (one-channel convolutions: the fast oneDNN path,
    unlike a grouped convolution over stacked maps)."""
    x = F.conv2d(x.unsqueeze(1), k.view(1, 1, 1, -1))
    return F.conv2d(x, k.view(1, 1, -1, 1))[:, 0]


def local_stats(pixels: np.ndarray, dtype: torch.dtype = torch.float32, batch: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image local mean and local mean of squares (valid Gaussian window): computed once
    per image, so scoring many pairs only blurs the cross term x*y."""
    k = _kernel(dtype)
    mus, sqs = [], []
    for i in range(0, len(pixels), batch):
        x = torch.from_numpy(pixels[i:i + batch]).to(dtype)
        mus.append(_blur(x, k))
        sqs.append(_blur(x * x, k))
    return torch.cat(mus), torch.cat(sqs)


def ssim_index_pairs(a: np.ndarray, b: np.ndarray, ia: np.ndarray, ib: np.ndarray, batch: int = 256,
                     dtype: torch.dtype = torch.float32) -> np.ndarray:
    """SSIM of the pairs (a[ia[j]], b[ib[j]]) without blurring any image twice."""
    if a.ndim != 3 or a.shape[1:] != b.shape[1:]:
        raise MetricInputError(f"SSIM pairs need equal image sizes, got {a.shape[1:]} and {b.shape[1:]}")
    if min(a.shape[1:]) < 2 * RADIUS + 1:
        raise MetricInputError(f"SSIM needs images of at least {2 * RADIUS + 1} px, got {a.shape[1:]}")
    k = _kernel(dtype)
    ua, uaa = local_stats(a, dtype)
    ub, ubb = local_stats(b, dtype)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    ia, ib = torch.as_tensor(ia), torch.as_tensor(ib)
    out = []
    for j in range(0, len(ia), batch):
        pa, pb = ia[j:j + batch], ib[j:j + batch]
        uxy = _blur(ta[pa].to(dtype) * tb[pb].to(dtype), k)
        ux, uy = ua[pa], ub[pb]
        vx, vy, vxy = uaa[pa] - ux * ux, ubb[pb] - uy * uy, uxy - ux * uy
        s = ((2 * ux * uy + C1) * (2 * vxy + C2)) / ((ux * ux + uy * uy + C1) * (vx + vy + C2))
        out.append(s.mean((1, 2)).double())
    return torch.cat(out).numpy() if out else np.zeros(0)


def ssim_pairs(a: np.ndarray, b: np.ndarray, batch: int = 256, dtype: torch.dtype = torch.float32) -> np.ndarray:
    """SSIM of each pair (a[i], b[i]); uint8 N x H x W inputs of one size. Returns N floats."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise MetricInputError(f"SSIM pairs need equal shapes, got {a.shape} and {b.shape}")
    idx = np.arange(len(a))
    return ssim_index_pairs(a, b, idx, idx, batch=batch, dtype=dtype)


def _small(px: np.ndarray, size: int = 32) -> torch.Tensor:
    t = torch.from_numpy(px).float().unsqueeze(1)
    return F.adaptive_avg_pool2d(t, size).flatten(1) if px.shape[1] >= size else t.flatten(1)


def nearest_real(real: np.ndarray, generated: np.ndarray, candidates: int = 5) -> np.ndarray:
    """Indices (N_gen x candidates) of the real images closest to each generated one at 32 px."""
    r, g = _small(real), _small(generated)
    d = torch.cdist(g, r)
    k = min(candidates, len(real))
    return d.topk(k, largest=False).indices.numpy()


def set_ssim(real: np.ndarray, generated: np.ndarray, candidates: int = 5) -> float:
    """Mean over generated images of the best SSIM against their `candidates` nearest real images."""
    if len(real) == 0 or len(generated) == 0:
        raise MetricInputError("SSIM needs non-empty real and generated sets")
    same_size(real, generated, "SSIM")
    idx = nearest_real(real, generated, candidates)
    k = idx.shape[1]
    scores = ssim_index_pairs(real, generated, idx.reshape(-1), np.repeat(np.arange(len(generated)), k))
    return float(scores.reshape(-1, k).max(1).mean())
