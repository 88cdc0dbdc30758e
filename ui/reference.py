"""The Reference page: a real image -> its own Sobel map and nodule mask -> edited variants.

The source's anatomy is kept through its Sobel map (BG condition) and its nodule outline (FG
condition); the chips say which features to keep or change. The mask comes from the user
(drawn or uploaded) or from the segmenter when one is trained; never guessed silently.
"""
from __future__ import annotations

from pathlib import Path

from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from tiger import conditions as cond
from tiger import knowledge as kb
from ui import backgrounds as bgs
from ui import chips as chipform
from ui import generate as gen
from ui.context import AppContext
from ui.errors import friendly
from ui.jobs import GENERATE_QUEUE, gallery_value, require_model, results_state, stop, stream_batch
from ui.placement import condition_preview
from ui.uploads import UploadError, editor_mask, load_mask
from ui.widgets import chip_form, gen_settings, live_preview


class NoSegmenter(ValueError):
    """No trained segmenter ships with this build, so the mask must be drawn or uploaded."""


def load_reference(ctx: AppContext, upload: Any) -> dict[str, Any]:
    """Upload -> {'image': grey at model size, 'sobel': its Sobel map, 'mask': None}."""
    grey, sobel, _ = bgs.derive_background(upload, bgs.image_size(ctx.model_dir))
    return {"image": grey, "sobel": sobel, "mask": None}


def predict_mask(ref: dict[str, Any] | None, model_dir: Path) -> dict[str, Any]:
    """Segment the nodule with the segmenter shipped in the app's model folder, when there is one."""
    ref = _need(ref)
    try:
        from tiger.segment import default_segmenter
    except ImportError:
        default_segmenter = None  # type: ignore[assignment]
    seg = default_segmenter(model_dir) if default_segmenter is not None else None
    if seg is None:
        raise NoSegmenter("No nodule segmenter is trained in this build: draw the outline or upload a mask.")
    mask = np.asarray(seg.predict_mask(ref["image"]), dtype=np.uint8)
    if not mask.any():
        raise NoSegmenter("The segmenter found no nodule in this image: draw the outline or upload a mask.")
    return {**ref, "mask": mask}


def set_mask(ref: dict[str, Any] | None, upload: Any, drawing: Any) -> dict[str, Any]:
    """Uploaded mask file, else the freehand drawing, as the reference's nodule mask."""
    ref = _need(ref)
    shape = ref["image"].shape
    mask = load_mask(upload, shape) if upload else editor_mask(drawing, shape)
    if mask is None:
        raise UploadError("Draw the nodule outline on the image or upload a mask PNG first.")
    return {**ref, "mask": mask}


def _need(ref: dict[str, Any] | None) -> dict[str, Any]:
    if not ref:
        raise UploadError("Upload a source image first (PNG, JPEG or DICOM).")
    return ref


def preview_images(ref: dict[str, Any] | None) -> tuple[Image.Image | None, Image.Image | None]:
    """(source image, conditions overlay) for the page."""
    if not ref:
        return None, None
    return Image.fromarray(ref["image"]), condition_preview({"sobel": ref["sobel"], "mask": ref["mask"]})


def reference_request(ref: dict[str, Any] | None, chip_values: list[Any], text_fg: str, text_bg: str,
                      strength: Any, seed: Any, randomize: bool, batch: Any, steps: Any, guidance: Any,
                      fg_scale: Any, bg_scale: Any, encoders: str, sampler: str | None = None) -> gen.GenerationRequest:
    """The form as a checked Reference-mode request."""
    ref = _need(ref)
    if ref.get("mask") is None:
        raise UploadError("The source needs its nodule mask: draw it, upload it or predict it.")
    # the location is not a choice here: it is where the source's own nodule lies
    location = cond.location_of(ref["mask"], cond.estimate_gland_extent(ref["image"]))
    chips = kb.validate_chips({**chipform.chips_from_form(chip_values), "location": location})
    fg_default, bg_default = kb.build_prompts(chips)
    strength = float(gen.in_range("Strength", strength, 0.05, 1.0))
    req = gen.GenerationRequest(
        chips=chips, text_fg=(text_fg or "").strip() or fg_default, text_bg=(text_bg or "").strip() or bg_default,
        mask=ref["mask"], reference_image=ref["image"], strength=strength, encoders=encoders or "both",
        num_inference_steps=steps, guidance_scale=guidance, fg_scale=fg_scale, bg_scale=bg_scale,
        seeds=gen.make_seeds(seed, bool(randomize), batch), mode="reference",
        scheduler=sampler or gen.DEFAULT_SAMPLER)
    return gen.check_request(req)


def texts_for(*chip_values: Any) -> tuple[str, str, str]:
    pv = chipform.preview(chipform.chips_from_form(chip_values))
    return pv["text_fg"], pv["text_bg"], chipform.tirads_markdown(pv)


