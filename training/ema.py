"""Exponential moving average of a model's weights, checkpointed with the stage: diffusers'
`EMAModel` (with its warm-up, decay = min(max_decay, 1 - (1 + step)^-power), so short runs are
not frozen at their initial weights), adapted to take and fill a module.

What the coarse and fine stages save is the EMA (it gives cleaner samples from short runs);
the raw weights stay in the checkpoint so that a resumed run continues from them.
"""
from __future__ import annotations

import torch
from diffusers.training_utils import EMAModel


class EMA(EMAModel):
    """`EMAModel` over a module's parameters: `update(model)` after each optimiser step,
    `copy_to(model)` to write the averaged weights into a module of the same architecture."""

    def __init__(self, model: torch.nn.Module, max_decay: float = 0.999, power: float = 2 / 3):
        super().__init__(model.parameters(), decay=max_decay, use_ema_warmup=True, inv_gamma=1.0, power=power)

    def update(self, model: torch.nn.Module) -> None:
        self.step(model.parameters())

    def copy_to(self, model: torch.nn.Module) -> None:  # type: ignore[override]
        super().copy_to(model.parameters())
