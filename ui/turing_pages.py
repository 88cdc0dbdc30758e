"""The "Turing test" tab of the main app and the reader app mounted at /study.

Login design: on localhost the main app stays open to researchers without an account
(Synthesize, Reference, Teach), so it gets no `auth` unless `ctx.require_login` is set
(`mount_kwargs`; app.py sets it when serving beyond localhost). Physicians read in a
separate Gradio app at /study whose login (Gradio `auth=`) is checked against the study store
(argon2 hashes, wrong passwords rate-limited). The tab here explains the study and links to it.
The functions the buttons call are plain Python (`reader_view`, `submit_answer`, `review_options`,
`review_view`, `submit_edit`) so they are tested without a browser.

Reviewing answers: in a study that allows edits, the reader page lists the reader's answered
questions ("Review my answers"); opening one shows it in the same answer widgets with the stored
answer filled in, and saving stores a new revision (the store keeps the old one in history), then
the page goes back to the first unanswered question. In other studies the page says answers are
final.
"""
from __future__ import annotations

import io
import time
from typing import Any

import gradio as gr
from PIL import Image

from turing_test.errors import PermissionDenied, TuringError
from turing_test.storage import ReaderInfo, Store
from ui.context import AppContext
from ui.errors import friendly
from ui.file_inputs import accept_uploaded_files_only
from ui.request_limits import CLIENT_ADDRESS

STUDY_PATH = "/study"
CHOICE_LABELS = ("A", "B", "C", "D")
P1_LABELS = ("Real", "Synthetic")
FINAL_NOTE = "Answers in this study are final once submitted; they cannot be reviewed or changed."


def store_login(ctx: AppContext):
    """A Gradio `auth` function checked against the study store, keyed by (name, client address).

    Async so that argon2 runs in a worker thread, not on the event loop; the client address
    comes from `ui.request_limits.CLIENT_ADDRESS` (Gradio passes only name and password).
    """
    import anyio

    def check(username: str, password: str) -> bool:
        try:
            ctx.store().authenticate(username, password, client=CLIENT_ADDRESS.get())
            return True
        except TuringError:
            return False

    async def auth(username: str, password: str) -> bool:
        return await anyio.to_thread.run_sync(check, username, password)

    return auth


def mount_kwargs(ctx: AppContext) -> dict:
    """The main app needs no login on localhost; readers log in at /study (see module docstring).

    With `ctx.require_login` (TIGER_REQUIRE_LOGIN=1, or app.py serving beyond localhost) the
    main app asks for a study account too, checked like the reader login.
    """
    if not ctx.require_login:
        return {}
    return {"auth": store_login(ctx), "auth_message": "Tiger Studio: log in with your study account."}


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
        "Where a study allows it, *Review my answers* opens an earlier answer to change it (the old "
        "version is kept). "
        "Admins see results on the **Results** tab. The first admin account is created with "
        "`python -m turing_test.cli create-admin NAME` (or TIGER_ADMIN_USER / TIGER_ADMIN_PASSWORD on first start)."
    )


# ---------------------------------------------------------------- plain functions (tested directly)
def _pil(store: Store, reader: ReaderInfo, token: str) -> Image.Image:
    return Image.open(io.BytesIO(store.image_png(reader, token)))


def study_choices(store: Store, reader: ReaderInfo) -> list[tuple[str, int]]:
    return [(f"{s['name']} ({s['answered']}/{s['total']} answered)", s["id"]) for s in store.studies_for(reader)]


def _item_page(store: Store, reader: ReaderInfo, item: dict, progress: str) -> dict[str, Any]:
    """A page view of one item with its images loaded for this reader (new and reviewed questions alike)."""
    view = {"done": False, "item": item, "progress": progress}
    if item["protocol"] == 2:
        view["options"] = [_pil(store, reader, t) for t in item["options"]]
    else:
        view["image"] = _pil(store, reader, item["image"])
    return view


