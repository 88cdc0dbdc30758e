"""A dataset split held in memory as tensors, the form every training stage draws batches from.

Why not a DataLoader: the dataset is small (a few hundred 128 px images), so it is loaded into
tensors once (on the GPU when training there) and batches are drawn by index, which is far
faster than a DataLoader on 2 CPU cores (benchmarks/bench_training_data.py). Under `accelerate
launch` every process holds the whole split and draws its own batches (training/draws.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from training.errors import TrainingInputError


@dataclass
class TensorData:
    """A split held in memory: images/masks/sobel as N x 1 x H x W tensors plus the texts."""

    images: torch.Tensor
    masks: torch.Tensor
    sobel: torch.Tensor
    text: list[str]
    text_fg: list[str]
    text_bg: list[str]
    ids: list[str]
    records: list[dict]

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device: torch.device) -> "TensorData":
        return TensorData(self.images.to(device), self.masks.to(device), self.sobel.to(device),
                          self.text, self.text_fg, self.text_bg, self.ids, self.records)


def load_split(data: str | Path, split_name: str = "train", split_seed: int = 0,
               device: torch.device | str = "cpu") -> TensorData:
    """Read one split of a canonical dataset into tensors once (no DataLoader)."""
    from tiger.data import TigerDataset, load_metadata, split

    folder = Path(data)
    if not (folder / "metadata.jsonl").exists():
        raise TrainingInputError(f"{folder} is not a canonical dataset folder (no metadata.jsonl); "
                                 "prepare it first (training.prepare / tiger.importers)")
    records = load_metadata(folder)
    parts = split(records, seed=split_seed)
    if split_name not in parts:
        raise TrainingInputError(f"unknown split {split_name!r}; have {sorted(parts)}")
    recs = parts[split_name]
    if not recs:
        raise TrainingInputError(f"the {split_name} split of {folder} is empty ({len(records)} records in all)")
    ds = TigerDataset(folder, records=recs, augment=False)
    items = [ds[i] for i in range(len(ds))]
    stack = lambda key: torch.stack([torch.as_tensor(it[key]).float() for it in items])  # noqa: E731
    return TensorData(stack("image"), stack("mask"), stack("sobel"),
                      [it["text"] for it in items], [it["text_fg"] for it in items],
                      [it["text_bg"] for it in items], [str(it["id"]) for it in items],
                      recs).to(device)