def build(ctx: AppContext) -> None:
    _, status_md = bgs.model_status(ctx.model_dir)
    gr.Markdown(status_md)
    ref_state = gr.State(None)
    with gr.Row():
        with gr.Column():
            source_file = gr.File(label="Source image (PNG, JPEG or DICOM)", file_types=["image", ".dcm"],
                                  elem_id="ref-source-file")
            source = gr.Image(label="Source", interactive=False, type="pil", height=256, elem_id="ref-source")
            conditions = gr.Image(label="Its Sobel map + nodule mask", interactive=False, type="pil", height=256,
                                  elem_id="ref-conditions")
            with gr.Accordion("Nodule mask", open=True):
                drawing = gr.ImageEditor(type="numpy", label="Draw the outline on the source", height=300,
                                         elem_id="ref-draw")
                mask_file = gr.File(label="...or upload a mask PNG", file_types=["image"])
                with gr.Row():
                    use_mask = gr.Button("Use the drawn / uploaded mask", size="sm", elem_id="ref-use-mask")
                    seg_btn = gr.Button("Predict with the segmenter", size="sm", elem_id="ref-predict")
        with gr.Column():
            gr.Markdown("Features to keep or change ('unspecified' leaves them to the image):")
            form = chip_form("ref")
            strength = gr.Slider(0.05, 1.0, value=0.8, step=0.05,
                                 label="Strength (1 = start from noise; lower keeps more of the source)",
                                 elem_id="ref-strength")
    settings = gen_settings("ref", batch_max=4)
    with gr.Row():
        go = gr.Button("Generate variants", variant="primary", elem_id="ref-generate")
        halt = gr.Button("Stop", variant="stop", elem_id="ref-stop")
    status = gr.Markdown(elem_id="ref-status")
    preview = live_preview("ref")
    with gr.Row():
        side_source = gr.Image(label="Source", interactive=False, type="pil", height=256)
        outputs = gr.Gallery(label="Variants", columns=4, height=256, format="png", elem_id="ref-results",
                             object_fit="contain")
    results = gr.State([])

    for radio in form.radios:
        radio.change(texts_for, form.radios, [form.text_fg, form.text_bg, form.tirads], api_name=False,
                     show_progress="hidden")

    def on_upload(upload: Any) -> tuple:
        ref = load_reference(ctx, upload)
        src, overlay = preview_images(ref)
        return ref, src, overlay, src, {"background": np.asarray(src.convert("RGBA")), "layers": [],
                                        "composite": np.asarray(src.convert("RGBA"))}

    source_file.upload(friendly(on_upload), source_file, [ref_state, source, conditions, side_source, drawing],
                       api_name="reference_upload")

    def on_mask(ref: Any, upload: Any, draw: Any) -> tuple:
        new = set_mask(ref, upload, draw)
        return new, preview_images(new)[1]

    use_mask.click(friendly(on_mask), [ref_state, mask_file, drawing], [ref_state, conditions],
                   api_name="reference_mask")

    def on_predict(ref: Any) -> tuple:
        new = predict_mask(ref, ctx.model_dir)
        return new, preview_images(new)[1]

    seg_btn.click(friendly(on_predict), ref_state, [ref_state, conditions], api_name="reference_predict_mask")

    assert len(form.radios) == 11, "run() below names one parameter per FORM_GROUPS entry"

    def run(ref: Any, subtype: str, composition: str, echogenicity: str, echotexture: str, calcification: str,
            aspect: str, shape: str, margin: str, halo: str, size: str, plane: str, text_fg: str, text_bg: str,
            strength_v: float, seed: float, randomize: bool, batch: float, steps: float, guidance: float,
            fg_scale: float, bg_scale: float, encoders: str, sampler: str | None,
            request: gr.Request, progress: gr.Progress = gr.Progress()) -> Any:
        chip_values = [subtype, composition, echogenicity, echotexture, calcification, aspect, shape, margin,
                       halo, size, plane]
        require_model(ctx)
        req = reference_request(ref, chip_values, text_fg, text_bg, strength_v, seed, randomize, batch, steps,
                                guidance, fg_scale, bg_scale, encoders, sampler)
        for res, text, shown in stream_batch(ctx, req, request.session_hash or "anonymous", progress):
            yield gallery_value(res), text, results_state(res), shown

    event = go.click(friendly(run), [ref_state, *form.radios, form.text_fg, form.text_bg, strength,
                                     *settings.inputs()], [outputs, status, results, preview],
                     api_name="reference_generate", concurrency_limit=1, concurrency_id=GENERATE_QUEUE)

    def on_stop(request: gr.Request) -> str:
        return stop(request.session_hash or "anonymous")

    halt.click(on_stop, None, status, cancels=[event], api_name="reference_stop", queue=False)
