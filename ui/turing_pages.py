"""The "Turing test" tab of the main app and the reader app mounted at /study.

Login design: the main app stays open to researchers without an account (Synthesize,
Reference, Teach), so it gets no `auth` (`mount_kwargs` returns nothing). Physicians read in a
separate Gradio app at /study whose login (Gradio `auth=`) is checked against the study store
(argon2 hashes, wrong passwords rate-limited). The tab here explains the study and links to it.
The functions the buttons call are plain Python (`reader_view`, `submit_answer`) so they are
tested without a browser.
"""
from __future__ import annotations

import io
from typing import Any

import gradio as gr
from PIL import Image

from turing_test.errors import TuringError
from turing_test.storage import ReaderInfo, Store
from ui.context import AppContext

STUDY_PATH = "/study"
CHOICE_LABELS = ("A", "B", "C", "D")


def mount_kwargs(ctx: AppContext) -> dict:
    """The main app needs no login; readers log in at /study (see module docstring)."""
    return {}


def build(ctx: AppContext) -> None:
    """The main app's tab: what the Turing tests are and where to take them."""
    gr.Markdown(
        "## Physician Turing tests\n"
        f"Readers take the blinded tests in the **[reader app]({STUDY_PATH}/)** with the account the study "
        "admin gave them. Three protocols, as in the paper:\n"
        "1. **Real or synthetic**: one image; say which, with an optional confidence 1-5.\n"
        "2. **Description matching**: one description and four images; pick the one it describes "
        "(the three others are the most similar images, by perceptual hash, with other descriptions).\n"
        "3. **Feature checklist**: one image and its listed features; mark each present or absent.\n\n"
        "Your place is saved after every answer: close the browser any time and continue later. "
        "Admins see results on the **Results** tab. The first admin account is created with "
        "`python -m turing_test.cli create-admin NAME` (or TIGER_ADMIN_USER / TIGER_ADMIN_PASSWORD on first start)."
    )


# ---------------------------------------------------------------- plain functions (tested directly)
def _pil(store: Store, reader: ReaderInfo, token: str) -> Image.Image:
    return Image.open(io.BytesIO(store.image_png(reader, token)))


def study_choices(store: Store, reader: ReaderInfo) -> list[tuple[str, int]]:
    return [(f"{s['name']} ({s['answered']}/{s['total']} answered)", s["id"]) for s in store.studies_for(reader)]


def reader_view(store: Store, reader: ReaderInfo, study_id: int | None) -> dict[str, Any]:
    """Everything the reader page shows for the next unanswered question (or 'done')."""
    if study_id is None:
        return {"done": True, "message": "Choose a study."}
    item = store.next_item(reader, int(study_id))
    if item is None:
        return {"done": True, "message": "All questions of this study are answered. Thank you!"}
    view = {"done": False, "item": item,
            "progress": f"Question {item['answered'] + 1} of {item['total']} - protocol {item['protocol']}: "
                        f"{item['protocol_name']}"}
    if item["protocol"] == 2:
        view["options"] = [_pil(store, reader, t) for t in item["options"]]
    else:
        view["image"] = _pil(store, reader, item["image"])
    return view


def payload_from_inputs(item: dict, answer: str | None, confidence: str | None, choice: str | None,
                        present: list[str] | None) -> dict:
    """Turn the widgets' values into the protocol's payload (validation happens in the store)."""
    if item["protocol"] == 1:
        payload: dict = {"answer": (answer or "").lower()}
        if confidence:
            payload["confidence"] = int(confidence)
        return payload
    if item["protocol"] == 2:
        if choice not in CHOICE_LABELS:
            return {"choice": None}
        return {"choice": item["options"][CHOICE_LABELS.index(choice)]}
    marked = set(present or [])
    return {"features": {f["group"]: f["label"] in marked for f in item.get("features", [])}}


def submit_answer(store: Store, reader: ReaderInfo, item: dict, **inputs) -> dict:
    return store.submit(reader, item["study_id"], item["item_id"], payload_from_inputs(item, **inputs))


# ---------------------------------------------------------------- the reader app
def _reader(ctx: AppContext, request: gr.Request) -> ReaderInfo:
    return ctx.store().reader_by_username(getattr(request, "username", None))


