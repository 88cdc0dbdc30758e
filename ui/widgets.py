"""Component groups shared by the Synthesize, Reference and Teach pages.

Each builder only lays out components and returns them; the event wiring stays in the page,
so a page reads top to bottom as "what is on screen, then what each control does".
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from tiger.samplers import DEFAULT_SAMPLER, DEFAULT_STEPS, SAMPLERS

from ui import chips as chipform
from ui import generate as gen


@dataclass
class ChipForm:
    radios: list[gr.Radio]
    text_fg: gr.Textbox
    text_bg: gr.Textbox
    tirads: gr.Markdown


def chip_form(prefix: str, groups: tuple[str, ...] = chipform.FORM_GROUPS, texts: bool = True) -> ChipForm:
    """One radio row per feature group plus the live FG/BG texts and TI-RADS line."""
    radios = []
    for start in range(0, len(groups), 2):   # two groups per row keeps the page short
        with gr.Row(equal_height=False):
            radios += [gr.Radio(chipform.choices(g), value=chipform.UNSET, label=g.capitalize(),
                                elem_id=f"{prefix}-chip-{g}", elem_classes=["tiger-chip"])
                       for g in groups[start:start + 2]]
    tirads = gr.Markdown(elem_id=f"{prefix}-tirads")
    text_fg = gr.Textbox(label="FG text (nodule) - editable; a chip change rewrites it",
                         elem_id=f"{prefix}-text-fg", lines=2, visible=texts)
    text_bg = gr.Textbox(label="BG text (plane, image) - editable", elem_id=f"{prefix}-text-bg",
                         visible=texts)
    return ChipForm(radios, text_fg, text_bg, tirads)


@dataclass
class GenSettings:
    seed: gr.Number
    randomize: gr.Checkbox
    batch: gr.Slider
    steps: gr.Slider
    guidance: gr.Slider
    fg_scale: gr.Slider
    bg_scale: gr.Slider
    encoders: gr.Radio
    sampler: gr.Dropdown

    def inputs(self) -> list[gr.components.Component]:
        """In the order of the run functions' parameters (sampler last: older API calls omit it)."""
        return [self.seed, self.randomize, self.batch, self.steps, self.guidance,
                self.fg_scale, self.bg_scale, self.encoders, self.sampler]


def live_preview(prefix: str) -> gr.Image:
    """The live preview: the predicted clean image every few steps while a run denoises."""
    return gr.Image(label="Live preview (predicted image while denoising)", interactive=False, type="pil",
                    height=200, elem_id=f"{prefix}-preview", format="png")


def gen_settings(prefix: str, batch_max: int = 8, steps: int = DEFAULT_STEPS) -> GenSettings:
    """Seed (with a random toggle), batch size, sampler and steps, guidance, FG/BG scales, encoders."""
    with gr.Row():
        seed = gr.Number(value=0, precision=0, minimum=0, maximum=gen.MAX_SEED, label="Seed",
                         elem_id=f"{prefix}-seed")
        randomize = gr.Checkbox(value=False, label="Random seed (each image's seed is recorded)",
                                elem_id=f"{prefix}-random")
        batch = gr.Slider(1, batch_max, value=1, step=1, label="Batch size", elem_id=f"{prefix}-batch")
    with gr.Row():
        sampler = gr.Dropdown(list(SAMPLERS), value=DEFAULT_SAMPLER, label="Sampler",
                              info="DPM++ 2M / UniPC reach DDIM's quality in fewer steps (model card)",
                              elem_id=f"{prefix}-sampler")
        steps_s = gr.Slider(gen.STEPS_RANGE[0], 100, value=steps, step=1, label="Steps",
                            elem_id=f"{prefix}-steps")
        guidance = gr.Slider(*gen.GUIDANCE_RANGE, value=3.0, step=0.5, label="Guidance (CFG)",
                             elem_id=f"{prefix}-guidance")
    with gr.Row():
        fg_scale = gr.Slider(*gen.SCALE_RANGE, value=1.0, step=0.05, label="FG conditioning scale")
        bg_scale = gr.Slider(*gen.SCALE_RANGE, value=1.0, step=0.05, label="BG conditioning scale")
        encoders = gr.Radio(list(gen.ENCODERS[:3]), value="both", label="Encoders used",
                            elem_id=f"{prefix}-encoders")
    return GenSettings(seed, randomize, batch, steps_s, guidance, fg_scale, bg_scale, encoders, sampler)
