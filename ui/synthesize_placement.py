"""What each nodule-placement control of the Synthesize page does: background choice, drag and
drop, Location and Size chips, extension, custom mask, gland box.

Each takes the page's placement state (ui/placement.py) and returns the page's view of it
(state, canvas, condition image, Location radio), so `ui.synthesize.build` only wires events.
Plain functions: tests call them without a browser.
"""
from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from tiger import conditions as cond
from ui import backgrounds as bgs
from ui import placement as pl
from ui.canvas import dropped_center
from ui.context import AppContext
from ui.uploads import editor_mask, load_mask

LOCATIONS = list(cond.LOCATIONS)


def _view(state: pl.Placement | None, note: str = "") -> tuple[Any, dict, Any, Any]:
    """(state, canvas value, condition image, location radio value) after any placement change."""
    loc = state["location"] if state else None
    return state, pl.canvas_for(state, note), pl.condition_preview(state), loc


def initial_placement(ctx: AppContext) -> tuple[pl.Placement | None, str]:
    """The first bank background with a middle-sized nodule in the middle, or None + why."""
    try:
        bank = bgs.open_bank(ctx.model_dir)
        rows = bgs.bank_rows(bank)
    except ValueError as exc:
        return None, str(exc)
    if not rows:
        return None, "The model's background bank is empty: derive a background from your image."
    sobel, gland = bgs.load_background(bank, rows[0]["id"], size=bgs.image_size(ctx.model_dir))
    return pl.new_placement(sobel, gland, background_id=rows[0]["id"]), ""


def choose_background(ctx: AppContext, state: pl.Placement | None, background_id: str) -> tuple:
    """Gallery click: keep the nodule's shape, size and third; swap the background."""
    bank = bgs.open_bank(ctx.model_dir)
    sobel, gland = bgs.load_background(bank, background_id, size=bgs.image_size(ctx.model_dir))
    return _view(_rebase(state, sobel, gland, background_id))


def _rebase(state: pl.Placement | None, sobel: np.ndarray, gland: Any, background_id: str | None) -> pl.Placement:
    if not state or state["shape"].shape != sobel.shape:
        return pl.new_placement(sobel, gland, background_id=background_id,
                                location=(state or {}).get("location") or "middle")
    return pl.new_placement(sobel, gland, background_id=background_id, shape=state["shape"],
                            size=state["frac"], location=state["location"], extension=state["extension"])


def derive_from_image(ctx: AppContext, state: pl.Placement | None, upload: Any) -> tuple:
    """'Derive from my image': upload -> Sobel map + estimated gland; no bank id."""
    _, sobel, gland = bgs.derive_background(upload, bgs.image_size(ctx.model_dir))
    return _view(_rebase(state, sobel, gland, None), "background derived from your image")


def _need(state: pl.Placement | None) -> pl.Placement:
    if not state:
        raise cond.ConditionError("Choose a background first (bank gallery or 'derive from my image').")
    return state


def drop(state: pl.Placement | None, canvas_value: Any) -> tuple:
    """The user dropped the nodule on the canvas: pin it there and read the Location."""
    centre = dropped_center(canvas_value)
    if centre is None:
        return _view(state)
    return _view(pl.move_to_center(_need(state), *centre))


def pick_location(state: pl.Placement | None, location: str) -> tuple:
    """The Location chip was chosen: move the nodule into that third."""
    if location not in LOCATIONS:
        return _view(state)
    return _view(pl.move_to_location(_need(state), location))


def resize(state: pl.Placement | None, frac: float) -> tuple:
    return _view(pl.set_size(_need(state), float(frac)))


def recalled_size(state: pl.Placement | None) -> Any:
    """The Size slider's value for a recalled placement: the fraction its mask measures,
    clipped to the slider (a recalled nodule larger than the slider allows keeps its mask)."""
    if not state or state.get("frac") is None:
        return gr.update()
    lo, hi = pl.SIZE_RANGE
    return round(min(hi, max(lo, float(state["frac"]))), 2)


def size_chip(state: pl.Placement | None, size: str) -> tuple:
    """The Size chip sets the slider's fraction and resizes the nodule."""
    if size not in cond.SIZE_FRACTIONS or not state:
        return (*_view(state), gr.update())
    new = pl.set_size(state, size)
    return (*_view(new), new["frac"])


def extend(state: pl.Placement | None, extension: bool) -> tuple:
    return _view(pl.set_extension(_need(state), bool(extension)))


def custom_mask(state: pl.Placement | None, upload: Any, drawing: Any) -> tuple:
    """Use an uploaded mask file, else the freehand drawing, as the nodule's outline."""
    state = _need(state)
    shape = state["sobel"].shape
    mask = load_mask(upload, shape) if upload else editor_mask(drawing, shape)
    if mask is None:
        raise cond.ConditionError("Upload a mask PNG or draw the nodule outline first.")
    return _view(pl.set_shape(state, mask), "custom mask")


def default_shape(state: pl.Placement | None) -> tuple:
    state = _need(state)
    return _view(pl.set_shape(state, cond.default_mask(state["sobel"].shape, "middle")))


def adjust_gland(state: pl.Placement | None, x0: float, y0: float, x1: float, y1: float) -> tuple:
    return _view(pl.set_gland(_need(state), x0, y0, x1, y1), "gland extent adjusted")
