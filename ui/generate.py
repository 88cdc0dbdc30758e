"""The plain-Python side of the Generate button: checked requests, batched runs, previews, stop, export.

Why image 1 alone and then the rest together: the first image reaches the gallery after one
image's worth of steps, and the remaining images share one batched UNet call per step, which on
this CPU costs less than running them one by one (`benchmarks/bench_ui_latency.py` measures
both). Each image keeps its own recorded seed, and its record names the group it was made in,
so `TigerPipeline.replay` is exact. Every few steps the predicted clean image of the group's
first image is handed to `on_preview` (a cheap decode); a Stop takes effect within one
denoising step. The pipeline is shared
by all users; the page serialises runs through Gradio's queue (`concurrency_limit`), and each
run owns its output folder, so results never mix between users.
"""
from __future__ import annotations

import json
import random
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tiger.pipeline_inputs import LIMITS
from tiger.samplers import DEFAULT_SAMPLER, DEFAULT_STEPS, SAMPLERS

# the pipeline's own ranges (one source); a UI batch is capped lower than one call's num_images
STEPS_RANGE = LIMITS["num_inference_steps"]
BATCH_RANGE = (1, 16)
GUIDANCE_RANGE = LIMITS["guidance_scale"]
SCALE_RANGE = LIMITS["fg_scale"]
ENCODERS = ("both", "fg", "bg", "none")
MAX_SEED = 2**31 - 1
PREVIEW_EVERY = 3   # steps between live previews (the first comes after step 1)


class GenerationError(ValueError):
    """A generation request that cannot run; the message names the field and the valid range."""


class StoppedByUser(Exception):
    """Raised inside the step callback to end a run early (caught by `run_batch`)."""


@dataclass
class GenerationRequest:
    """Everything one Generate press asks for, named as `TigerPipeline.__call__` names it
    (`num_inference_steps`, `guidance_scale`, `scheduler`, ...), so a request maps onto the call
    one to one. `mask`/`sobel` are HxW uint8 arrays (0/255); `seeds` become the call's seed list."""

    chips: dict[str, str]
    text_fg: str
    text_bg: str
    mask: np.ndarray | None = None
    sobel: np.ndarray | None = None
    background_id: str | None = None
    encoders: str = "both"
    num_inference_steps: int = DEFAULT_STEPS
    guidance_scale: float = 3.0
    fg_scale: float = 1.0
    bg_scale: float = 1.0
    seeds: list[int] = field(default_factory=lambda: [0])
    reference_image: np.ndarray | None = None
    strength: float | None = None
    mode: str = "diversify"
    mask_auto: bool = False   # Teach: let the pipeline place an ellipse from the size/location chips
    scheduler: str = DEFAULT_SAMPLER


def in_range(name: str, value: Any, lo: float, hi: float, integer: bool = False) -> float | int:
    try:
        num = float(value)
    except (TypeError, ValueError):
        raise GenerationError(f"{name} must be a number, got {value!r}.") from None
    if not np.isfinite(num) or num < lo or num > hi:
        raise GenerationError(f"{name} must be between {lo:g} and {hi:g}, got {value!r}.")
    if integer:
        if num != int(num):
            raise GenerationError(f"{name} must be a whole number, got {value!r}.")
        return int(num)
    return num


def make_seeds(seed: Any, randomize: bool, count: int, rng: random.Random | None = None) -> list[int]:
    """Per-image seeds for a batch: seed, seed+1, ... or fresh random ones (all recorded)."""
    count = int(in_range("Batch size", count, *BATCH_RANGE, integer=True))
    if randomize:
        rng = rng or random.SystemRandom()
        return [rng.randrange(0, MAX_SEED) for _ in range(count)]
    base = int(in_range("Seed", seed, 0, MAX_SEED, integer=True))
    return [(base + i) % (MAX_SEED + 1) for i in range(count)]


