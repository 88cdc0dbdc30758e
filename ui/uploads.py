"""Validation of everything a user uploads: images (PNG/JPEG/DICOM), masks and PNG recalls.

Uploads are the main way bad input reaches the app, so every check here raises `UploadError`
(a ValueError) with a sentence a clinician can act on, before any pixel reaches tiger/.
Limits are generous for real scans yet stop decompression bombs (a 10000x10000 image would
take ~100 MB per channel and minutes of resizing on 2 cores).
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from tiger.greyscale import GreyscaleError, image_to_grey, to_grey

MAX_SIDE = 4096          # pixels per side; larger is almost certainly not an ultrasound frame
MAX_BYTES = 50 * 1024 * 1024
MIN_SIDE = 16


class UploadError(ValueError):
    """An uploaded file cannot be used; the message says why and what to do."""


def _as_path(upload: Any) -> Path | None:
    """Gradio hands files over as paths (str), dicts with 'path', or objects with .name."""
    if upload is None:
        return None
    if isinstance(upload, (str, Path)):
        return Path(upload)
    if isinstance(upload, dict) and upload.get("path"):
        return Path(upload["path"])
    name = getattr(upload, "name", None) or getattr(upload, "path", None)
    return Path(name) if name else None


def _check_side(width: int, height: int, what: str) -> None:
    if width > MAX_SIDE or height > MAX_SIDE:
        raise UploadError(
            f"The {what} is {width}x{height} pixels; the largest accepted is {MAX_SIDE}x{MAX_SIDE}. "
            "Please crop or downscale it (an ultrasound frame is usually under 1024 pixels wide).")
    if width < MIN_SIDE or height < MIN_SIDE:
        raise UploadError(f"The {what} is only {width}x{height} pixels; at least "
                          f"{MIN_SIDE}x{MIN_SIDE} is needed.")


def _read_dicom(path: Path) -> np.ndarray:
    try:
        import pydicom
    except ImportError as exc:  # pragma: no cover - pydicom is in requirements
        raise UploadError("DICOM files need the 'pydicom' package, which is not installed.") from exc
    try:
        ds = pydicom.dcmread(str(path))
        arr = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for broken files
        raise UploadError(f"'{path.name}' looks like DICOM but its pixels cannot be read ({exc}).") from exc
    arr = np.asarray(arr)
    if arr.ndim == 4:          # multi-frame colour: take the first frame
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[-1] not in (3, 4):  # multi-frame greyscale
        arr = arr[0]
    if arr.ndim == 3:
        arr = arr[..., :3].mean(axis=-1)
    _check_side(arr.shape[1], arr.shape[0], "DICOM image")
    arr = arr.astype(np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        raise UploadError(f"The DICOM image '{path.name}' is blank (every pixel is {lo:g}).")
    return ((arr - lo) / (hi - lo) * 255.0).round().astype(np.uint8)


def _is_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def load_grey_image(upload: Any, what: str = "image") -> np.ndarray:
    """Read an uploaded PNG/JPEG/DICOM (path, dict or array) as a uint8 HxW greyscale array.

    Raises UploadError for missing, non-image, oversize or blank files, naming the file.
    """
    if isinstance(upload, (np.ndarray, Image.Image)):
        try:
            arr = to_grey(upload)
        except GreyscaleError as e:
            raise UploadError(f"The {what} must be a 2-D picture: {e}.") from e
        _check_side(arr.shape[1], arr.shape[0], what)
        return arr
    path = _as_path(upload)
    if path is None:
        raise UploadError(f"No {what} was uploaded.")
    if not path.is_file():
        raise UploadError(f"The uploaded {what} '{path.name}' could not be found on the server; "
                          "please upload it again.")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise UploadError(f"'{path.name}' is {size / 1e6:.0f} MB; the limit is {MAX_BYTES / 1e6:.0f} MB.")
    if size == 0:
        raise UploadError(f"'{path.name}' is empty (0 bytes).")
    if _is_dicom(path) or path.suffix.lower() in (".dcm", ".dicom"):
        return _read_dicom(path)
    try:
        with warnings.catch_warnings():   # PIL's bomb warning: we refuse such sizes ourselves
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            # the header gives the size before any pixel is decoded: refuse bombs early
            _check_side(im.width, im.height, what)
            im.load()
            return image_to_grey(im)
    except UploadError:
        raise
    except (UnidentifiedImageError, OSError, ImportError, Image.DecompressionBombError, GreyscaleError) as exc:
        raise UploadError(
            f"'{path.name}' is not an image this app can read. Upload a PNG, JPEG or DICOM file."
        ) from exc


def binarize_mask(mask: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A 0/255 uint8 mask, resized (nearest) to `shape` (H, W) when given.

    A mask with no pixels or one that covers (almost) the whole image gives no usable nodule
    condition, so both are refused with an explanation rather than silently generating noise.
    """
    arr = np.asarray(mask)
    if arr.ndim == 3:
        # RGBA drawings: the alpha channel is the stroke; RGB: any bright pixel
        arr = arr[..., 3] if arr.shape[-1] == 4 and arr[..., 3].min() < 255 else arr[..., :3].max(axis=-1)
    if arr.ndim != 2:
        raise UploadError(f"A mask must be a 2-D picture, got shape {np.asarray(mask).shape}.")
    binary = (arr > (arr.max() / 2 if arr.max() > 1 else 0)).astype(np.uint8) * 255
    if shape is not None and binary.shape != tuple(shape):
        binary = np.asarray(Image.fromarray(binary).resize((shape[1], shape[0]), Image.NEAREST))
    check_mask(binary)
    return binary