def reader_view(store: Store, reader: ReaderInfo, study_id: int | None) -> dict[str, Any]:
    """Everything the reader page shows for the next unanswered question (or 'done')."""
    if study_id is None:
        return {"done": True, "message": "Choose a study."}
    item = store.next_item(reader, int(study_id))
    if item is None:
        return {"done": True, "message": "All questions of this study are answered. Thank you!"}
    return _item_page(store, reader, item, f"Question {item['answered'] + 1} of {item['total']} - protocol "
                                           f"{item['protocol']}: {item['protocol_name']}")


def is_review(item: dict | None) -> bool:
    """Whether the page shows an earlier answered question (item views from `item_for` carry my_answer)."""
    return item is not None and "my_answer" in item


def review_options(store: Store, reader: ReaderInfo, study_id: int | None) -> dict[str, Any]:
    """What the "Review my answers" section shows for this study.

    {"allow_edits", "choices": [(label, item id)] of the reader's answered questions in study
    order, "note"}: the choices only where the study allows edits, else the note that answers
    are final (so the page never offers an edit the store would refuse).
    """
    if study_id is None:
        return {"allow_edits": False, "choices": [], "note": ""}
    allowed = any(st["id"] == int(study_id) and st["allow_edits"] for st in store.studies_for(reader))
    if not allowed:
        return {"allow_edits": False, "choices": [], "note": FINAL_NOTE}
    choices = []
    for row in store.answered_items(reader, int(study_id)):
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["answered_at"]))
        changed = f", changed {row['revision']}x" if row["revision"] else ""
        choices.append((f"Question {row['number']} - {row['protocol_name']} (answered {when}{changed})",
                        row["item_id"]))
    return {"allow_edits": True, "choices": choices, "note": ""}


def inputs_from_payload(item: dict, payload: dict) -> dict:
    """The widget values that show a stored answer (the inverse of `payload_from_inputs`)."""
    inputs: dict = {"answer": None, "confidence": None, "choice": None, "present": []}
    if item["protocol"] == 1:
        inputs["answer"] = next((lab for lab in P1_LABELS if lab.lower() == payload.get("answer")), None)
        if payload.get("confidence") is not None:
            inputs["confidence"] = str(payload["confidence"])
    elif item["protocol"] == 2:
        if payload.get("choice") in item["options"]:
            inputs["choice"] = CHOICE_LABELS[item["options"].index(payload["choice"])]
    else:
        marks = payload.get("features", {})
        inputs["present"] = [f["label"] for f in item.get("features", []) if marks.get(f["group"])]
    return inputs


def review_view(store: Store, reader: ReaderInfo, study_id: int | None, item_id: int | None) -> dict[str, Any]:
    """An earlier answered question with the reader's current answer as widget values ("inputs").

    Refused (TuringError with the reason) when nothing is chosen, the study does not allow
    edits, or the question is not answered yet (unanswered ones come in their turn).
    """
    if study_id is None or item_id is None:
        raise TuringError("choose one of your answered questions first")
    if not review_options(store, reader, study_id)["allow_edits"]:
        raise PermissionDenied(FINAL_NOTE)
    item = store.item_for(reader, int(study_id), int(item_id))
    if item["my_answer"] is None:
        raise TuringError("this question is not answered yet; it comes in its turn")
    view = _item_page(store, reader, item, f"Reviewing question {item['position'] + 1} of {item['total']} - "
                                           f"protocol {item['protocol']}: {item['protocol_name']}. Change your "
                                           "answer and save it, or go back to the study.")
    view["inputs"] = inputs_from_payload(item, item["my_answer"])
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


