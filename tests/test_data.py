"""tiger.data: metadata loading, grouped stratified seeded splits, the torch Dataset."""
from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader

from tiger.data import DatasetFormatError, TigerDataset, load_metadata, split


def test_split_is_grouped_stratified_and_seeded(ddti_canonical):
    rows = load_metadata(ddti_canonical)
    a, b, c = split(rows, seed=1), split(rows, seed=1), split(rows, seed=2)
    assert [r["id"] for r in a["test"]] == [r["id"] for r in b["test"]]
    assert [r["id"] for r in a["test"]] != [r["id"] for r in c["test"]]
    n = len(rows)
    assert abs(len(a["train"]) - 0.7 * n) < 0.05 * n and abs(len(a["test"]) - 0.15 * n) < 0.05 * n
    share = {k: Counter(r["label"] for r in v)["malignant"] / len(v) for k, v in a.items()}
    assert max(share.values()) - min(share.values()) < 0.1  # stratified by label
    groups = {k: {r["group"] for r in v} for k, v in a.items()}
    assert not (groups["train"] & groups["test"]) and not (groups["train"] & groups["val"])
    with pytest.raises(ValueError, match="fractions"):
        split(rows, fractions=(0.5, 0.5, 0.5))


def test_dataset_items(ddti_small):
    ds = TigerDataset(ddti_small, augment=True, seed=0)
    assert len(ds) == 24
    labels = {ds.records[i]["label"] for i in range(len(ds))}
    assert labels == {"benign", "malignant"}
    item = ds[0]
    assert item["image"].shape == item["mask"].shape == item["sobel"].shape == (1, 128, 128)
    assert -1.0 <= item["image"].min() and item["image"].max() <= 1.0
    assert set(item["mask"].unique().tolist()) == {0.0, 1.0}
    assert 0.0 <= item["sobel"].min() and item["sobel"].max() <= 1.0
    assert item["label"] in (0, 1) and item["text"] == f"{item['text_fg']}. {item['text_bg']}"
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 1, 128, 128) and isinstance(batch["text_fg"], list)
    assert batch["label"].dtype == torch.int64


def test_dataset_split_and_flip(ddti_canonical):
    train = TigerDataset(ddti_canonical, split="train", seed=0)
    test = TigerDataset(ddti_canonical, split="test", seed=0)
    assert not {r["group"] for r in train.records} & {r["group"] for r in test.records}
    plain = TigerDataset(ddti_canonical, records=train.records[:8])
    flipped = TigerDataset(ddti_canonical, records=train.records[:8], augment=True, seed=5)
    pairs = [(plain[i], flipped[i]) for i in range(8)]
    n_flipped = sum(bool(torch.equal(p["mask"].flip(-1), f["mask"]) and not torch.equal(p["mask"], f["mask"]))
                    for p, f in pairs)
    assert 0 < n_flipped < 8  # random, and image/mask flip together
    for p, f in pairs:
        assert torch.equal(p["image"], f["image"]) or torch.equal(p["image"].flip(-1), f["image"])


def test_bad_metadata_messages(tmp_path):
    with pytest.raises(DatasetFormatError, match="training.prepare"):
        load_metadata(tmp_path)
    (tmp_path / "metadata.jsonl").write_text('{"id": "a"}\n')
    with pytest.raises(DatasetFormatError, match="line 1 lacks"):
        load_metadata(tmp_path)
    row = {"id": "a", "file_name": "../../x.png", "mask": "m.png", "condition_bg": "s.png", "text_fg": "",
           "text_bg": "", "label": None, "group": "a"}
    (tmp_path / "metadata.jsonl").write_text(json.dumps(row) + "\nnot json\n")
    with pytest.raises(DatasetFormatError, match="line 2 is not JSON"):
        load_metadata(tmp_path)
    with pytest.raises(DatasetFormatError, match="outside"):
        TigerDataset(tmp_path, records=[row])[0]
    with pytest.raises(ValueError, match="split"):
        TigerDataset(tmp_path, records=[row], split="holdout")
