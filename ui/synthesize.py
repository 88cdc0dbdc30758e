"""The Synthesize page (Diversify mode): chips -> texts, a draggable nodule on a background, generate.

The plain functions the form calls come first (module level, so tests call them without a
browser; the placement controls' own are in ui/synthesize_placement.py), then the layout
(`build`). All model work goes through tiger/ via ui.generate.
"""
from __future__ import annotations

from typing import Any

import gradio as gr

from tiger import conditions as cond
from ui import backgrounds as bgs
from ui import chips as chipform
from ui import generate as gen
from ui import placement as pl
from ui.canvas import mask_canvas
from ui.context import AppContext
from ui.errors import friendly
from ui.jobs import GENERATE_QUEUE, gallery_value, require_model, results_state, stop, stream_batch, zip_batch
from ui.synthesize_placement import (adjust_gland, choose_background, custom_mask, default_shape, derive_from_image,
                                    drop, extend, initial_placement, pick_location, recalled_size, resize, size_chip)
from ui.widgets import chip_form, gen_settings, live_preview

LOCATIONS = list(cond.LOCATIONS)


# --------------------------------------------------------------------------------------------
# plain functions (no Gradio objects in or out, except gr.update where a page needs it)
# --------------------------------------------------------------------------------------------
def texts_for(*values: Any) -> tuple[str, str, str]:
    """Chip radio values (FORM_GROUPS order, then location) -> (FG text, BG text, TI-RADS line)."""
    *chip_values, location = values
    pv = chipform.preview(chipform.chips_from_form(chip_values, location=location))
    return pv["text_fg"], pv["text_bg"], chipform.tirads_markdown(pv)


def apply_preset(name: str) -> list[str]:
    """Preset button -> the radio values of that typical profile."""
    return chipform.form_from_chips(chipform.preset_chips(name))


def request_from_form(chip_values: list[Any], location: str | None, text_fg: str, text_bg: str,
                      state: pl.Placement | None, seed: Any, randomize: bool, batch: Any, steps: Any,
                      guidance: Any, fg_scale: Any, bg_scale: Any, encoders: str,
                      sampler: str | None = None) -> gen.GenerationRequest:
    """The form as a checked GenerationRequest (raises ValueError subclasses with messages)."""
    from tiger import knowledge as kb

    chips = kb.validate_chips(chipform.chips_from_form(chip_values, location=location))
    fg_default, bg_default = kb.build_prompts(chips)
    req = gen.GenerationRequest(
        chips=chips, text_fg=(text_fg or "").strip() or fg_default, text_bg=(text_bg or "").strip() or bg_default,
        mask=state["mask"] if state else None, sobel=state["sobel"] if state else None,
        background_id=state.get("background_id") if state else None, encoders=encoders or "both",
        num_inference_steps=steps, guidance_scale=guidance, fg_scale=fg_scale, bg_scale=bg_scale,
        seeds=gen.make_seeds(seed, bool(randomize), batch), scheduler=sampler or gen.DEFAULT_SAMPLER)
    return gen.check_request(req)


def select_result(results: list[dict[str, Any]], index: int | None) -> tuple[dict, str | None]:
    if not results or index is None or not (0 <= index < len(results)):
        return {}, None
    r = results[index]
    shown = {k: v for k, v in r["record"].items() if k != "mask"}
    return shown, r["path"]


