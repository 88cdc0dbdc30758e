"""A one-device stand-in for `accelerate.Accelerator`, used only when accelerate is not installed.

Why: the chain is sometimes run on a borrowed GPU machine that gets its packages as carried
wheels; a missing accelerate wheel must not cost the training session. This class offers the
subset of the Accelerator API that training/ uses (prepare, autocast, backward, gradient
clipping, save_state/load_state with registered objects and RNG states), for one process on
one device. With accelerate installed (requirements.txt pins it) it is never used.
"""
from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Any

import torch


class SingleDeviceAccelerator:
    num_processes = 1
    is_main_process = True
    is_local_main_process = True

    def __init__(self, device: torch.device, mixed_precision: str = "no"):
        self.device = device
        self.mixed_precision = mixed_precision
        self._models: list[torch.nn.Module] = []
        self._optimizers: list[torch.optim.Optimizer] = []
        self._custom: list[Any] = []

    def prepare(self, *objs: Any) -> Any:
        for o in objs:
            if isinstance(o, torch.nn.Module):
                o.to(self.device)
                self._models.append(o)
            elif isinstance(o, torch.optim.Optimizer):
                self._optimizers.append(o)
        return objs if len(objs) != 1 else objs[0]

    def register_for_checkpointing(self, obj: Any) -> None:
        self._custom.append(obj)

    def autocast(self):
        if self.mixed_precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def clip_grad_norm_(self, params, max_norm: float):
        return torch.nn.utils.clip_grad_norm_(params, max_norm)

    def unwrap_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return model

    def wait_for_everyone(self) -> None:
        pass

    def free_memory(self) -> None:
        pass

    def save_state(self, folder: str) -> None:
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        state = {"models": [m.state_dict() for m in self._models],
                 "optimizers": [o.state_dict() for o in self._optimizers],
                 "custom": [c.state_dict() for c in self._custom],
                 "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                         "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}}
        torch.save(state, out / "single_device_state.pt")

    def load_state(self, folder: str) -> None:
        state = torch.load(Path(folder) / "single_device_state.pt", map_location=self.device, weights_only=False)
        for m, s in zip(self._models, state["models"]):
            m.load_state_dict(s)
        for o, s in zip(self._optimizers, state["optimizers"]):
            o.load_state_dict(s)
        for c, s in zip(self._custom, state["custom"]):
            c.load_state_dict(s)
        torch.set_rng_state(state["rng"]["torch"].cpu())
        random.setstate(state["rng"]["python"])
        if state["rng"]["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
