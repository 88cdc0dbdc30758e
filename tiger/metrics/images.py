"""Image sets as the metrics see them: uint8 arrays N x H x W (greyscale).

Ultrasound is greyscale, and real and generated sets arrive in several shapes (folders of PNG or
JPEG, lists of PIL images, arrays, RGB JPEGs that hold grey content). Everything is brought to
one documented form here so each metric has a single input contract:
- colour images are converted to greyscale (ITU-R 601 luma, PIL "L"); the number converted is
  returned so reports can say so;
- all images of a set must share one size, unless `size` is given, then each is resized to
  `size x size` (bicubic); a mismatch without `size` raises MetricInputError naming two sizes;
- an empty set raises MetricInputError (a mean over nothing would be NaN).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence, Union

import numpy as np
from PIL import Image

from tiger.greyscale import GreyscaleError, to_grey, was_colour
from tiger.metrics.errors import MetricInputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

ImageSource = Union[str, Path, np.ndarray, Sequence["Image.Image | np.ndarray"]]


@dataclass
class ImageSet:
    """A loaded set: `pixels` uint8 N x H x W, plus where the images came from."""

    pixels: np.ndarray
    names: list[str]
    converted_to_grey: int = 0

    def __len__(self) -> int:
        return len(self.pixels)


def list_images(folder: str | Path) -> list[Path]:
    """Image files of a folder (sorted, not recursive); masks (`*_mask*`) are left out."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MetricInputError(f"image folder {folder} does not exist")
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and "_mask" not in p.stem)


def _to_grey(img: "Image.Image | np.ndarray") -> tuple[np.ndarray, bool]:
    """(uint8 greyscale by `tiger.greyscale`'s rule, whether colour had to be reduced)."""
    try:
        return to_grey(img), was_colour(img)
    except GreyscaleError as e:
        raise MetricInputError(f"an image cannot be read as greyscale: {e}") from e


def _resize(arr: np.ndarray, size: int) -> np.ndarray:
    if arr.shape == (size, size):
        return arr
    return np.asarray(Image.fromarray(arr).resize((size, size), Image.BICUBIC))


def load_image_set(source: ImageSource, size: int | None = None, name: str = "image set",
                   limit: int | None = None) -> ImageSet:
    """Bring a folder / list / array into an `ImageSet` (see the module doc for the rules)."""
    names: list[str]
    items: Iterable
    if isinstance(source, (str, Path)):
        files = list_images(source)[:limit]
        if not files:
            raise MetricInputError(f"{name}: folder {source} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        names = [f.name for f in files]
        items = (Image.open(f) for f in files)
    elif isinstance(source, np.ndarray):
        if source.ndim == 2:
            raise MetricInputError(f"{name}: got one H x W image; pass a set (N x H x W)")
        src = source[:limit]
        if src.ndim == 4 and src.shape[1] == 1:
            src = src[:, 0]
        if len(src) == 0:
            raise MetricInputError(f"{name} is empty: no images to score")
        if src.ndim == 3 and src.dtype == np.uint8 and (size is None or src.shape[1:] == (size, size)):
            return ImageSet(np.ascontiguousarray(src), [str(i) for i in range(len(src))])
        names = [str(i) for i in range(len(src))]
        items = list(src)
    else:
        items = [Image.open(x) if isinstance(x, (str, Path)) else x for x in list(source)[:limit]]
        names = [str(x) for x in list(source)[:limit]]
    arrays: list[np.ndarray] = []
    converted = 0
    for item in items:
        arr, colour = _to_grey(item)
        converted += colour
        if size is not None:
            arr = _resize(arr, size)
        arrays.append(arr)
    if not arrays:
        raise MetricInputError(f"{name} is empty: no images to score")
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        a, b = sorted(shapes)[:2]
        raise MetricInputError(
            f"{name} mixes image sizes ({a[1]}x{a[0]} and {b[1]}x{b[0]}); pass size=... to resize all")
    return ImageSet(np.stack(arrays), names, converted)


def as_pixels(source: "ImageSource | ImageSet", size: int | None = None, name: str = "image set") -> np.ndarray:
    """uint8 N x H x W from anything `load_image_set` accepts (or an ImageSet)."""
    if isinstance(source, ImageSet):
        px = source.pixels
        if size is not None and px.shape[1:] != (size, size):
            px = np.stack([_resize(a, size) for a in px])
        return px
    return load_image_set(source, size=size, name=name).pixels


def same_size(a: np.ndarray, b: np.ndarray, what: str) -> None:
    """Metrics that compare pixels need one size across both sets; say so clearly."""
    if a.shape[1:] != b.shape[1:]:
        raise MetricInputError(
            f"{what}: real images are {a.shape[2]}x{a.shape[1]} but generated are {b.shape[2]}x{b.shape[1]}; "
            "resize one set (size=...) first")


def to_tensor(pixels: np.ndarray):
    """uint8 N x H x W -> float tensor N x 1 x H x W in [-1, 1] (the library's image range)."""
    import torch

    return torch.from_numpy(pixels).float().unsqueeze(1).div(127.5).sub(1.0)
