"""The one error type of the training commands, so every stage reports bad input the same way."""
from __future__ import annotations


class TrainingInputError(ValueError):
    """Bad input to a training command (missing folder, empty split, bad budget), for people."""
