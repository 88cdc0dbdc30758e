"""Known-case and independent-computation tests of tiger.metrics on real DDTI images."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from PIL import Image

from tiger.metrics import (MetricInputError, cmmd, fid, gradient_distance, inception_score, kid,
                           load_image_set, phash_report, prdc, set_gradient_similarity, set_ssim, ssim_pairs)
from tiger.metrics.clip_score import clip_scores
from tiger.paths import SHARED_DATA


@pytest.fixture(scope="module")
def ddti() -> np.ndarray:
    """48 real DDTI images at 128 px (greyscale content stored as RGB JPEG: converted)."""
    files = sorted((SHARED_DATA / "ddti" / "images").glob("*.jpg"))[:48]
    s = load_image_set([Image.open(f) for f in files], size=128)
    assert s.converted_to_grey == len(files)
    return s.pixels


def shifted(px: np.ndarray) -> np.ndarray:
    """A blurred, brightened copy: same layout, different statistics."""
    from scipy.ndimage import gaussian_filter

    out = gaussian_filter(px.astype(float), sigma=(0, 2, 2)) * 0.6 + 80
    return np.clip(out, 0, 255).astype(np.uint8)


# ---------- SSIM ----------
def test_ssim_matches_scikit_image(ddti):
    from skimage.metrics import structural_similarity

    a, b = ddti[:6], shifted(ddti[6:12])
    ours = ssim_pairs(a, b, dtype=__import__("torch").float64)
    ref = [structural_similarity(x, y, data_range=255, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False) for x, y in zip(a, b)]
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_set_ssim_known_cases(ddti):
    assert set_ssim(ddti, ddti) == pytest.approx(1.0, abs=1e-5)
    assert set_ssim(ddti, shifted(ddti)) < 0.9
    noise = np.random.default_rng(0).integers(0, 256, ddti.shape, dtype=np.uint8)
    assert set_ssim(ddti, noise) < set_ssim(ddti, shifted(ddti))


# ---------- gradient similarity ----------
def test_gradient_metrics_known_cases(ddti):
    assert gradient_distance(ddti, ddti) == 0.0
    assert set_gradient_similarity(ddti, ddti) == pytest.approx(1.0)
    blurred = shifted(ddti)
    assert gradient_distance(ddti[:24], ddti[24:]) < gradient_distance(ddti, blurred)
    assert set_gradient_similarity(ddti, blurred) < 0.95


def test_gradient_distance_independent(ddti):
    """Against a scipy.ndimage Sobel + numpy histogram written separately."""
    from scipy import ndimage

    def hist(px):
        mags = [np.hypot(ndimage.sobel(p.astype(float), 1), ndimage.sobel(p.astype(float), 0))[1:-1, 1:-1] for p in px]
        h, _ = np.histogram(np.clip(np.concatenate([m.ravel() for m in mags]), 0, 1020 - 1e-3), bins=64, range=(0, 1020))
        return h / h.sum()

    a, b = ddti[:10], shifted(ddti[10:20])
    assert gradient_distance(a, b) == pytest.approx(0.5 * np.abs(hist(a) - hist(b)).sum(), abs=1e-6)


# ---------- FID / KID ----------
def test_fid_matches_scipy_sqrtm_on_gaussians():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(loc=0.5, size=(300, 6)) @ rng.normal(size=(6, 6))
    mu1, mu2 = a.mean(0), b.mean(0)
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(c1 @ c2).real
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * covmean)
    assert fid(a, b) == pytest.approx(ref, rel=1e-6)


def test_fid_analytic_diagonal_gaussians():
    """Large samples of N(0, I) and N(1, 4I) in 3-D: FID -> 3*1 + 3*(1 + 4 - 2*2) = 6."""
    rng = np.random.default_rng(2)
    a = rng.normal(0, 1, size=(60000, 3))
    b = rng.normal(1, 2, size=(60000, 3))
    assert fid(a, b) == pytest.approx(6.0, rel=0.03)
    assert fid(a, a) == pytest.approx(0.0, abs=1e-8)


def test_kid_matches_torchmetrics():
    import torch
    from torchmetrics.image.kid import KernelInceptionDistance

    class Identity(torch.nn.Module):
        num_features = 8

        def forward(self, x):
            return x

    rng = np.random.default_rng(3)
    a = rng.normal(size=(60, 8))
    b = rng.normal(loc=0.7, size=(60, 8))
    m = KernelInceptionDistance(feature=Identity(), subsets=1, subset_size=60)
    m.update(torch.from_numpy(a), real=True)
    m.update(torch.from_numpy(b), real=False)
    ref = float(m.compute()[0])
    assert kid(a, b, subset_size=60)[0] == pytest.approx(ref, rel=1e-5)
    same = kid(a, rng.normal(size=(60, 8)), subset_size=60)[0]
    assert abs(same) < kid(a, b, subset_size=60)[0] / 5


# ---------- CMMD ----------
def test_cmmd_known_cases_and_loop():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(30, 5)) * 3
    b = a + 4.0
    gamma = 1 / (2 * 10.0 ** 2)
    k = lambda x, y: np.mean([[np.exp(-gamma * np.sum((p - q) ** 2)) for q in y] for p in x])  # noqa: E731
    assert cmmd(a, b) == pytest.approx(1000 * (k(a, a) + k(b, b) - 2 * k(a, b)), rel=1e-9)
    assert cmmd(a, a) == pytest.approx(0.0, abs=1e-9)
    assert cmmd(a, a + 1) < cmmd(a, b)


# ---------- density / coverage ----------
def _prdc_loop(r, f, k):
    d = lambda x, y: np.sqrt(((x - y) ** 2).sum())  # noqa: E731
    rad = [sorted(d(x, y) for y in r)[k] for x in r]
    density = np.mean([sum(d(y, r[i]) < rad[i] for i in range(len(r))) for y in f]) / k
    coverage = np.mean([min(d(r[i], y) for y in f) < rad[i] for i in range(len(r))])
    return density, coverage


def test_prdc_matches_loop_and_known_cases():
    rng = np.random.default_rng(5)
    r = rng.normal(size=(80, 4))
    f = rng.normal(size=(70, 4))
    out = prdc(r, f, k=5)
    dens, cov = _prdc_loop(r, f, 5)
    assert out["density"] == pytest.approx(dens)
    assert out["coverage"] == pytest.approx(cov)
    big_r, big_f = rng.normal(size=(600, 4)), rng.normal(size=(600, 4))
    same = prdc(big_r, big_f)
    assert 0.8 < same["density"] < 1.2 and same["coverage"] > 0.9
    collapsed = prdc(big_r, np.repeat(big_r[:1], 600, 0) + 1e-6 * rng.normal(size=(600, 4)))
    assert collapsed["coverage"] < 0.05
    far = prdc(big_r, big_f + 10)
    assert far["density"] == 0 and far["coverage"] == 0


# ---------- Inception Score ----------
def test_inception_score_known_cases():
    from scipy.stats import entropy

    k = 4
    assert inception_score(np.eye(k)[np.arange(400) % k])[0] == pytest.approx(k, rel=1e-6)
    assert inception_score(np.eye(k)[np.zeros(400, int)])[0] == pytest.approx(1.0)
    assert inception_score(np.full((50, k), 1 / k))[0] == pytest.approx(1.0)
    p = np.random.default_rng(6).dirichlet(np.ones(k), size=100)
    ref = np.exp(np.mean([entropy(row, p.mean(0)) for row in p]))
    assert inception_score(p)[0] == pytest.approx(ref, rel=1e-6)


# ---------- pHash / CLIP score ----------
def test_phash_report_known_cases(ddti):
    train, held = ddti[:24], ddti[24:]
    copies = phash_report(train, train)
    assert copies["phash_nearest"] == 0 and copies["near_copy_share"] == 1.0
    fresh = phash_report(held, train)
    assert fresh["phash_nearest"] > copies["phash_nearest"]
    collapsed = phash_report(np.repeat(held[:1], 10, 0), train)
    assert collapsed["phash_within"] == 0.0 and fresh["phash_within"] > 10


def test_clip_scores_independent():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(5, 16)), rng.normal(size=(5, 16))
    ref = [100 * max(np.dot(x, y) / np.linalg.norm(x) / np.linalg.norm(y), 0) for x, y in zip(a, b)]
    np.testing.assert_allclose(clip_scores(a, b), ref)
    assert clip_scores(a, a) == pytest.approx(np.full(5, 100.0))


# ---------- bad input ----------
def test_bad_input_messages(tmp_path, ddti):
    with pytest.raises(MetricInputError, match="no images"):
        load_image_set(tmp_path)
    with pytest.raises(MetricInputError, match="mixes image sizes"):
        load_image_set([np.zeros((64, 64), np.uint8), np.zeros((32, 32), np.uint8)])
    mixed = load_image_set([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)])
    assert mixed.converted_to_grey == 1 and mixed.pixels.shape == (2, 8, 8)
    with pytest.raises(MetricInputError, match="resize"):
        set_ssim(ddti, ddti[:, :64, :64])
    with pytest.raises(MetricInputError, match="widths differ"):
        fid(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(MetricInputError, match="NaN"):
        cmmd(np.full((4, 3), np.nan), np.zeros((4, 3)))
    with pytest.raises(MetricInputError, match="more than 5"):
        prdc(np.zeros((3, 2)), np.zeros((3, 2)))