def check_request(req: GenerationRequest) -> GenerationRequest:
    """Validate ranges and conditions; returns the request with numbers normalised."""
    req.num_inference_steps = int(in_range("Steps", req.num_inference_steps, *STEPS_RANGE, integer=True))
    req.guidance_scale = float(in_range("Guidance", req.guidance_scale, *GUIDANCE_RANGE))
    req.fg_scale = float(in_range("FG conditioning scale", req.fg_scale, *SCALE_RANGE))
    req.bg_scale = float(in_range("BG conditioning scale", req.bg_scale, *SCALE_RANGE))
    if req.encoders not in ENCODERS:
        raise GenerationError(f"Encoders must be one of {', '.join(ENCODERS)}, got {req.encoders!r}.")
    if req.scheduler not in SAMPLERS:
        raise GenerationError(f"Sampler must be one of {', '.join(SAMPLERS)}, got {req.scheduler!r}.")
    if not req.seeds or len(req.seeds) > BATCH_RANGE[1]:
        raise GenerationError(f"A batch holds 1 to {BATCH_RANGE[1]} images.")
    if req.encoders in ("fg", "both") and req.mask is None and not req.mask_auto:
        raise GenerationError("The FG encoder needs a nodule mask: place, draw or upload one "
                              "(or choose the BG encoder only).")
    if req.encoders in ("bg", "both") and req.sobel is None and req.background_id is None \
            and req.reference_image is None:
        raise GenerationError("The BG encoder needs a background: pick one from the bank or "
                              "derive one from your image (or choose the FG encoder only).")
    if not req.text_fg.strip() and not req.text_bg.strip():
        raise GenerationError("Both texts are empty: choose some feature chips or type a text.")
    return req


# --- stop flags, one per browser session -------------------------------------------------------
class StopFlags:
    """Per-session stop events: Stop in one browser must never end another user's run."""

    def __init__(self) -> None:
        self._flags: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def arm(self, session: str) -> threading.Event:
        with self._lock:
            ev = self._flags.setdefault(session, threading.Event())
            ev.clear()
            return ev

    def stop(self, session: str) -> bool:
        """Set the flag; True when a run of that session was armed."""
        with self._lock:
            ev = self._flags.get(session)
        if ev is None:
            return False
        ev.set()
        return True

    def release(self, session: str) -> None:
        with self._lock:
            self._flags.pop(session, None)


def _pipe_kwargs(req: GenerationRequest, seeds: list[int]) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(
        chips=req.chips, text_fg=req.text_fg, text_bg=req.text_bg, encoders=req.encoders,
        num_inference_steps=req.num_inference_steps, guidance_scale=req.guidance_scale, fg_scale=req.fg_scale,
        bg_scale=req.bg_scale, seed=[int(s) for s in seeds], num_images=len(seeds),
        scheduler=req.scheduler,
    )
    if req.mask is not None:
        kwargs["mask"] = req.mask
    # a bank background travels by id (the record stays small and names it); only a
    # background derived from the user's own image is sent as pixels
    if req.background_id is not None:
        kwargs["background_id"] = req.background_id
    elif req.sobel is not None:
        kwargs["sobel"] = req.sobel
    if req.reference_image is not None:
        kwargs["reference_image"] = req.reference_image
        if req.strength is not None:
            kwargs["strength"] = req.strength
    return kwargs


@dataclass
class Result:
    """One finished image: the PNG on disk (with its record embedded) and the record."""

    path: Path
    record: dict[str, Any]

    def caption(self) -> str:
        r = self.record
        return (f"seed {r.get('seed')} | {r.get('num_inference_steps', r.get('steps'))} steps | "
                f"cfg {r.get('guidance_scale', r.get('guidance'))} | {r.get('encoders', '')}")


def batch_groups(n: int, batched: bool = True) -> list[list[int]]:
    """Image positions per pipeline call: [[0], [1..n-1]] (first image first, the rest batched),
    or one call per image when `batched` is False."""
    if not batched or n <= 2:
        return [[i] for i in range(n)]
    return [[0], list(range(1, n))]


