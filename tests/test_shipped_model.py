"""The shipped model (models/tiger-tiny-ddti) loads by default, is deterministic for a seed, and
makes images whose statistics sit in the range of real DDTI images: not blank, not noise."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from tiger import knowledge
from tiger.data import load_metadata
from tiger.paths import DEFAULT_MODEL
from tiger.pipeline import TigerPipeline


def _stats(px: np.ndarray) -> dict[str, float]:
    """Contrast, edge strength and lag-1 autocorrelation (white noise ~0, ultrasound ~0.8+)."""
    x = px.astype(np.float64)
    grad = np.hypot(ndimage.sobel(x, 0), ndimage.sobel(x, 1)).mean()
    c = x - x.mean()
    lag1 = (c[:, 1:] * c[:, :-1]).mean() / max(c.var(), 1e-9)
    return {"std": x.std(), "grad": grad, "lag1": lag1}


@pytest.fixture(scope="module")
def pipe(shipped_model_dir):
    p = TigerPipeline.from_pretrained(shipped_model_dir)
    p.set_progress_bar_config(disable=True)
    return p


def test_default_model_is_the_shipped_folder(shipped_model_dir):
    assert shipped_model_dir.resolve() == DEFAULT_MODEL
    sizes = sum(f.stat().st_size for f in shipped_model_dir.rglob("*") if f.is_file())
    assert sizes <= 60 * 1024 * 1024, f"shipped model is {sizes / 2**20:.1f} MB (limit 60)"
    bank = json.loads((shipped_model_dir / "model_index.json").read_text())
    assert "controlnet_fg" in bank and "fusion" in bank


def test_seeded_generation_is_deterministic(pipe):
    chips = dict(knowledge.SUBTYPE_PROFILES["follicular"], plane="transverse")
    a = pipe(chips=chips, num_inference_steps=10, seed=7, num_images=2)
    b = pipe(chips=chips, num_inference_steps=10, seed=7, num_images=2)
    for x, y in zip(a.images, b.images):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    assert not np.array_equal(np.asarray(a.images[0]), np.asarray(a.images[1])), "per-image seeds must differ"


def test_generated_images_look_like_ultrasound_not_blank_or_noise(pipe, ddti_canonical):
    rows = load_metadata(ddti_canonical)[::12][:40]
    real = [_stats(np.asarray(Image.open(ddti_canonical / r["file_name"]).convert("L"))) for r in rows]
    out = pipe(chips=dict(knowledge.SUBTYPE_PROFILES["papillary"], plane="transverse"),
               num_inference_steps=20, seed=0, num_images=4)
    for img in out.images:
        s = _stats(np.asarray(img.convert("L")))
        for key in ("std", "grad"):
            lo = min(r[key] for r in real)
            hi = max(r[key] for r in real)
            assert 0.5 * lo <= s[key] <= 1.5 * hi, f"{key} {s[key]:.2f} outside real range [{lo:.2f}, {hi:.2f}]"
        assert s["lag1"] > 0.5, f"lag-1 autocorrelation {s['lag1']:.2f}: looks like noise"
    noise = np.random.default_rng(0).integers(0, 256, (128, 128)).astype(np.uint8)
    assert _stats(noise)["lag1"] < 0.1  # the check itself can fail: white noise is rejected


def test_shipped_segmenter_finds_nodules_on_test_images(shipped_model_dir, ddti_canonical):
    """The segmenter shipped with the model (Reference mode's "predict mask") overlaps real outlines."""
    from tiger.data import split
    from tiger.segment import default_segmenter

    seg = default_segmenter(shipped_model_dir)
    assert seg is not None, "models/tiger-tiny-ddti/segmenter is missing"
    test = split(load_metadata(ddti_canonical), seed=0)["test"][:12]
    ious = []
    for r in test:
        img = np.asarray(Image.open(ddti_canonical / r["file_name"]).convert("L"))
        truth = np.asarray(Image.open(ddti_canonical / r["mask"]).convert("L")) > 127
        pred = np.asarray(seg.predict_mask(img)) > 127
        union = (truth | pred).sum()
        ious.append((truth & pred).sum() / union if union else 1.0)
    assert np.mean(ious) > 0.3, f"mean IoU {np.mean(ious):.2f} on 12 test images"
