"""Cheap live previews: the predicted clean latent mapped to grey pixels without the VAE decoder.

Why: a full decode of one 128 px image costs about as much as one denoising step on 2 CPU cores,
so decoding every few steps would slow the run it previews. As in AUTOMATIC1111's "approx cheap"
preview, a per-pixel linear map (latent channels -> grey) is enough to show the anatomy forming.
The map is not shipped with the model: it is fitted by least squares to the pipeline's own full
decodes (each finished image refines it), so it holds for any model folder, including an SD2 VAE.
Until the first fit exists, a preview is a full decode (which provides the first fit).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

MAX_SAMPLES = 8 * 32 * 32   # the latest few images' latent pixels are kept for the fit


class LatentPreviewer:
    """Linear latent -> grey map, fitted on (latent, decoded image) pairs."""

    def __init__(self) -> None:
        self._x: np.ndarray | None = None   # (N, C+1) latent pixels with a bias column
        self._y: np.ndarray | None = None   # (N,) grey levels in [-1, 1]
        self.weights: np.ndarray | None = None

    @property
    def fitted(self) -> bool:
        return self.weights is not None

    def update(self, latents: torch.Tensor, grey: torch.Tensor) -> None:
        """Add pairs: latents (B, C, h, w) and decoded grey images (B, H, W) in [-1, 1]."""
        lat = latents.detach().float().cpu()
        small = F.adaptive_avg_pool2d(grey.detach().float().cpu()[:, None], lat.shape[-2:])[:, 0]
        x = lat.permute(0, 2, 3, 1).reshape(-1, lat.shape[1]).numpy()
        x = np.concatenate([x, np.ones((len(x), 1), np.float32)], 1)
        y = small.reshape(-1).numpy()
        self._x = x if self._x is None else np.concatenate([self._x, x])[-MAX_SAMPLES:]
        self._y = y if self._y is None else np.concatenate([self._y, y])[-MAX_SAMPLES:]
        self.weights = np.linalg.lstsq(self._x, self._y, rcond=None)[0].astype(np.float32)

    def image(self, latent: torch.Tensor, size: int) -> Image.Image:
        """One latent (C, h, w) -> a size x size greyscale preview."""
        if self.weights is None:
            raise RuntimeError("the previewer has no fit yet: decode one image first")
        lat = latent.detach().float().cpu()
        w = torch.from_numpy(self.weights)
        grey = torch.einsum("chw,c->hw", lat, w[:-1]) + w[-1]
        grey = F.interpolate(grey[None, None], size=(size, size), mode="bilinear", align_corners=False)[0, 0]
        arr = ((grey.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
        return Image.fromarray(arr, mode="L")


def predicted_clean(sched, latents: torch.Tensor, pred: torch.Tensor, t) -> torch.Tensor:
    """The clean latent the model predicts at step t (what a preview shows), from an eps, v or x0
    output, with the scheduler's own alphas (so it holds for DDIM and the multistep solvers)."""
    a = sched.alphas_cumprod.to(latents.device)[int(t)].to(latents.dtype)
    kind = sched.config.prediction_type
    if kind == "v_prediction":
        return a.sqrt() * latents - (1 - a).sqrt() * pred
    if kind == "epsilon":
        return (latents - (1 - a).sqrt() * pred) / a.sqrt()
    return pred
