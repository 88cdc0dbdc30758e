"""A patch discriminator for the VAE that actually learns, and the hinge/adaptive-weight maths.

DESIGN.md records a plain patch discriminator whose hinge loss never left 2.0: it learned
nothing, and its "sharpening" was streaks and grids. What is different here, and why:
- spectral norm on every conv and no BatchNorm (BatchNorm at small batches mixes real and fake
  statistics and lets the critic cheat or stall); spectral norm bounds the critic's Lipschitz
  constant so its gradients to the decoder are smooth rather than grid-like;
- its own higher learning rate (two time-scale update rule) and Adam betas (0.5, 0.9);
- whole 128 px images, and a warm-up in which the critic trains alone before its term enters
  the generator's loss (then ramps in linearly), so the decoder first receives a signal from a
  critic that already separates real from reconstructed speckle;
- an adaptive weight (Esser et al., taming transformers) that scales the adversarial gradient
  to the reconstruction gradient at the decoder's last layer, clamped.
Its loss, the mean logits on real/fake and its accuracy are logged so one can see it learn.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm


class PatchDiscriminator(nn.Module):
    """PatchGAN critic (Isola et al.): a map of real/fake logits, one per ~receptive field."""

    def __init__(self, in_channels: int = 1, width: int = 64, layers: int = 3):
        super().__init__()
        mods: list[nn.Module] = [spectral_norm(nn.Conv2d(in_channels, width, 4, 2, 1)), nn.LeakyReLU(0.2)]
        ch = width
        for i in range(1, layers):
            nxt = min(width * 2 ** i, width * 8)
            mods += [spectral_norm(nn.Conv2d(ch, nxt, 4, 2, 1)), nn.LeakyReLU(0.2)]
            ch = nxt
        nxt = min(ch * 2, width * 8)
        mods += [spectral_norm(nn.Conv2d(ch, nxt, 4, 1, 1)), nn.LeakyReLU(0.2),
                 spectral_norm(nn.Conv2d(nxt, 1, 4, 1, 1))]
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Critic hinge loss; 2.0 is chance level (logits at 0), 0 is a perfect margin."""
    return F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean()


def hinge_g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    return -logits_fake.mean()


def adaptive_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor,
                    max_weight: float = 1e4) -> torch.Tensor:
    """||d rec / d last|| / ||d g / d last||: the adversarial gradient at the scale of the
    reconstruction gradient, so neither swamps the other whatever the loss magnitudes."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    w = rec_grad.norm() / (g_grad.norm() + 1e-4)
    return w.clamp(0.0, max_weight).detach()


def gan_ramp(progress: float, start: float, warmup: float) -> tuple[bool, float]:
    """(train the critic?, weight of its term for the generator) at a training progress in [0, 1].

    The critic trains from `start`; its term enters the generator loss after a further
    `warmup` and ramps to full weight over another `warmup`."""
    if progress < start:
        return False, 0.0
    if warmup <= 0:
        return True, 1.0
    return True, float(min(1.0, max(0.0, (progress - start - warmup) / warmup)))
