"""Attentional feature fusion (AFF) of the FG and BG ControlNet residuals.

`AFFFusion`: 13 AFF modules (12 down residuals + mid), zero-initialised so that the untrained
fusion returns exactly fg + bg (MultiControlNet behaviour)."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin


def _norm(kind: str, ch: int, pooled: bool = False) -> nn.Module:
    """GroupNorm (or none). The global branch sees a 1x1 pooled map, so it normalises over all
    channels in one group (per-channel groups would have one value each and output zeros)."""
    if kind == "none":
        return nn.Identity()
    return nn.GroupNorm(1 if pooled else math.gcd(ch, 8), ch)


class AFFModule(nn.Module):
    """Attentional Feature Fusion (Dai et al., WACV 2021) of one residual pair.

    z = fg + bg; w = sigmoid(local(z) + global(z)); out = 2 fg w + 2 bg (1 - w).
    GroupNorm (or none) instead of BatchNorm: BatchNorm breaks at batch 1 and mixes the CFG
    halves. The last convs are zero-initialised, so w = 0.5 and out == fg + bg exactly at init.
    """

    def __init__(self, channels: int, reduction: int = 4, norm: str = "group"):
        super().__init__()
        mid = max(channels // reduction, 4)

        def branch(pooled: bool) -> nn.Sequential:
            last = nn.Conv2d(mid, channels, 1)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            return nn.Sequential(nn.Conv2d(channels, mid, 1), _norm(norm, mid, pooled), nn.ReLU(inplace=True), last)

        self.local_att = branch(pooled=False)
        self.global_att = branch(pooled=True)

    def forward(self, fg: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
        z = fg + bg
        w = torch.sigmoid(self.local_att(z) + self.global_att(F.adaptive_avg_pool2d(z, 1)))
        return 2 * fg * w + 2 * bg * (1 - w)


class AFFFusion(ModelMixin, ConfigMixin):
    """The 13 AFF modules that fuse the FG and BG ControlNets' residuals pairwise (trained)."""

    config_name = "config.json"

    @register_to_config
    def __init__(self, channels: Sequence[int] = (), reduction: int = 4, norm: str = "group"):
        super().__init__()
        if norm not in ("group", "none"):
            raise ValueError(f"AFF norm must be 'group' or 'none' (BatchNorm mixes the CFG halves), got {norm!r}")
        self.blocks = nn.ModuleList(AFFModule(int(c), reduction, norm) for c in channels)

    def forward(self, fg: Sequence[torch.Tensor], bg: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(fg) != len(self.blocks) or len(bg) != len(self.blocks):
            raise ValueError(f"AFFFusion has {len(self.blocks)} modules but got {len(fg)} FG and {len(bg)} BG residuals")
        return [blk(a, b) for blk, a, b in zip(self.blocks, fg, bg)]
