"""Exponential moving average of a model's weights, checkpointed with the stage.

What the coarse and fine stages save is the EMA (it gives cleaner samples from short runs);
the raw weights stay in the checkpoint so that a resumed run continues from them.
"""
from __future__ import annotations

import torch


class EMA:
    """Exponential moving average of a model's trainable weights (with the usual warm-up,
    decay = min(max_decay, 1 - (1 + step)^-power)), so short runs are not frozen at init."""

    def __init__(self, model: torch.nn.Module, max_decay: float = 0.999, power: float = 2 / 3):
        self.max_decay = max_decay
        self.power = power
        self.num_updates = 0
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()
                       if v.dtype.is_floating_point}

    def decay(self) -> float:
        return min(self.max_decay, 1.0 - (1.0 + self.num_updates) ** -self.power)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.num_updates += 1
        d = self.decay()
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].lerp_(v.detach().float(), 1.0 - d)

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        state = model.state_dict()
        for k, v in self.shadow.items():
            state[k].copy_(v.to(state[k].dtype))

    def state_dict(self) -> dict:
        return {"num_updates": self.num_updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.num_updates = int(state["num_updates"])
        for k, v in state["shadow"].items():
            self.shadow[k] = v.to(self.shadow[k].device).float()
