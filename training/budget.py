"""How long a stage may train: a step and minute budget, and the `stage=number` lists of the chain.

Time is summed over resumed runs (it is checkpointed with the step counter), so a stage that
is stopped and resumed still fits the session it was planned for.
"""
from __future__ import annotations

from dataclasses import dataclass

from training.errors import TrainingInputError


@dataclass
class Budget:
    """Stop conditions; time is summed over resumed runs so a stage fits one session."""

    max_steps: int
    max_minutes: float

    def __post_init__(self) -> None:
        if self.max_steps < 0:
            raise TrainingInputError(f"--max-steps must be >= 0, got {self.max_steps}")
        if not (self.max_minutes >= 0):
            raise TrainingInputError(f"--max-minutes must be >= 0, got {self.max_minutes}")

    def exhausted(self, step: int, elapsed_s: float) -> bool:
        return step >= self.max_steps or elapsed_s >= self.max_minutes * 60.0


def parse_minutes(spec: str | None) -> dict[str, float]:
    """"clip=2,vae=6" -> {"clip": 2.0, "vae": 6.0}; a clear message on anything else.

    The chain uses the same form for minutes, steps, batch sizes and learning rates."""
    out: dict[str, float] = {}
    if not spec:
        return out
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise TrainingInputError(f"bad budget {part!r}: write stage=number, e.g. vae=6")
        k, v = part.split("=", 1)
        try:
            out[k.strip()] = float(v)
        except ValueError:
            raise TrainingInputError(f"bad budget {part!r}: {v!r} is not a number") from None
    return out
