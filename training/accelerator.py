"""The `accelerate.Accelerator` of a stage: device, mixed precision, and one setting per process.

One process on a CPU or a GPU; `accelerate launch --num_processes N` runs the same stage on N
devices (DDP), each process drawing its own batches (training/draws.py). accelerate keeps its
state as a process-wide singleton, so every stage a process runs (the chain runs four, the
tests more) must ask for the same device type and precision; a conflicting request gets a
clear message instead of accelerate's "restart your runtime".
"""
from __future__ import annotations

import os
from pathlib import Path

import tiger  # noqa: F401  (offline settings before third-party imports)
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, is_initialized
from accelerate.utils import ProjectConfiguration

from tiger.device import pick_device, pick_dtype
from training.errors import TrainingInputError


def make_accelerator(device: str | None, out: Path, precision: str = "auto") -> Accelerator:
    """An Accelerator on the requested device, mixed precision as `pick_dtype` says.

    bf16 autocast only where it is fast (CUDA with bf16, AMX CPUs); fp32 elsewhere.
    """
    dev = pick_device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainingInputError("--device cuda was asked for but no CUDA GPU is visible")
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}.get(precision) or pick_dtype(dev)
    mixed = "bf16" if dtype == torch.bfloat16 else "no"
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # fixed shapes (crops excepted): pick the fastest kernels
        if dev.index is not None and "LOCAL_RANK" not in os.environ:
            torch.cuda.set_device(dev)
    if is_initialized():
        state = AcceleratorState()
        if state.device.type != dev.type or state.mixed_precision != mixed:
            raise TrainingInputError(
                f"this process already trained on {state.device.type} with mixed precision "
                f"{state.mixed_precision!r}; accelerate keeps one setting per process, so run the stage "
                f"on {dev.type} with {mixed!r} in a new process (python -m training.train_<stage> ...)")
    return Accelerator(cpu=dev.type == "cpu", mixed_precision=mixed,
                       project_config=ProjectConfiguration(project_dir=str(out)))


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"
