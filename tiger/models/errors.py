"""Errors of the model parts: an unknown preset, a missing or corrupt model folder."""
from __future__ import annotations

from pathlib import Path


class PresetError(ValueError):
    """An unknown preset name or a preset that lacks what it needs (e.g. the SD2 folder)."""


class ModelFolderError(FileNotFoundError, ValueError):
    """A model folder that is missing, incomplete or corrupt; the message names the file."""

    def __init__(self, message: str, path: str | Path | None = None):
        super().__init__(message)
        self.path = str(path) if path is not None else None

    def __str__(self) -> str:  # FileNotFoundError would otherwise print errno formatting
        return self.args[0]