def form_from_record(ctx: AppContext, record: dict[str, Any], state: pl.Placement | None) -> dict[str, Any]:
    """A result's record -> every form value (chips, texts, seed, settings, placement).

    The background comes back from the bank by id when it still exists; the mask from the
    record's embedded PNG, so the condition is exactly the one that made the image.
    """
    from tiger import knowledge as kb
    from tiger import pngmeta

    chips = kb.validate_chips(record.get("chips") or {})
    out: dict[str, Any] = {
        "chips": chipform.form_from_chips(chips), "location": chips.get("location"),
        "text_fg": record.get("text_fg", ""), "text_bg": record.get("text_bg", ""),
        "seed": int(record.get("seed", 0)), "randomize": False,
        "steps": int(record.get("num_inference_steps", record.get("steps", 25))),
        "guidance": float(record.get("guidance_scale", record.get("guidance", 3.0))),
        "fg_scale": float(record.get("fg_scale", 1.0)), "bg_scale": float(record.get("bg_scale", 1.0)),
        "encoders": record.get("encoders", "both") if record.get("encoders") in gen.ENCODERS[:3] else "both",
        # records from before the sampler choice were made with DDIM
        "sampler": record.get("scheduler") if record.get("scheduler") in gen.SAMPLERS else "ddim",
    }
    new_state = state
    bg_id = record.get("background_id")
    if bg_id:
        try:
            bank = bgs.open_bank(ctx.model_dir)
            sobel, gland = bgs.load_background(bank, bg_id, size=bgs.image_size(ctx.model_dir))
            new_state = pl.new_placement(sobel, gland, background_id=bg_id)
        except ValueError:
            new_state = state
    elif isinstance(record.get("sobel"), str):   # a background derived from the user's image
        try:
            new_state = pl.new_placement(pngmeta.b64png_to_array(record["sobel"]))
        except ValueError:
            new_state = state
    if new_state and isinstance(record.get("mask"), str):
        try:
            mask = pngmeta.b64png_to_array(record["mask"])
            if mask.shape == new_state["sobel"].shape and mask.any():
                new_state = pl.adopt_mask(new_state, mask)
        except ValueError:
            pass
    out["state"] = new_state
    return out


