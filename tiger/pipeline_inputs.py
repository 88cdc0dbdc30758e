"""What goes into a TigerPipeline call: the checks of every argument (plain functions, so the UI
can run them before queueing a job), the greyscale image / mask loading (by tiger.greyscale) and checks, and a parameter
record turned back into call arguments (replay, recall)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from PIL import Image

from tiger.greyscale import GreyscaleError, to_grey
from tiger.pngmeta import b64png_to_array

#: the one range of every numeric argument of a call, (low, high) inclusive; the UI's checks and
#: sliders take theirs from here, so a value the UI accepts is one the pipeline accepts
LIMITS: dict[str, tuple] = {
    "num_inference_steps": (1, 1000),
    "num_images": (1, 64),
    "guidance_scale": (0.0, 30.0),
    "fg_scale": (0.0, 3.0),
    "bg_scale": (0.0, 3.0),
    "beta": (0.0, 3.0),
    "beta_until": (0.0, 1.0),
    "eta": (0.0, 1.0),
    "strength": (0.0, 1.0),
}


class PipelineInputError(ValueError):
    """Bad input to the pipeline (steps, mask, image, seeds, scales); the message is for people."""


def load_grey(image: Any, size: int, what: str = "image") -> np.ndarray:
    """PIL / array / path / bytes -> uint8 size x size greyscale (by `tiger.greyscale`'s one rule);
    a non-image raises PipelineInputError."""
    try:
        arr = to_grey(image)
    except GreyscaleError as e:
        raise PipelineInputError(f"the {what} is not a readable image ({e})") from e
    if arr.shape != (size, size):
        arr = np.asarray(Image.fromarray(arr).resize((size, size), Image.BILINEAR))
    return arr


def check_mask(mask: Any, size: int) -> np.ndarray:
    """A nodule mask -> uint8 0/255 (size x size). Wrong size, empty or near-whole-image masks are refused."""
    try:
        m = np.asarray(mask.convert("L") if isinstance(mask, Image.Image) else mask)
    except (TypeError, ValueError) as e:
        raise PipelineInputError(f"the mask is not an image or array ({e})") from e
    if m.ndim == 3:
        m = m[..., 0]
    if m.ndim != 2 or m.dtype == object:
        raise PipelineInputError(f"the mask must be a 2-D image, got shape {m.shape}")
    if m.shape != (size, size):
        raise PipelineInputError(f"the mask is {m.shape[1]}x{m.shape[0]} pixels but this model makes "
                                 f"{size}x{size} images; draw or resize the mask to {size}x{size}")
    b = m > (127 if m.max() > 1 else 0)
    problem = mask_coverage_problem(b)
    if problem:
        raise PipelineInputError(problem)
    return b.astype(np.uint8) * 255


#: the largest share of the image a nodule mask may cover (it needs background around it)
MAX_MASK_FRACTION = 0.9


def mask_coverage_problem(mask: np.ndarray) -> str | None:
    """Why a binary mask gives no usable nodule condition (empty, or covering more than
    MAX_MASK_FRACTION of the image), or None: the one rule of the pipeline and the UI."""
    frac = float((np.asarray(mask) > 0).mean())
    if frac == 0.0:
        return "The mask is empty (it has no pixels): draw or upload a nodule outline (white on black)."
    if frac > MAX_MASK_FRACTION:
        return (f"The mask covers {frac:.0%} of the image; a nodule mask must leave background around it "
                "(mark only the nodule, white on black, not the whole image).")
    return None


def check_int(name: str, v: Any, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= int(v) <= hi:
        raise PipelineInputError(f"{name} must be a whole number from {lo} to {hi}, got {v!r}")
    return int(v)


def check_float(name: str, v: Any, lo: float, hi: float) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise PipelineInputError(f"{name} must be a number from {lo} to {hi}, got {v!r}") from None
    if not (lo <= f <= hi) or f != f:
        raise PipelineInputError(f"{name} must be a number from {lo} to {hi}, got {v!r}")
    return f


def seed_list(seed: int | Sequence[int], n: int) -> list[int]:
    if isinstance(seed, (list, tuple)):
        if len(seed) != n:
            raise PipelineInputError(f"got {len(seed)} seeds for {n} images; give one seed or one per image")
        return [check_int("seed", s, 0, 2**63 - 1) for s in seed]
    s = check_int("seed", seed, 0, 2**63 - 1 - n)
    return [s + i for i in range(n)]


def record_to_kwargs(record: dict, exact: bool = False) -> dict:
    """A parameter record -> `TigerPipeline.__call__` arguments that reproduce its image.

    exact=False: one image from the record's own seed (identical up to batch-size rounding);
    exact=True: the record's whole batch (`batch_seeds`), whose image `batch_index` is bit-identical.
    """
    batch = record.get("batch_seeds") if exact else None
    batch = batch if batch and len(batch) > 1 else None
    drawn = record.get("mask_drawn", True) or record.get("mode") == "reference"
    try:
        kw = dict(chips=record.get("chips") or None,
                  text_fg=record["text_fg"] if record.get("text_fg_override") else None,
                  text_bg=record["text_bg"] if record.get("text_bg_override") else None,
                  mask=b64png_to_array(record["mask"]) if record.get("mask") and (drawn or not batch) else None,
                  sobel=b64png_to_array(record["sobel"]) if record.get("sobel") else None,
                  background_id=record.get("background_id"), encoders=record["encoders"],
                  num_inference_steps=record["num_inference_steps"] if "num_inference_steps" in record else record["steps"],
                  guidance_scale=record["guidance_scale"],
                  fg_scale=record["fg_scale"], bg_scale=record["bg_scale"], beta=record["beta"],
                  beta_until=record.get("beta_until", 1.0),
                  eta=record.get("eta", 0.0), seed=list(batch) if batch else record["seed"],
                  scheduler=record.get("scheduler", "ddim"), scheduler_config=record.get("scheduler_config") or None,
                  num_images=len(batch) if batch else 1)
    except KeyError as e:
        raise PipelineInputError(f"the parameter record lacks {e.args[0]!r}") from None
    if record.get("mode") == "reference":
        kw["reference_image"] = b64png_to_array(record["reference_image"])
        kw["strength"] = record.get("strength", 1.0)
    return kw
