"""tiger.greyscale: one conversion rule, checked against PIL and against itself across every
consumer (pipeline, segmenter, metrics, uploads, hash), on a real DDTI image."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tiger.greyscale import GreyscaleError, to_grey, was_colour
from tiger.paths import SHARED_DATA

DDTI_IMAGE = SHARED_DATA / "ddti" / "images" / "100_1.jpg"


@pytest.fixture(scope="module")
def real() -> np.ndarray:
    with Image.open(DDTI_IMAGE) as im:
        return np.asarray(im.convert("L").resize((96, 80)), dtype=np.uint8)


def test_colour_is_reduced_by_luma_like_pil(real):
    rgb = np.stack([real, np.roll(real, 7, 1), 255 - real], -1).astype(np.uint8)
    pil = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.int16)
    for form in (rgb, np.moveaxis(rgb, -1, 0), Image.fromarray(rgb), np.dstack([rgb, np.full_like(real, 9)])):
        got = to_grey(form)
        assert got.shape == real.shape and got.dtype == np.uint8
        assert np.abs(got.astype(np.int16) - pil).max() <= 1
        assert was_colour(form)
    assert not was_colour(real) and not was_colour(Image.fromarray(real))


def test_ranges_map_to_the_same_pixels(real, tmp_path):
    f = real.astype(np.float64)
    forms = {"uint8": real, "unit float": f / 255.0, "signed float": f / 127.5 - 1.0, "0-255 float": f,
             "1xHxW": real[None], "HxWx1": real[..., None], "uint16": real.astype(np.uint16) * 257}
    png16 = tmp_path / "sixteen.png"
    Image.fromarray(real.astype(np.uint16) * 257).save(png16)
    forms["16-bit PNG path"] = str(png16)
    forms["PNG bytes"] = png16.read_bytes()
    for name, form in forms.items():
        got = to_grey(form)
        assert got.shape == real.shape, name
        assert np.abs(got.astype(int) - real.astype(int)).max() <= 1, name
    assert to_grey(np.array([[True, False]])).tolist() == [[255, 0]]


@pytest.mark.parametrize("bad,needle", [
    (np.array([[0.5, np.nan]]), "NaN"), (np.array([[0.0, 300.0]]), "up to 300"),
    (np.array([[-2.0, 0.5]]), "[-1, 1]"), (np.array([[-3, 4]]), "0-65535"),
    (np.zeros((2, 3, 4, 5)), "shape"), (np.array([["a"]]), "numbers"), (b"not a png", "not a readable image"),
])
def test_bad_pictures_are_explained(bad, needle):
    with pytest.raises(GreyscaleError) as err:
        to_grey(bad)
    assert needle in str(err.value)


def test_every_consumer_reads_a_picture_the_same_way(real):
    """The same float [-1, 1] picture gives the same pixels to the pipeline, the segmenter, the
    metrics, the uploads and the hash (they used to disagree: black, clipped or mean-of-RGB)."""
    from tiger import imagehash, segment
    from tiger.metrics import images as metric_images
    from tiger.pipeline_inputs import load_grey
    from ui import uploads

    signed = real.astype(np.float64) / 127.5 - 1.0
    expect = to_grey(signed)
    square = real[:80, :80]
    assert np.array_equal(load_grey(signed[:80, :80], 80), to_grey(square.astype(np.float64) / 127.5 - 1.0))
    assert np.array_equal(segment._grey(signed), expect)
    assert np.array_equal(metric_images._to_grey(signed)[0], expect)
    assert np.array_equal(uploads.load_grey_image(signed), expect)
    assert imagehash.phash(signed) == imagehash.phash(expect)