# --------------------------------------------------------------------------------------------
# layout and wiring
# --------------------------------------------------------------------------------------------
def build(ctx: AppContext) -> None:
    present, status_md = bgs.model_status(ctx.model_dir)
    gr.Markdown(status_md, elem_id="syn-model-status")
    state0, note0 = initial_placement(ctx) if present else (None, "No model: derive a background from your image.")
    bank_ids: list[str] = []
    bank_items: list[tuple[str, str]] = []
    if present:
        try:
            bank = bgs.open_bank(ctx.model_dir)
            rows = bgs.bank_rows(bank)
            bank_ids, bank_items = [r["id"] for r in rows], bgs.gallery_items(bank, rows)
        except ValueError:
            pass

    placement = gr.State(state0)
    shown_ids = gr.State(bank_ids)
    results = gr.State([])
    with gr.Row():
        with gr.Column(scale=5):
            gr.Markdown("### Nodule features")
            with gr.Row():
                preset_buttons = [gr.Button(label, size="sm", elem_id=f"syn-preset-{key}")
                                  for label, key in chipform.PRESETS.items()]
            form = chip_form("syn")
        with gr.Column(scale=5):
            gr.Markdown("### Background and nodule placement")
            with gr.Accordion("Background bank", open=not bool(state0)):
                plane_filter = gr.Radio(list(bgs.PLANE_FILTERS), value="all", label="Plane filter",
                                        elem_id="syn-plane-filter")
                bank_gallery = gr.Gallery(bank_items, columns=6, height=200, allow_preview=False,
                                          label="Backgrounds (click to use)", elem_id="syn-bank")
                derive = gr.File(label="...or derive from my image (PNG/JPEG/DICOM -> Sobel map)",
                                 file_types=["image", ".dcm"], elem_id="syn-derive")
            canvas = mask_canvas(pl.canvas_for(state0, note0) if state0 else None, elem_id="syn-canvas")
            location = gr.Radio(LOCATIONS, value=(state0 or {}).get("location"),
                                label="Location (drag the nodule or pick a pole)", elem_id="syn-location")
            with gr.Row():
                size = gr.Slider(*pl.SIZE_RANGE, value=0.5, step=0.05, label="Nodule size (of gland height)",
                                 elem_id="syn-size")
                extension = gr.Checkbox(False, label="Extrathyroidal extension (cross the upper edge)",
                                        elem_id="syn-extension")
            with gr.Accordion("Custom mask (upload or draw)", open=False):
                mask_file = gr.File(label="Mask PNG (white nodule on black)", file_types=["image"])
                drawing = gr.ImageEditor(type="numpy", label="Draw the nodule outline", height=260,
                                         canvas_size=(128, 128))
                with gr.Row():
                    use_mask = gr.Button("Use this mask", size="sm")
                    reset_mask = gr.Button("Back to the default ellipse", size="sm")
            with gr.Accordion("Gland extent (estimated; adjust if wrong)", open=False):
                side = bgs.image_size(ctx.model_dir)
                g = (state0 or {}).get("gland") or {"x0": 0, "y0": 0, "x1": side, "y1": side}
                with gr.Row():
                    gx0 = gr.Slider(0, side, value=g["x0"], step=1, label="left (x0)")
                    gx1 = gr.Slider(0, side, value=g["x1"], step=1, label="right (x1)")
                with gr.Row():
                    gy0 = gr.Slider(0, side, value=g["y0"], step=1, label="top (y0)")
                    gy1 = gr.Slider(0, side, value=g["y1"], step=1, label="bottom (y1)")
                gland_btn = gr.Button("Apply gland extent", size="sm")
            condition = gr.Image(pl.condition_preview(state0), label="Conditions (BG Sobel + FG mask)",
                                 interactive=False, height=260, elem_id="syn-condition", type="pil")
    gr.Markdown("### Generate")
    settings = gen_settings("syn")
    with gr.Row():
        go = gr.Button("Generate", variant="primary", elem_id="syn-generate")
        halt = gr.Button("Stop", variant="stop", elem_id="syn-stop")
    status = gr.Markdown(elem_id="syn-status")
    preview = live_preview("syn")
    gallery = gr.Gallery(label="Results (click one for its parameters)", columns=4, height=320,
                         object_fit="contain", elem_id="syn-results", format="png")
    with gr.Row():
        params = gr.JSON(label="Parameters of the selected image", elem_id="syn-params")
        with gr.Column():
            one_file = gr.File(label="Selected image (PNG with parameters)", elem_id="syn-one")
            zip_file = gr.File(label="Whole batch (zip + manifest.json)", elem_id="syn-zip")
            send_back = gr.Button("Send parameters back to the form", elem_id="syn-send-back")
            recall_png = gr.File(label="...or recall from one of our PNGs", file_types=[".png"],
                                 elem_id="syn-recall")
    selected = gr.State(None)

    # --- chips -> texts (live) ---
    chip_inputs = [*form.radios, location]
    for comp in chip_inputs:
        comp.change(texts_for, chip_inputs, [form.text_fg, form.text_bg, form.tirads],
                    api_name=False, show_progress="hidden")
    for btn in preset_buttons:
        btn.click(friendly(apply_preset), gr.State(btn.value), form.radios, api_name=False)
    # programmatic way to the same function, for API clients
    gr.Button(visible=False).click(friendly(texts_for), chip_inputs, [form.text_fg, form.text_bg, form.tirads],
                                   api_name="chip_texts")

    # --- placement ---
    view = [placement, canvas, condition, location]
    canvas.drop(friendly(drop), [placement, canvas], view, api_name="drop_nodule", show_progress="hidden")
    location.input(friendly(pick_location), [placement, location], view, api_name="pick_location",
                   show_progress="hidden")
    size.release(friendly(resize), [placement, size], view, api_name="resize_nodule")
    i_size = chipform.FORM_GROUPS.index("size")
    form.radios[i_size].input(friendly(size_chip), [placement, form.radios[i_size]], [*view, size], api_name=False)
    extension.input(friendly(extend), [placement, extension], view, api_name="set_extension")
    use_mask.click(friendly(custom_mask), [placement, mask_file, drawing], view, api_name="custom_mask")
    reset_mask.click(friendly(default_shape), [placement], view, api_name=False)
    gland_btn.click(friendly(adjust_gland), [placement, gx0, gy0, gx1, gy1], view, api_name="adjust_gland")

    def filter_bank(plane: str) -> tuple[list, list[str]]:
        try:
            bank = bgs.open_bank(ctx.model_dir)
        except ValueError:
            return [], []
        rows = bgs.bank_rows(bank, plane)
        return bgs.gallery_items(bank, rows), [r["id"] for r in rows]

    plane_filter.change(friendly(filter_bank), plane_filter, [bank_gallery, shown_ids], api_name="filter_backgrounds")

    def on_pick(state: Any, ids: list[str], evt: gr.SelectData) -> tuple:
        return choose_background(ctx, state, ids[evt.index])

    bank_gallery.select(friendly(on_pick), [placement, shown_ids], view, api_name=False)
    def pick_by_id(state: Any, background_id: str) -> tuple:
        return choose_background(ctx, state, background_id)

    def derive_upload(state: Any, image_file: Any) -> tuple:
        return derive_from_image(ctx, state, image_file)

    gr.Button(visible=False).click(friendly(pick_by_id), [placement, gr.Textbox(visible=False, label="background_id")],
                                   view, api_name="choose_background")
    derive.upload(friendly(derive_upload), [placement, derive], view, api_name="derive_background")

    # --- generate / stop ---
    gen_inputs = [*form.radios, location, form.text_fg, form.text_bg, placement, *settings.inputs()]
    assert len(form.radios) == 11, "run() below names one parameter per FORM_GROUPS entry"

    def run(subtype: str, composition: str, echogenicity: str, echotexture: str, calcification: str,
            aspect: str, shape: str, margin: str, halo: str, size: str, plane: str, location: str,
            text_fg: str, text_bg: str, state: Any, seed: float, randomize: bool, batch: float, steps: float,
            guidance: float, fg_scale: float, bg_scale: float, encoders: str, sampler: str | None,
            request: gr.Request, progress: gr.Progress = gr.Progress()) -> Any:
        chip_values = [subtype, composition, echogenicity, echotexture, calcification, aspect, shape,
                       margin, halo, size, plane]
        require_model(ctx)
        req = request_from_form(chip_values, location, text_fg, text_bg, state, seed, randomize, batch,
                                steps, guidance, fg_scale, bg_scale, encoders, sampler)
        res: list = []
        text, shown = "", None
        for res, text, shown in stream_batch(ctx, req, request.session_hash or "anonymous", progress):
            yield gallery_value(res), text, results_state(res), None, shown
        if res:
            yield gallery_value(res), text, results_state(res), zip_batch(results_state(res)), shown

    gen_event = go.click(friendly(run), gen_inputs, [gallery, status, results, zip_file, preview], api_name="generate",
                         concurrency_limit=1, concurrency_id=GENERATE_QUEUE)

    def on_stop(request: gr.Request) -> str:
        return stop(request.session_hash or "anonymous")

    halt.click(on_stop, None, status, cancels=[gen_event], api_name="stop", queue=False)

    def on_select(res: list, evt: gr.SelectData) -> tuple:
        shown, path = select_result(res, evt.index)
        return shown, path, evt.index

    gallery.select(on_select, results, [params, one_file, selected], api_name=False)

    recall_outputs = [*form.radios, location, form.text_fg, form.text_bg, settings.seed, settings.randomize,
                      settings.steps, settings.guidance, settings.fg_scale, settings.bg_scale,
                      settings.encoders, settings.sampler, placement, canvas, condition, size]

    def _recall(record: dict[str, Any], state: Any) -> list[Any]:
        f = form_from_record(ctx, record, state)
        s = f["state"]
        return [*f["chips"], f["location"] or (s or {}).get("location"), f["text_fg"], f["text_bg"], f["seed"],
                f["randomize"], f["steps"], f["guidance"], f["fg_scale"], f["bg_scale"], f["encoders"],
                f["sampler"], s, pl.canvas_for(s), pl.condition_preview(s), recalled_size(s)]

    def on_send_back(res: list, index: int | None, state: Any) -> list[Any]:
        if not res:
            raise gen.GenerationError("Generate an image first, then click it and send its parameters back.")
        return _recall(res[index if index is not None and index < len(res) else 0]["record"], state)

    send_back.click(friendly(on_send_back), [results, selected, placement], recall_outputs, api_name=False)
    def recall_upload(png_file: Any, state: Any) -> list[Any]:
        return _recall(gen.read_recall(png_file), state)

    recall_png.upload(friendly(recall_upload), [recall_png, placement], recall_outputs, api_name="recall_png")
