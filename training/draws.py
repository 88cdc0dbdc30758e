"""Every random draw of a training step: the generator of (seed, step, rank), batches, flips, text dropout.

Why a generator per step rather than one global stream: a run that is stopped and resumed from
a checkpoint follows exactly the path of an uninterrupted one (the tests compare them bit for
bit). Why the rank: under `accelerate launch --num_processes N` every process runs the same
loop, and without the rank in the seed all N would draw the same batch, so N devices would do
the work of one. With it, process r draws its own batch and the gradients that DDP averages
come from N different batches (an effective batch N times the per-process `--batch-size`).
Rank 0 keeps the seeds a one-process run always had.
"""
from __future__ import annotations

from typing import Sequence

import torch

from training.errors import TrainingInputError

# torch's CPU generator keeps only the low 32 bits of a seed, so the rank must move those bits.
# 906_908_087 = 7919 * round(2**32 * 0.618...) mod 2**32: process r's step s is the seed of step
# s + r * 2_654_435_769 (mod 2**32) of process 0, and for ranks < 16 and streams < 4 no two
# (rank, stream) pairs share a seed within 38 million steps (checked in tests/test_training_processes.py).
_RANK_STRIDE = 906_908_087


def step_seed(seed: int, step: int, stream: int = 0, rank: int = 0) -> int:
    """The seed of one step's draws; `stream` separates independent draws, `rank` the processes."""
    return (seed * 1_000_003 + step * 7919 + stream * 104_729 + rank * _RANK_STRIDE) % (2**63 - 1)


def step_generator(device: torch.device | str, seed: int, step: int, stream: int = 0,
                   rank: int = 0) -> torch.Generator:
    """A generator for one step's random draws on `device` (see `step_seed`)."""
    g = torch.Generator(device=device)
    g.manual_seed(step_seed(seed, step, stream, rank))
    return g


def batch_indices(n: int, batch_size: int, g: torch.Generator) -> torch.Tensor:
    """Indices of one batch (with replacement across steps, without within a batch when possible)."""
    if n <= 0:
        raise TrainingInputError("the training split is empty")
    if batch_size <= n:
        return torch.randperm(n, generator=g, device=g.device)[:batch_size]
    return torch.randint(0, n, (batch_size,), generator=g, device=g.device)


def random_hflip(g: torch.Generator, *tensors: torch.Tensor) -> list[torch.Tensor]:
    """Flip the same samples left-right in every tensor (ultrasound is not handed left/right)."""
    n = tensors[0].shape[0]
    flip = torch.rand(n, generator=g, device=g.device) < 0.5
    flip = flip.view(n, *([1] * (tensors[0].dim() - 1)))
    return [torch.where(flip, t.flip(-1), t) for t in tensors]


def drop_texts(texts: Sequence[str], p: float, g: torch.Generator) -> list[str]:
    """Replace each text with "" with probability p (classifier-free guidance dropout)."""
    keep = (torch.rand(len(texts), generator=g, device=g.device) >= p).tolist()
    return [t if k else "" for t, k in zip(texts, keep)]
