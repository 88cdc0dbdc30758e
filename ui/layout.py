"""The page frame: one tab per page, each built by its own module's `build(ctx)`."""
from __future__ import annotations

import importlib

import gradio as gr

from ui.context import AppContext

# (tab label, module under ui/); a page module exposes build(ctx) and is optional while developed
PAGES = [
    ("Synthesize", "ui.synthesize"),
    ("Reference", "ui.reference"),
    ("Teach", "ui.teach"),
    ("Turing test", "ui.turing_pages"),
    ("Results", "ui.results_page"),
]


def build_blocks(ctx: AppContext) -> gr.Blocks:
    with gr.Blocks(title="Tiger Studio", analytics_enabled=False) as demo:
        gr.Markdown("# Tiger Studio\nText-guided thyroid ultrasound synthesis for rare subtypes "
                    "(Tiger Model, Dai, Yao et al., Nat. Commun. 2025).")
        with gr.Tabs():
            for label, module_name in PAGES:
                with gr.Tab(label, id=label.lower().replace(" ", "-")):
                    try:
                        module = importlib.import_module(module_name)
                    except ModuleNotFoundError as exc:
                        if exc.name != module_name:
                            raise
                        gr.Markdown(f"*{label}: not available in this build.*")
                        continue
                    module.build(ctx)
    return demo
