"""Bulk generation: chips from the class's real distribution or profile, resumable, sharded with
`accelerate launch` over two CPU processes into one manifest, and the quality filters."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from training.augment import AugmentConfig, AugmentInputError, chip_pool, class_of, run_augment  # noqa: E402


def _manifest(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "manifest.jsonl").read_text().splitlines()]


def test_class_and_chip_pool(ddti_canonical):
    assert class_of("follicular") == ("malignant", "follicular")
    with pytest.raises(AugmentInputError, match="unknown class"):
        class_of("lymphoma")
    pool = chip_pool(AugmentConfig(model="-", out="-", label="benign", data=str(ddti_canonical)))
    assert pool and all(c["malignancy"] == "benign" for c in pool)
    assert len({json.dumps(c, sort_keys=True) for c in pool}) > 3  # a distribution, not one profile
    prof = chip_pool(AugmentConfig(model="-", out="-", label="medullary", chips_from="profile"))
    assert prof[0]["subtype"] == "medullary"


def test_resumable_generation_and_clip_filter(micro_model_dir, tmp_path):
    out = tmp_path / "aug"
    cfg = AugmentConfig(model=str(micro_model_dir), out=str(out), n=4, label="papillary", chips_from="profile",
                        steps=2, batch=2)
    run_augment(cfg)
    first = {r["file"]: (out / r["file"]).stat().st_mtime_ns for r in _manifest(out)}
    assert len(first) == 4
    cfg.n, cfg.filter, cfg.drop = 6, "clip", 0.5
    summary = run_augment(cfg)  # resumes: only images 4 and 5 are new
    rows = _manifest(out)
    assert all((out / f).stat().st_mtime_ns == t for f, t in first.items())
    assert summary["n_generated"] == 6 and summary["filter"]["kept"] == 3 and len(rows) == 3
    every = [json.loads(x) for x in (out / "manifest_all.jsonl").read_text().splitlines()]
    kept_scores = [r["score"] for r in every if r["kept"]]
    assert min(kept_scores) >= max(r["score"] for r in every if not r["kept"])
    from tiger.pngmeta import read_record

    rec = read_record(out / rows[0]["file"])
    assert rec["seed"] == rows[0]["seed"] and rec["chips"]["subtype"] == "papillary"


def test_moso_filter_drops_lowest(micro_model_dir, ddti_small, tmp_path):
    out = tmp_path / "moso"
    s = run_augment(AugmentConfig(model=str(micro_model_dir), out=str(out), n=4, label="benign", data=str(ddti_small),
                                  steps=1, batch=4, filter="moso", drop=0.25))
    assert s["filter"]["kind"] == "moso" and s["filter"]["kept"] == 3 and len(_manifest(out)) == 3


def test_accelerate_two_processes_match_single(micro_model_dir, tmp_path):
    """Two CPU processes write disjoint shards and one merged manifest equal to a 1-process run."""
    common = ["--model", str(micro_model_dir), "--n", "6", "--label", "benign", "--chips-from", "profile",
              "--steps", "2", "--batch", "2", "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    acc = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517"]
    two = tmp_path / "two"
    res = subprocess.run(acc + [str(ROOT / "training" / "augment.py"), "--out", str(two)] + common,
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    shards = {p.name: len(p.read_text().splitlines()) for p in two.glob("manifest.rank*.jsonl")}
    assert shards == {"manifest.rank0.jsonl": 4, "manifest.rank1.jsonl": 2}
    one = tmp_path / "one"
    run_augment(AugmentConfig(model=str(micro_model_dir), out=str(one), n=6, label="benign", chips_from="profile",
                              steps=2, batch=2, device="cpu"))
    rows2, rows1 = _manifest(two), _manifest(one)
    assert [r["seed"] for r in rows2] == [r["seed"] for r in rows1] == list(range(6))
    for a, b in zip(rows1, rows2):
        diff = np.abs(np.asarray(Image.open(one / a["file"]), int) - np.asarray(Image.open(two / b["file"]), int))
        assert diff.max() <= 2  # same seeds -> same images (thread-count rounding only)


def test_bad_input(tmp_path):
    assert subprocess.run([sys.executable, str(ROOT / "training" / "augment.py"), "--model", str(tmp_path),
                           "--out", str(tmp_path / "o"), "--label", "nonsense"],
                          capture_output=True, text=True).returncode == 2
    with pytest.raises(AugmentInputError, match="needs --data"):
        chip_pool(AugmentConfig(model="-", out="-", label="benign", chips_from="data"))