def submit_edit(store: Store, reader: ReaderInfo, item: dict, **inputs) -> dict:
    """Save a reviewed answer as a new revision; an unchanged answer stores nothing.

    Why skip unchanged ones: opening and saving without a change is not a new opinion, and a
    revision for it would look like one in the history. The store keeps every real change's
    old version.
    """
    if payload_from_inputs(item, **inputs) == item.get("my_answer"):
        return {"item_id": item["item_id"], "stored": False}
    return submit_answer(store, reader, item, **inputs)


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
            p1_answer = gr.Radio(list(P1_LABELS), label="This image is")
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
        back = gr.Button("Back to the study (keep my saved answer)", visible=False)
        with gr.Accordion("Review my answers", open=False, visible=False) as review_box:
            review_pick = gr.Dropdown(label="Answered questions", choices=[], value=None, interactive=True)
            review_open = gr.Button("Open")
        review_note = gr.Markdown(visible=False)

        outputs = [item_state, progress, message, p1, p1_image, p1_answer, p1_conf, p2, p2_desc, *p2_images,
                   p2_choice, p3, p3_image, p3_checks, submit, back, review_box, review_pick, review_note]

        def show(view: dict, note: str, review: dict) -> list:
            """The outputs for a page view; a reviewed item comes with its stored answer filled in."""
            item = view.get("item")
            proto = item["protocol"] if item else 0
            opts = view.get("options", [None] * 4)
            inputs = view.get("inputs", {})
            editing = is_review(item)
            return [item, view.get("progress", ""), note or view.get("message", ""),
                    gr.update(visible=proto == 1), view.get("image") if proto == 1 else None,
                    inputs.get("answer"), inputs.get("confidence"),
                    gr.update(visible=proto == 2), f"**Description:** {item['description']}" if proto == 2 else "",
                    *opts, inputs.get("choice"),
                    gr.update(visible=proto == 3), view.get("image") if proto == 3 else None,
                    gr.update(choices=[f["label"] for f in item["features"]] if proto == 3 else [],
                              value=inputs.get("present", [])),
                    gr.update(visible=item is not None, value="Save changed answer" if editing else "Submit answer"),
                    gr.update(visible=editing),
                    gr.update(visible=review["allow_edits"]), gr.update(choices=review["choices"], value=None),
                    gr.update(visible=bool(review["note"]), value=review["note"])]

        def render(study_id, note: str, request: gr.Request):
            try:
                store, who = ctx.store(), _reader(ctx, request)
                view, review = reader_view(store, who, study_id), review_options(store, who, study_id)
            except TuringError as exc:
                view, review = {"done": True, "message": str(exc)}, {"allow_edits": False, "choices": [], "note": ""}
            return show(view, note, review)

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
            inputs = {"answer": answer, "confidence": conf, "choice": choice, "present": present}
            if is_review(item):
                # a refused edit raises (gr.Error through `friendly`): the page keeps the changed inputs
                saved = submit_edit(ctx.store(), _reader(ctx, request), item, **inputs)
                number = item["position"] + 1
                note = (f"Saved your changed answer to question {number} (revision {saved['revision']})."
                        if saved["stored"] else f"Your answer to question {number} is unchanged; nothing saved.")
                return render(study_id, note, request)
            try:
                submit_answer(ctx.store(), _reader(ctx, request), item, **inputs)
            except TuringError as exc:
                out = render(study_id, f"**Not saved:** {exc}", request)
                return out
            return render(study_id, "Saved.", request)

        def on_open(study_id, item_id, request: gr.Request):
            store, who = ctx.store(), _reader(ctx, request)
            return show(review_view(store, who, study_id, item_id), "", review_options(store, who, study_id))

        def on_pick(study_id, request: gr.Request):
            return render(study_id, "", request)

        demo.load(on_load, None, [study] + outputs)
        study.input(on_pick, [study], outputs)
        submit.click(friendly(on_submit), [item_state, study, p1_answer, p1_conf, p2_choice, p3_checks], outputs)
        back.click(on_pick, [study], outputs)
        review_open.click(friendly(on_open), [study, review_pick], outputs)
    return demo


def mount_reader_app(app, ctx: AppContext) -> None:
    """Mount the reader app at /study with a login checked against the study store."""

    gr.mount_gradio_app(app, accept_uploaded_files_only(build_reader_blocks(ctx)), path=STUDY_PATH,
                        auth=store_login(ctx),
                        auth_message="Reader study: log in with the account your study admin gave you.")
