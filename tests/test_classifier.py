"""Downstream protocol: classifier arms a-d on real DDTI, bootstrap AUROC, paired comparison,
and the one-command evaluation report; plus the classification metrics on known cases."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from tiger.metrics.classification import binary_report, paired_auroc_difference, youden_threshold
from tiger.metrics.errors import MetricInputError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from training import evaluate, train_classifier  # noqa: E402
from training.augment import AugmentConfig, run_augment  # noqa: E402


def test_binary_report_known_case():
    y = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    p = np.array([0.1, 0.4, 0.35, 0.8, 0.7, 0.9, 0.2, 0.6])
    r = binary_report(y, p, threshold=0.5, n_boot=300)
    assert r["auroc"] == pytest.approx(roc_auc_score(y, p))
    assert r["sensitivity"] == 0.75 and r["specificity"] == 0.75
    assert r["brier"] == pytest.approx(np.mean((p - y) ** 2))
    lo, hi = r["auroc_ci95"]
    assert lo <= r["auroc"] <= hi and 0 <= lo and hi <= 1
    assert youden_threshold(y, p) in p


def test_one_class_test_set_is_a_clear_error():
    with pytest.raises(MetricInputError, match="only malignant"):
        binary_report(np.ones(5), np.full(5, 0.7))
    with pytest.raises(MetricInputError, match="undefined"):
        paired_auroc_difference(np.zeros(4), np.full(4, 0.2), np.full(4, 0.3))


def test_paired_difference_detects_a_better_arm():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    good = np.clip(y * 0.6 + rng.normal(0.2, 0.2, 200), 0, 1)
    bad = rng.uniform(size=200)
    d = paired_auroc_difference(y, good, bad, n_boot=300)
    assert d["auroc_difference"] > 0.3 and d["ci95"][0] > 0 and d["p_value"] < 0.01
    same = paired_auroc_difference(y, good, good, n_boot=100)
    assert same["auroc_difference"] == 0 and same["ci95"] == [0.0, 0.0]


def test_classic_augment_changes_images_but_keeps_range():
    x = torch.linspace(-1, 1, 2 * 32 * 32).view(2, 1, 32, 32)
    y = train_classifier.classic_augment(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1 and not torch.allclose(x, y)


def test_splits_never_leak_groups(ddti_canonical):
    splits = train_classifier.load_real_splits(ddti_canonical, size=32, split_seed=3)
    assert not set(splits["train"].groups) & set(splits["test"].groups)
    assert set(splits["test"].labels.tolist()) == {0.0, 1.0}


@pytest.fixture(scope="module")
def synthetic_benign(micro_model_dir, ddti_canonical, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "tiger"
    run_augment(AugmentConfig(model=str(micro_model_dir), out=str(out), n=8, label="benign", data=str(ddti_canonical),
                              chips_from="data", steps=2, batch=4))
    return out


def test_evaluate_one_command_report(ddti_small, synthetic_benign, micro_model_dir, tmp_path):
    out = tmp_path / "eval"
    rc = evaluate.main(["--data", str(ddti_small), "--out", str(out), "--model", str(micro_model_dir),
                        "--tiger-synthetic", str(synthetic_benign), "--coarse-synthetic", str(synthetic_benign),
                        "--seeds", "0", "1", "--epochs", "1", "--image-size", "32", "--batch-size", "8", "--n-boot", "100"])
    assert rc == 0
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["arms"]) == set("abcd")
    for arm in rep["arms"].values():
        e = arm["ensemble"]
        assert 0 <= e["auroc"] <= 1 and np.isfinite(e["brier"]) and len(arm["per_seed"]) == 2
    assert rep["arms"]["d"]["n_synthetic"] == 8 and rep["arms"]["a"]["n_synthetic"] == 0
    assert set(rep["paired"]) == {"d vs a", "d vs b", "d vs c"}
    assert rep["paired"]["d vs c"]["auroc_difference"] != 0 or rep["arms"]["d"]["per_seed"] == rep["arms"]["c"]["per_seed"]
    assert rep["split_seed"] == 0 and "--tiger-synthetic" in rep["command"]
    md = (out / "report.md").read_text()
    assert "split seed 0" in md and "d vs a" in md and "embeddings: domain CLIP" in md
    assert (out / "roc.png").stat().st_size > 5000
    assert "nan" not in (out / "report.json").read_text().lower()


def test_evaluate_reports_bad_input(tmp_path, capsys):
    rc = evaluate.main(["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--arms", "a"])
    assert rc == 2
    assert "error:" in capsys.readouterr().err


def test_train_one_rejects_arm_without_synthetic():
    with pytest.raises(train_classifier.ClassifierInputError, match="needs a synthetic"):
        train_classifier.train_one({"train": None, "val": None, "test": None}, "d", 0,
                                   train_classifier.ClassifierConfig())
