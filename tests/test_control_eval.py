"""The BG map without the nodule (conditions.background_sobel) and the pixel measures of the
control evaluation (training.eval_control), on constructed images whose answers are known, and
on real DDTI images."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from tiger import conditions
from tiger import measures
from tiger.data import read_grey
from training import eval_control as ec


def _disc(shape=(128, 128), center=(64, 64), r=20) -> np.ndarray:
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return (xx - center[0]) ** 2 + (yy - center[1]) ** 2 <= r * r


def _speckle(seed=0, shape=(128, 128)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(ndimage.gaussian_filter(rng.normal(120, 40, shape), 0.7), 0, 255)


def test_background_sobel_removes_the_nodule_outline():
    img = _speckle()
    m = _disc()
    img[m] *= 0.35  # a strongly hypoechoic nodule: its outline dominates the Sobel map
    full = conditions.sobel_map(img.astype(np.uint8)).astype(float)
    bg = conditions.background_sobel(img.astype(np.uint8), m).astype(float)
    edge = m & ~ndimage.binary_erosion(m, iterations=2) | (ndimage.binary_dilation(m, iterations=2) & ~m)
    far = ~ndimage.binary_dilation(m, iterations=conditions.NODULE_MARGIN_PX + 3)
    # the outline stands out in the full map and not in the refilled one
    assert full[edge].mean() > 1.5 * full[far].mean()
    assert bg[edge].mean() < 1.25 * bg[far].mean()
    # the filled region has the texture of the rest (not a blank or flat patch that would be a new outline)
    grown = ndimage.binary_dilation(m, iterations=conditions.NODULE_MARGIN_PX)
    assert bg[grown].std() > 0.5 * bg[far].std()
    assert abs(bg[grown].mean() - bg[far].mean()) < 0.25 * bg[far].mean()
    # away from the region the map is untouched
    assert np.array_equal(bg[far], full[far])


def test_background_sobel_without_a_mask_is_the_plain_map():
    img = _speckle(1).astype(np.uint8)
    assert np.array_equal(conditions.background_sobel(img, None), conditions.sobel_map(img))
    assert np.array_equal(conditions.background_sobel(img, np.zeros_like(img)), conditions.sobel_map(img))
    with pytest.raises(conditions.ConditionError):
        conditions.background_sobel(img, np.ones((10, 10)))


def test_grey_ratio_foci_sharpness_irregularity_on_known_images():
    img = np.full((128, 128), 100.0)
    m = _disc()
    dark = img.copy()
    dark[m] = 50
    assert measures.grey_ratio(dark, m) == pytest.approx(0.5)
    assert measures.grey_ratio(img, np.zeros_like(m)) is None
    dots = dark.copy()
    for y, x in ((60, 60), (66, 70), (70, 58)):
        dots[y:y + 2, x:x + 2] = 250
    assert measures.bright_foci(dark, m) == 0
    assert measures.bright_foci(dots, m) == 3
    blurred = ndimage.gaussian_filter(dark, 4)
    assert measures.edge_sharpness(dark, m) > 1.5 * measures.edge_sharpness(blurred, m)
    star = m.copy()
    yy, xx = np.mgrid[0:128, 0:128]
    star &= (np.cos(8 * np.arctan2(yy - 64, xx - 64)) > -0.2) | _disc(r=10)
    assert measures.irregularity(m) < 0.05 < 0.15 < measures.irregularity(star)


def test_real_nodules_are_darker_than_their_ring(ddti_canonical):
    """The measure works on the data: real hypoechoic nodules measure below 1 by the same code,
    and the dataset's BG maps no longer outline the nodule."""
    from tiger.data import load_metadata
    data = ddti_canonical
    rows = [r for r in load_metadata(data) if r.get("mask")]
    hypo = [r for r in rows if (r.get("features") or {}).get("echogenicity") in ("hypoechoic", "very hypoechoic")]
    assert len(hypo) >= 10
    ratios = [measures.grey_ratio(read_grey(data / r["file_name"], 128), read_grey(data / r["mask"], 128) > 127) for r in hypo]
    assert np.median([x for x in ratios if x is not None]) < 0.95
    sharp = []
    for r in hypo[:20]:
        m = read_grey(data / r["mask"], 128) > 127
        if not m.any():
            continue
        full = conditions.sobel_map(read_grey(data / r["file_name"], 128)).astype(float)
        bg = read_grey(data / r["condition_bg"], 128).astype(float)
        edge = m & ~ndimage.binary_erosion(m, iterations=2)
        sharp.append((full[edge].mean() / full.mean(), bg[edge].mean() / bg.mean()))
    full_ratio, bg_ratio = np.median(np.array(sharp), axis=0)
    assert bg_ratio < full_ratio
