"""Embedders (domain CLIP from a model folder, random, local open_clip file) and the full
metrics report over real DDTI images: identical vs shifted vs collapsed sets."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tiger.metrics import MetricInputError, evaluate_sets, load_embedder, load_image_set, write_report
from tiger.paths import SHARED_DATA


@pytest.fixture(scope="module")
def real() -> np.ndarray:
    files = sorted((SHARED_DATA / "ddti" / "images").glob("*.jpg"))[:40]
    return load_image_set([Image.open(f) for f in files], size=128).pixels


@pytest.fixture(scope="module")
def embedder(micro_model_dir):
    return load_embedder(micro_model_dir)


def test_embedder_sources(micro_model_dir, tmp_path):
    e = load_embedder(micro_model_dir)
    # named relative to the project (no machine path in a report), but still naming the folder
    assert "domain CLIP from" in e.source and micro_model_dir.name in e.source
    assert not e.source.split("from ", 1)[1].startswith("/")
    with pytest.raises(MetricInputError, match="no domain CLIP"):
        load_embedder(tmp_path)
    r = load_embedder(tmp_path, allow_random=True)
    assert "randomly initialised" in r.source
    with pytest.raises(MetricInputError, match="does not exist"):
        load_embedder(pretrained=tmp_path / "missing.pt")


def test_local_open_clip_file(tmp_path, real):
    import open_clip

    cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": 1, "width": 64, "patch_size": 16},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1}}
    path = tmp_path / "tiny-test-clip.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(str(path))
    model = open_clip.create_model("tiny-test-clip")
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    e = load_embedder(pretrained=tmp_path / "weights.pt", arch=str(path))
    assert "weights.pt" in e.source and e.kind == "open_clip"
    f = e.images(real[:3])
    assert f.shape == (3, 32) and np.allclose(np.linalg.norm(f, axis=1), 1)
    assert e.texts(["a thyroid nodule"]).shape == (1, 32)


def test_evaluate_sets_known_cases(real, embedder, tmp_path):
    from scipy.ndimage import gaussian_filter

    shifted = np.clip(gaussian_filter(real.astype(float), (0, 2, 2)) * 0.6 + 80, 0, 255).astype(np.uint8)
    same = evaluate_sets(real, real, embedder=embedder, texts=["thyroid nodule"] * len(real))["metrics"]
    moved = evaluate_sets(real, shifted, embedder=embedder)["metrics"]
    collapsed = evaluate_sets(real, np.repeat(real[:1], 40, 0), embedder=embedder)["metrics"]
    assert same["ssim"] == pytest.approx(1, abs=1e-5) and same["cmmd"] == pytest.approx(0, abs=1e-6)
    assert same["fid"] < 1e-6 and same["gs"] == 0 and same["near_copy_share"] == 1.0
    assert moved["ssim"] < same["ssim"] and moved["cmmd"] > same["cmmd"] and moved["gs"] > 0.05
    assert moved["fid"] > same["fid"]
    assert moved["near_copy_share"] == 1.0  # blurred, brightened copies are still flagged as copies
    held_out = evaluate_sets(real[20:], real[20:], embedder=embedder, reference=real[:20])["metrics"]
    assert held_out["near_copy_share"] < 0.5 and held_out["phash_nearest"] > 6
    assert collapsed["coverage"] < 0.2 < same["coverage"] and collapsed["phash_within"] == 0
    assert 0 <= same["clip_score"] <= 100
    res = evaluate_sets(real, shifted, embedder=embedder, timings=True)
    path = write_report(res, tmp_path / "rep")
    md = (tmp_path / "rep" / "metrics.md").read_text()
    assert json.loads(path.read_text())["embedder"] == embedder.source and embedder.source in md
    assert "Inception Score classifier" in md and "nan" not in path.read_text().lower()


def test_evaluate_sets_bad_input(real, embedder, tmp_path):
    with pytest.raises(MetricInputError, match="no images"):
        evaluate_sets(real, tmp_path, embedder=embedder)
    with pytest.raises(MetricInputError, match="one text per generated"):
        evaluate_sets(real, real[:5], embedder=embedder, texts=["x"])
