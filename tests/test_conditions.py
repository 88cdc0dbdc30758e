"""Condition functions: Sobel maps, gland thirds, mask placement properties, default masks."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tiger import conditions as C
from tiger.paths import SHARED_DATA


def test_sobel_map_edges_and_range():
    img = np.zeros((64, 64), np.uint8)
    img[:, 32:] = 200
    s = C.sobel_map(img)
    assert s.dtype == np.uint8 and s.shape == img.shape and s.max() == 255 and s.min() == 0
    assert s[:, 28:36].mean() > 10 * max(1.0, s[:, :20].mean())  # the step edge dominates
    assert not C.sobel_map(np.full((16, 16), 7, np.uint8)).any()  # flat image: no edges, no NaN
    with pytest.raises(C.ConditionError):
        C.sobel_map(np.zeros((3, 4, 5, 6)))


def test_gland_extent_on_real_image_contains_nodule():
    path = SHARED_DATA / "ddti" / "images" / "100_1.jpg"
    if not path.is_file():
        pytest.skip("DDTI data absent")
    img = np.asarray(Image.open(path).convert("L"))[10:300, 40:530]
    mask = np.zeros(img.shape, bool)
    mask[100:140, 200:260] = True
    g = C.estimate_gland_extent(img, mask)
    assert g.x0 <= 200 and g.x1 >= 260 and g.y0 <= 100 and g.y1 >= 140
    assert C.GlandExtent.from_dict(g.to_dict()) == g
    assert g.width * g.height < img.size  # an estimate, not simply the whole picture


def test_thirds_partition_the_long_axis():
    e = C.GlandExtent(10, 20, 100, 60)
    t = C.thirds(e)
    assert t["upper pole"][0] == 10 and t["upper pole"][2] == t["middle"][0] and t["inferior"][2] == 100
    e2 = C.GlandExtent(10, 5, 40, 95, axis="vertical", upper="end")
    t2 = C.thirds(e2)
    assert t2["upper pole"][3] == 95 and t2["inferior"][1] == 5


def test_bad_inputs_have_clear_errors():
    e = C.GlandExtent(0, 0, 64, 64)
    with pytest.raises(C.ConditionError, match="empty"):
        C.place_mask(np.zeros((64, 64)), e, "middle")
    with pytest.raises(C.ConditionError, match="location"):
        C.place_mask(C.default_mask((64, 64)), e, "left ear")
    with pytest.raises(C.ConditionError, match="size"):
        C.place_mask(C.default_mask((64, 64)), e, size="huge")
    with pytest.raises(C.ConditionError):
        C.GlandExtent(5, 5, 5, 9)


extents = st.builds(
    lambda x0, y0, w, h, axis, upper: C.GlandExtent(x0, y0, min(128, x0 + w), min(128, y0 + h), axis, upper),
    st.integers(0, 60), st.integers(0, 60), st.integers(30, 128), st.integers(30, 128),
    st.sampled_from(["horizontal", "vertical"]), st.sampled_from(["start", "end"]))
masks = st.builds(lambda s, r: np.roll(C.default_mask((128, 128), s), r, axis=1),
                  st.sampled_from([0.1, 0.2, "small", "middle", "large", 0.9]), st.integers(-40, 40))


@settings(max_examples=150, deadline=None)
@given(masks, extents, st.sampled_from(C.LOCATIONS), st.sampled_from([None, "small", "middle", "large", 0.5, 2.0]),
       st.integers(0, 2**31))
def test_place_mask_lands_in_requested_third(mask, extent, location, size, seed):
    out = C.place_mask(mask, extent, location, size, rng=np.random.default_rng(seed))
    assert out.shape == mask.shape and out.dtype == np.uint8 and set(np.unique(out)) <= {0, 255}
    assert out.any()  # never pushed off the image
    assert C.location_of(out, extent) == location
    cx, cy = np.nonzero(out)[1].mean(), np.nonzero(out)[0].mean()
    x0, y0, x1, y1 = C.thirds(extent)[location]
    pos, (a, b) = (cx, (x0, x1)) if extent.axis == "horizontal" else (cy, (y0, y1))
    assert a - 0.5 <= pos < b + 0.5


@settings(max_examples=100, deadline=None)
@given(masks, extents, st.sampled_from(C.LOCATIONS), st.integers(0, 2**31))
def test_extension_crosses_top_edge_by_0_to_10_px(mask, extent, location, seed):
    out = C.place_mask(mask, extent, location, "small", extension=True, rng=np.random.default_rng(seed))
    top = np.nonzero(out)[0].min()
    assert 0 <= extent.y0 - top <= C.MAX_EXTENSION_PX
    if extent.axis == "horizontal":
        assert C.location_of(out, extent) == location


def test_size_scaling_orders_and_default_mask():
    e = C.GlandExtent(0, 20, 128, 100)
    m = C.default_mask((128, 128), "middle")
    areas = [(C.place_mask(m, e, "middle", s) > 0).sum() for s in ("small", "middle", "large")]
    assert areas[0] < areas[1] < areas[2]
    d = C.default_mask((100, 120), "large")
    ys, xs = np.nonzero(d)
    assert abs(xs.mean() - 59.5) < 1 and abs(ys.mean() - 49.5) < 1 and np.ptp(xs) > np.ptp(ys)
    same = C.place_mask(m, e)  # no location/size: unchanged
    assert (same == m).all()
