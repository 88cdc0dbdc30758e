"""The Teach page: how one feature looks, value by value, and how the four subtypes differ.

Everything that varies in a row is the one chip being taught: the seed, the background and
the mask placement rule stay fixed, so the differences a student sees come from that feature
alone. The pipeline places the nodule from the size/location chips (same seed, same place).
Under each image its measured inside/ring grey ratio, bright foci and edge sharpness are shown,
so the row says whether the image changed, not only the prompt.
"""
from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from tiger import knowledge as kb
from tiger import measures
from tiger.pngmeta import b64png_to_array
from ui import backgrounds as bgs
from ui import chips as chipform
from ui import generate as gen
from ui.context import AppContext
from ui.errors import friendly
from ui.jobs import GENERATE_QUEUE, require_model, stop, stream_batch
from ui.montage import labelled_row
from ui.widgets import live_preview

TEACH_GROUPS: tuple[str, ...] = tuple(g for g in chipform.FORM_GROUPS if g != "subtype") + ("location",)
GRID_SUBTYPES: tuple[str, ...] = ("benign", "papillary", "follicular", "medullary")
SUBTYPE_LABELS = {"benign": "Benign", "papillary": "PTC", "follicular": "FTC", "medullary": "MTC"}


class TeachError(ValueError):
    """A teaching request that cannot be made (unknown group, no background)."""


def row_chips(base: str, group: str) -> list[tuple[str, dict[str, str]]]:
    """(value, chips) for every value of `group`, the rest of the base profile unchanged."""
    if group not in TEACH_GROUPS:
        raise TeachError(f"Choose a feature group to teach: {', '.join(TEACH_GROUPS)}.")
    profile = chipform.preset_chips(base)
    return [(value, kb.validate_chips({**profile, group: value})) for value in kb.GROUPS[group]]


def grid_chips() -> list[tuple[str, dict[str, str]]]:
    return [(SUBTYPE_LABELS[s], chipform.preset_chips(s)) for s in GRID_SUBTYPES]


def _request(chips: dict[str, str], background_id: str | None, seed: int, steps: int,
             guidance: float, sampler: str = gen.DEFAULT_SAMPLER) -> gen.GenerationRequest:
    fg, bg = kb.build_prompts(chips)
    return gen.check_request(gen.GenerationRequest(
        chips=chips, text_fg=fg, text_bg=bg, background_id=background_id or None, seeds=[int(seed)],
        num_inference_steps=steps, guidance_scale=guidance, mask_auto=True, mode="teach", scheduler=sampler))


def measured_caption(label: str, result: gen.Result) -> str:
    """`label` with what the image shows inside its placed mask: the inside/ring grey ratio
    (below 1 = darker than around it), bright foci and edge sharpness (tiger.measures), so a
    teacher sees whether the chip changed the nodule, not only the prompt."""
    mask_b64 = result.record.get("mask")
    if not mask_b64:
        return label
    mask = b64png_to_array(mask_b64) > 127
    img = np.asarray(Image.open(result.path).convert("L"))
    if mask.shape != img.shape:
        return label
    ratio = measures.grey_ratio(img, mask)
    sharp = measures.edge_sharpness(img, mask)
    parts = [f"ratio {ratio:.2f}" if ratio is not None else "ratio n/a", f"foci {measures.bright_foci(img, mask)}",
             f"edge {sharp:.2f}" if sharp is not None else "edge n/a"]
    return f"{label}\n" + " · ".join(parts)


def run_series(ctx: AppContext, series: list[tuple[str, dict[str, str]]], background_id: str | None,
               seed: Any, steps: Any, guidance: Any, session: str, title: str,
               notes: list[str] | None = None, progress: Any = None) -> Any:
    """Generate one image per (label, chips) with the same seed/background; yield as they come.

    Yields (gallery items, status, composite PNG path or None, live preview or None); the
    composite is made at the end.
    """
    require_model(ctx)
    seed = gen.make_seeds(seed, False, 1)[0]
    if not background_id:   # one background for the whole row: the bank's pick for this seed
        try:
            background_id = bgs.open_bank(ctx.model_dir).pick(seed=seed)
        except ValueError as exc:
            raise TeachError(f"Teaching rows need a background from the model's bank: {exc}") from exc
    done: list[tuple[str, gen.Result]] = []
    for k, (label, chips) in enumerate(series):
        req = _request(chips, background_id, seed, steps, guidance)
        shown = None
        for results, text, shown in stream_batch(ctx, req, session, progress):
            if results:
                done.append((measured_caption(label, results[-1]), results[-1]))
            elif shown is not None:
                yield [(str(r.path), lab) for lab, r in done], f"{label}: {text}", None, shown
        if len(done) <= k:   # stopped
            break
        yield [(str(r.path), lab) for lab, r in done], f"{len(done)}/{len(series)}: {label}", None, shown
    if len(done) < len(series):
        yield [(str(r.path), lab) for lab, r in done], f"Stopped after {len(done)} of {len(series)}.", None, None
        return
    images = [Image.open(r.path) for _, r in done]
    labels = [lab.split("\n")[0] for lab, _ in done]
    measured = [lab.split("\n", 1)[1] if "\n" in lab else "" for lab, _ in done]
    sheet = labelled_row(images, labels, title=title,
                         notes=[f"{m}. {n}" if n else m for m, n in zip(measured, notes or [""] * len(done))])
    out = gen.new_output_dir() / "tiger_teaching.png"
    sheet.save(out)
    yield [(str(r.path), lab) for lab, r in done], f"Done: {len(done)} images, seed {seed}.", str(out), None