def run_batch(pipe: Any, req: GenerationRequest, out_dir: Path,
              on_step: Callable[[int, int, int], None] | None = None,
              stop: threading.Event | None = None,
              on_preview: Callable[[int, int, Image.Image], None] | None = None,
              preview_every: int = PREVIEW_EVERY, batched: bool = True) -> Iterator[Result]:
    """Run the batch (image 1 alone, then the rest as one batched call), yielding each Result as
    soon as it is written.

    `on_step(image_index, step, total_steps)` is called after every denoising step (image_index:
    the first image of the running group); `on_preview(image_index, step, picture)` after step 1
    and every `preview_every` steps, with the cheap decode of that image's predicted clean latent.
    When `stop` is set the pipeline is interrupted at the next step and the generator ends
    (images already finished are kept).
    """
    from tiger import pngmeta

    check_request(req)
    out_dir.mkdir(parents=True, exist_ok=True)
    for group in batch_groups(len(req.seeds), batched):
        if stop is not None and stop.is_set():
            return
        seeds = [req.seeds[i] for i in group]

        def callback(p: Any, step: int, timestep: Any, kwargs: dict, _i: int = group[0]) -> dict:
            done = step + 1
            if on_step is not None:
                on_step(_i, done, req.num_inference_steps)
            if stop is not None and stop.is_set():
                return {"stop": True}   # the pipeline's public stop: no further step runs
            if on_preview is not None and kwargs.get("pred_x0") is not None and done < req.num_inference_steps \
                    and (done == 1 or done % max(1, preview_every) == 0):
                on_preview(_i, done, p.preview_image(kwargs["pred_x0"][0]))
            return {}

        output = pipe(**_pipe_kwargs(req, seeds), callback_on_step_end=callback)
        if getattr(output, "cancelled", False) or (stop is not None and stop.is_set()):
            return   # an interrupted image is unfinished noise: do not show it as a result
        for k, (index, seed) in enumerate(zip(group, seeds)):
            record = dict(output.records[k]) if getattr(output, "records", None) else {}
            record.setdefault("seed", int(seed))
            record.setdefault("chips", req.chips)
            record.setdefault("mode", req.mode)
            record["batch_position"] = index   # place in the user's batch; batch_index is within its call
            path = out_dir / f"tiger_{index:02d}_seed{int(seed)}.png"
            pngmeta.write_png(output.images[k], record, path)
            yield Result(path=path, record=record)


def new_output_dir(root: Path | None = None) -> Path:
    """A fresh folder per run (inside the system temp dir, which Gradio may serve)."""
    base = Path(root) if root else Path(tempfile.gettempdir()) / "tiger-ui"
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=time.strftime("run-%Y%m%d-%H%M%S-"), dir=base))


def zip_results(results: list[Result], path: Path) -> Path:
    """Zip the batch's PNGs plus manifest.json (one entry per image: file + full record)."""
    if not results:
        raise GenerationError("There are no results to download yet: generate first.")
    manifest = []
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for res in results:
            zf.write(res.path, arcname=res.path.name)
            manifest.append({"file": res.path.name, **_jsonable(res.record)})
        zf.writestr("manifest.json", json.dumps({"images": manifest}, indent=2))
    return path


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return f"<array {obj.shape}>"
    return obj


class RecallError(ValueError):
    """A PNG that carries no Tiger Studio record (not ours, or its metadata was stripped)."""


def read_recall(upload: Any) -> dict[str, Any]:
    """The record embedded in one of our PNGs (a path or PIL image), for 'send back to form'."""
    from tiger import pngmeta

    from ui.uploads import UploadError, _as_path

    source = upload if isinstance(upload, Image.Image) else _as_path(upload)
    if source is None:
        raise UploadError("No PNG was uploaded.")
    try:
        record = pngmeta.read_record(source)
    except (ValueError, OSError) as exc:
        raise RecallError(f"Cannot recall parameters: {exc}.") from exc
    if not isinstance(record, dict) or not record:
        raise RecallError("This PNG carries no Tiger Studio parameters (was it re-saved by another program?).")
    return record