def build_reader_blocks(ctx: AppContext) -> gr.Blocks:
    with gr.Blocks(title="Tiger Studio - reader study", analytics_enabled=False) as demo:
        gr.Markdown("# Reader study\nAnswer each question; your place is saved after every answer.")
        item_state = gr.State(None)
        study = gr.Dropdown(label="Study", choices=[], interactive=True)
        progress = gr.Markdown()
        message = gr.Markdown()
        with gr.Group(visible=False) as p1:
            p1_image = gr.Image(label="Image", type="pil", format="png", interactive=False, height=360)
            p1_answer = gr.Radio(["Real", "Synthetic"], label="This image is")
            p1_conf = gr.Radio(["1", "2", "3", "4", "5"], label="Confidence (optional, 5 = certain)")
        with gr.Group(visible=False) as p2:
            p2_desc = gr.Markdown()
            with gr.Row():
                p2_images = [gr.Image(label=lab, type="pil", format="png", interactive=False, height=220)
                             for lab in CHOICE_LABELS]
            p2_choice = gr.Radio(list(CHOICE_LABELS), label="Which image matches the description?")
        with gr.Group(visible=False) as p3:
            p3_image = gr.Image(label="Image", type="pil", format="png", interactive=False, height=360)
            p3_checks = gr.CheckboxGroup([], label="Tick every feature you see (unticked = absent)")
        submit = gr.Button("Submit answer", variant="primary", visible=False)

        outputs = [item_state, progress, message, p1, p1_image, p1_answer, p1_conf, p2, p2_desc, *p2_images,
                   p2_choice, p3, p3_image, p3_checks, submit]

        def render(study_id, note: str, request: gr.Request):
            try:
                view = reader_view(ctx.store(), _reader(ctx, request), study_id)
            except TuringError as exc:
                view = {"done": True, "message": str(exc)}
            item = view.get("item")
            proto = item["protocol"] if item else 0
            opts = view.get("options", [None] * 4)
            return [item, view.get("progress", ""), note or view.get("message", ""),
                    gr.update(visible=proto == 1), view.get("image") if proto == 1 else None, None, None,
                    gr.update(visible=proto == 2), f"**Description:** {item['description']}" if proto == 2 else "",
                    *opts, None,
                    gr.update(visible=proto == 3), view.get("image") if proto == 3 else None,
                    gr.update(choices=[f["label"] for f in item["features"]] if proto == 3 else [], value=[]),
                    gr.update(visible=item is not None)]

        def on_load(request: gr.Request):
            try:
                choices = study_choices(ctx.store(), _reader(ctx, request))
            except TuringError as exc:
                return [gr.update(choices=[], value=None)] + render(None, str(exc), request)
            first = choices[0][1] if choices else None
            note = "" if choices else "You are not enrolled in any study yet."
            return [gr.update(choices=choices, value=first)] + render(first, note, request)

        def on_submit(item, study_id, answer, conf, choice, present, request: gr.Request):
            if item is None:
                return render(study_id, "", request)
            try:
                submit_answer(ctx.store(), _reader(ctx, request), item, answer=answer, confidence=conf,
                              choice=choice, present=present)
            except TuringError as exc:
                out = render(study_id, f"**Not saved:** {exc}", request)
                return out
            return render(study_id, "Saved.", request)

        demo.load(on_load, None, [study] + outputs)
        def on_pick(study_id, request: gr.Request):
            return render(study_id, "", request)

        study.input(on_pick, [study], outputs)
        submit.click(on_submit, [item_state, study, p1_answer, p1_conf, p2_choice, p3_checks], outputs)
    return demo


def mount_reader_app(app, ctx: AppContext) -> None:
    """Mount the reader app at /study with a login checked against the study store."""

    def check(username: str, password: str) -> bool:
        try:
            ctx.store().authenticate(username, password)  # keyed by user: one IP is shared by all
            return True
        except TuringError:
            return False

    gr.mount_gradio_app(app, build_reader_blocks(ctx), path=STUDY_PATH, auth=check,
                        auth_message="Reader study: log in with the account your study admin gave you.")
