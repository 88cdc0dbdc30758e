"""The "Results" tab: study results and study administration, for admins only.

The main app has no login (researchers use it without accounts), so this tab has its own
in-page login: the admin's credentials are checked against the store (argon2, rate-limited) and
a server-side session token is kept in the page's State; every button re-checks it, so a
deactivated admin loses access at once. Buttons call plain functions (`load_results`,
`admin_*`), tested without a browser.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from turing_test import manifest as mf
from turing_test.errors import TuringError
from turing_test.export import export_study, summary_rows
from turing_test.stats import summarize
from turing_test.storage import ReaderInfo, Store
from ui.context import AppContext

SUMMARY_COLUMNS = ["protocol", "table", "group", "n", "k", "accuracy", "ci_low", "ci_high"]


def _admin(store: Store, token: str | None) -> ReaderInfo:
    who = store.reader_for_token(token)
    store.require_admin(who)
    return who


def admin_login(store: Store, username: str, password: str, client: str = "") -> str:
    """A session token for an admin; non-admins are refused (and their session closed).

    client: the browser's address, so wrong passwords count per (name, address) as on the API.
    """
    token, who = store.login(username, password, client=client)
    if not who.is_admin:
        store.logout(token)
        store.require_admin(who)
    return token


def load_results(store: Store, token: str, study_id: int, out_dir: str | Path) -> dict:
    """Summary, flattened table rows, kappa text and exported files of one study."""
    rows = store.answer_rows(_admin(store, token), int(study_id))
    summary = summarize(rows)
    paths = export_study(rows, summary, out_dir)
    lines = [f"**{summary['n_answers']} answers.**"]
    for proto, block in summary["protocols"].items():
        o = block["overall"]
        lines.append(f"- Protocol {proto}: accuracy {o['accuracy']:.3f} (95% CI {o['ci_low']:.3f}-{o['ci_high']:.3f}, "
                     f"n={o['n']}); median time per case {block['time_per_case_s']['median']:.1f} s")
        if "synthetic_judged_real_by_method" in block:
            shares = ", ".join(f"{m}: {v['share_judged_real']:.2f}" for m, v in block["synthetic_judged_real_by_method"].items())
            lines.append(f"  - synthetic judged real (authenticity): {shares}")
        if "inter_reader" in block:
            ir = block["inter_reader"]
            fk = "n/a" if ir["fleiss_kappa"] is None else f"{ir['fleiss_kappa']:.3f}"
            pairs = ", ".join(f"{p['reader_a']}-{p['reader_b']}: "
                              + ("n/a" if p["cohen_kappa"] is None else f"{p['cohen_kappa']:.3f}")
                              for p in ir["cohen_pairs"])
            lines.append(f"  - Fleiss' kappa {fk}; Cohen's kappa per pair: {pairs or 'n/a'}")
    table = [[r[c] for c in SUMMARY_COLUMNS] for r in summary_rows(summary)]
    return {"markdown": "\n".join(lines), "table": table, "paths": paths}


def admin_create_reader(store: Store, token: str, username: str, password: str, role: str, years) -> str:
    _admin(store, token)
    who = store.create_reader(username, password, role=role, years_experience=years or 0)
    return f"Created {who.role} reader {who.username!r}."


def admin_set_active(store: Store, token: str, username: str, active: bool) -> str:
    _admin(store, token)
    store.set_reader_active(username, active)
    return f"{username!r} is now {'active' if active else 'deactivated'}."


def admin_create_study(store: Store, token: str, name: str, manifest: str, real_folder: str, protocols: list[str],
                       seed, allow_edits: bool, readers: str, cases_per_reader=None) -> str:
    _admin(store, token)
    specs = []
    if manifest and manifest.strip():
        specs += mf.load_manifest(manifest.strip())
    if real_folder and real_folder.strip():
        specs += mf.cases_from_folder(real_folder.strip(), truth="real", method="real")
    design = {"cases_per_reader": int(cases_per_reader)} if cases_per_reader else {}
    study_id = store.create_study(name, specs, protocols=sorted(int(p) for p in protocols), design=design,
                                  seed=int(seed or 0), allow_edits=bool(allow_edits),
                                  readers=[r.strip() for r in (readers or "").split(",") if r.strip()])
    return f"Created study {name!r} (id {study_id}) with {len(specs)} cases."


def build(ctx: AppContext) -> None:
    token = gr.State(None)
    gr.Markdown("## Results (admins only)\nLog in with an admin account to see and export study results.")
    with gr.Row():
        user = gr.Textbox(label="Admin user name")
        password = gr.Textbox(label="Password", type="password")
        login = gr.Button("Log in")
    status = gr.Markdown()
    with gr.Group(visible=False) as panel:
        with gr.Row():
            study = gr.Dropdown(label="Study", choices=[])
            show = gr.Button("Show results", variant="primary")
        summary_md = gr.Markdown()
        table = gr.Dataframe(headers=SUMMARY_COLUMNS, label="Summary tables (95% Wilson CIs)", interactive=False)
        with gr.Row():
            acc_plot = gr.Image(label="Accuracy by method", type="filepath", interactive=False)
            reader_plot = gr.Image(label="Readers", type="filepath", interactive=False)
        files = gr.File(label="Exports (CSV / JSON / PNG)", file_count="multiple", interactive=False)
        with gr.Accordion("Readers", open=False):
            with gr.Row():
                r_user = gr.Textbox(label="User name")
                r_pass = gr.Textbox(label="Password (8+ characters)", type="password")
                r_role = gr.Radio(["junior", "senior", "admin"], value="junior", label="Role")
                r_years = gr.Number(label="Years of experience", value=0)
            with gr.Row():
                r_create = gr.Button("Create reader")
                r_deact = gr.Button("Deactivate reader")
        with gr.Accordion("New study", open=False):
            s_name = gr.Textbox(label="Study name")
            s_manifest = gr.Textbox(label="Manifest on the server (CSV/JSON/JSONL; a Synthesize batch manifest works)")
            s_real = gr.Textbox(label="Folder of real images (optional)")
            with gr.Row():
                s_protocols = gr.CheckboxGroup(["1", "2", "3"], value=["1", "2", "3"], label="Protocols")
                s_seed = gr.Number(label="Seed", value=0, precision=0)
                s_cases = gr.Number(label="Cases per reader per protocol (empty = all)", precision=0)
                s_edits = gr.Checkbox(label="Readers may edit answers (history kept)")
            s_readers = gr.Textbox(label="Enroll readers (comma-separated user names)")
            s_create = gr.Button("Create study")
        admin_msg = gr.Markdown()

    def studies_update(tok):
        try:
            _admin(ctx.store(), tok)
        except TuringError:
            return gr.update()
        choices = [(f"{s['name']} (id {s['id']})", s["id"]) for s in ctx.store().list_studies()]
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    def on_login(u, p, request: gr.Request):
        try:
            tok = admin_login(ctx.store(), u, p, client=request.client.host if request and request.client else "")
        except TuringError as exc:
            return None, f"**Login refused:** {exc}", gr.update(visible=False), gr.update()
        return tok, f"Logged in as {u}.", gr.update(visible=True), studies_update(tok)

    def on_show(tok, study_id):
        try:
            if study_id is None:
                raise TuringError("choose a study")
            res = load_results(ctx.store(), tok, study_id, tempfile.mkdtemp(prefix="tiger_results_"))
        except TuringError as exc:
            return f"**Error:** {exc}", None, None, None, None
        p = res["paths"]
        return (res["markdown"], res["table"], str(p["accuracy_png"]), str(p["readers_png"]),
                [str(p[k]) for k in ("answers_csv", "answers_json", "summary_csv", "summary_json")])

    def guarded(fn):
        def run(*args):
            try:
                return fn(ctx.store(), *args)
            except TuringError as exc:
                return f"**Error:** {exc}"
        return run

    login.click(on_login, [user, password], [token, status, panel, study])
    show.click(on_show, [token, study], [summary_md, table, acc_plot, reader_plot, files])
    r_create.click(guarded(admin_create_reader), [token, r_user, r_pass, r_role, r_years], admin_msg)
    r_deact.click(guarded(lambda st, tok, u: admin_set_active(st, tok, u, False)), [token, r_user], admin_msg)
    s_create.click(guarded(admin_create_study),
                   [token, s_name, s_manifest, s_real, s_protocols, s_seed, s_edits, s_readers, s_cases], admin_msg)
    s_create.click(studies_update, [token], study)