def subtype_notes() -> list[str]:
    notes = []
    for s in GRID_SUBTYPES:
        p = chipform.preset_chips(s)
        notes.append(", ".join(v for g, v in p.items() if g not in ("malignancy", "subtype")))
    return notes


def build(ctx: AppContext) -> None:
    present, status_md = bgs.model_status(ctx.model_dir)
    gr.Markdown(status_md)
    ids: list[str] = []
    if present:
        try:
            ids = [r["id"] for r in bgs.bank_rows(bgs.open_bank(ctx.model_dir))]
        except ValueError:
            ids = []
    with gr.Row():
        base = gr.Dropdown(list(chipform.PRESETS), value="Typical PTC", label="Base case", elem_id="teach-base")
        group = gr.Dropdown(list(TEACH_GROUPS), value="echogenicity", label="Feature group to teach",
                            elem_id="teach-group")
        background = gr.Dropdown(ids, value=ids[0] if ids else None, label="Background (same for every image)",
                                 elem_id="teach-background", allow_custom_value=False)
    with gr.Row():
        seed = gr.Number(value=0, precision=0, minimum=0, label="Seed (same for every image)")
        steps = gr.Slider(1, 100, value=gen.DEFAULT_STEPS, step=1, label="Steps", elem_id="teach-steps")
        guidance = gr.Slider(*gen.GUIDANCE_RANGE, value=3.0, step=0.5, label="Guidance")
    with gr.Row():
        row_btn = gr.Button("Generate the feature row", variant="primary", elem_id="teach-row")
        grid_btn = gr.Button("Subtype comparison (benign / PTC / FTC / MTC)", elem_id="teach-grid")
        halt = gr.Button("Stop", variant="stop", elem_id="teach-stop")
    with gr.Accordion("Typical features of each subtype", open=False):
        gr.Markdown("\n\n".join(chipform.typical_features_markdown(s) for s in GRID_SUBTYPES))
    status = gr.Markdown(elem_id="teach-status")
    preview = live_preview("teach")
    gallery = gr.Gallery(label="Row", columns=5, height=260, elem_id="teach-gallery", format="png",
                         object_fit="contain")
    sheet = gr.File(label="Export: one PNG for slides", elem_id="teach-sheet")

    def feature_row(base_name: str, group_name: str, background_id: str | None, seed_v: float, steps_v: float,
                    guidance_v: float, request: gr.Request, progress: gr.Progress = gr.Progress()) -> Any:
        series = row_chips(base_name, group_name)
        title = f"{group_name.capitalize()} on a {base_name.replace('Typical ', '')} base case"
        yield from run_series(ctx, series, background_id, seed_v, steps_v, guidance_v,
                              request.session_hash or "anonymous", title, progress=progress)

    def subtype_grid(background_id: str | None, seed_v: float, steps_v: float, guidance_v: float,
                     request: gr.Request, progress: gr.Progress = gr.Progress()) -> Any:
        yield from run_series(ctx, grid_chips(), background_id, seed_v, steps_v, guidance_v,
                              request.session_hash or "anonymous", "Subtypes with their typical features",
                              notes=subtype_notes(), progress=progress)

    row_event = row_btn.click(friendly(feature_row), [base, group, background, seed, steps, guidance],
                              [gallery, status, sheet, preview], api_name="teach_row", concurrency_limit=1,
                              concurrency_id=GENERATE_QUEUE)
    grid_event = grid_btn.click(friendly(subtype_grid), [background, seed, steps, guidance], [gallery, status, sheet, preview],
                                api_name="teach_grid", concurrency_limit=1, concurrency_id=GENERATE_QUEUE)

    def on_stop(request: gr.Request) -> str:
        # the flag ends the image being denoised; `cancels` ends the row between images
        return stop(request.session_hash or "anonymous")

    halt.click(on_stop, None, status, cancels=[row_event, grid_event], api_name="teach_stop", queue=False)