def check_mask(mask: np.ndarray) -> None:
    """Raise UploadError when a 0/255 mask is empty or covers nearly the whole image (the
    pipeline's own rule, `tiger.pipeline_inputs.mask_coverage_problem`)."""
    from tiger.pipeline_inputs import mask_coverage_problem

    problem = mask_coverage_problem(mask)
    if problem:
        raise UploadError(problem)


def load_mask(upload: Any, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read an uploaded mask file or array and return it as checked 0/255 uint8 at `shape`."""
    if isinstance(upload, np.ndarray):
        return binarize_mask(upload, shape)
    path = _as_path(upload)
    if path is None:
        raise UploadError("No mask was uploaded.")
    try:
        with Image.open(path) as im:
            _check_side(im.width, im.height, "mask")
            arr = np.asarray(im.convert("RGBA") if im.mode in ("RGBA", "LA", "P") else im.convert("L"))
    except UploadError:
        raise
    except (UnidentifiedImageError, OSError) as exc:
        raise UploadError(f"'{path.name}' is not an image; a mask must be a PNG (white nodule on black).") from exc
    return binarize_mask(arr, shape)


def editor_mask(editor_value: Any, shape: tuple[int, int]) -> np.ndarray | None:
    """The freehand drawing of a gr.ImageEditor as a 0/255 mask, or None when nothing was drawn.

    The drawing lives in the editor's layers (the background is only a guide), so the union
    of the layers' alpha is the stroke; closed outlines are filled so a traced contour works.
    """
    if not editor_value:
        return None
    layers = editor_value.get("layers") if isinstance(editor_value, dict) else None
    if not layers:
        return None
    union = None
    for layer in layers:
        arr = np.asarray(layer if not isinstance(layer, (str, Path)) else Image.open(layer).convert("RGBA"))
        if arr.ndim == 3 and arr.shape[-1] == 4:
            alpha = arr[..., 3] > 0
        else:
            alpha = (arr if arr.ndim == 2 else arr.max(axis=-1)) > 0
        union = alpha if union is None else (union | alpha)
    if union is None or not union.any():
        return None
    from scipy.ndimage import binary_fill_holes

    filled = binary_fill_holes(union).astype(np.uint8) * 255
    return binarize_mask(filled, shape)


def to_pil(arr: np.ndarray) -> Image.Image:
    """uint8 array -> PIL image (for gr.Image outputs), kept here so pages share one helper."""
    return Image.fromarray(np.asarray(arr, dtype=np.uint8))


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
