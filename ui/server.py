"""The ASGI app: FastAPI with a health check and JSON APIs, with the Gradio Blocks mounted at /.

Gradio is mounted rather than launched so that the Turing-test HTTP API and the health check
live in the same process and port, and so that tests can start the app with uvicorn directly.
"""
from __future__ import annotations

import os
from pathlib import Path

import gradio as gr
from fastapi import FastAPI

from tiger.paths import DATA_ROOT, DEFAULT_MODEL
from ui.context import AppContext
from ui.file_inputs import accept_uploaded_files_only
from ui.layout import build_blocks
from ui.request_limits import RequestGuard
from ui.uploads import MAX_BYTES


def create_app(model_dir: str | Path | None = None, db_url: str | None = None,
               data_dir: str | Path | None = None, require_login: bool | None = None) -> FastAPI:
    """Build the whole app. Defaults: shipped model, SQLite in the data folder.

    require_login: the generation pages (Synthesize, Reference, Teach, Results) ask for a study
    account too; default from TIGER_REQUIRE_LOGIN=1 (app.py turns it on when serving beyond
    localhost).
    """
    if require_login is None:
        require_login = os.environ.get("TIGER_REQUIRE_LOGIN", "") in ("1", "true", "yes")
    ctx = AppContext(
        model_dir=Path(model_dir or DEFAULT_MODEL),
        db_url=db_url or os.environ.get("TIGER_DB_URL"),
        data_dir=Path(data_dir or DATA_ROOT),
        require_login=require_login,
    )
    ctx.data_dir.mkdir(parents=True, exist_ok=True)
    app = FastAPI(title="Tiger Studio")
    app.add_middleware(RequestGuard)

    @app.get("/health")
    def health() -> dict:
        """Liveness and which model is served; no paths (they tell an outsider about the install)."""
        return {"status": "ok", "model_id": model_id(ctx.model_dir)}

    try:  # JSON APIs of the Turing-test module, when present
        from ui.turing_api import register as register_turing_api
    except ImportError:
        register_turing_api = None
    if register_turing_api is not None:
        register_turing_api(app, ctx)
    try:  # the reader app of the Turing tests at /study (its own login); mounted before "/"
        from ui.turing_pages import mount_reader_app
    except ImportError:
        mount_reader_app = None
    if mount_reader_app is not None:
        mount_reader_app(app, ctx)

    demo = accept_uploaded_files_only(build_blocks(ctx))
    app.state.ctx = ctx
    app.state.blocks = demo
    return gr.mount_gradio_app(app, demo, path="/", max_file_size=MAX_BYTES, **_mount_kwargs(ctx))


def model_id(model_dir: Path) -> str | None:
    """The served model's id: its folder name when it holds a model, else None (no model)."""
    return model_dir.name if (model_dir / "model_index.json").exists() else None


def _mount_kwargs(ctx: AppContext) -> dict:
    """Extra arguments for mount_gradio_app: file access, and the login the Turing pages contribute.

    Outputs may come from the model's background bank (shown in the gallery); the data folder,
    which holds the study database, is never served whatever the working directory is.
    """
    kwargs: dict = {"allowed_paths": [str((ctx.model_dir / "background_bank").resolve())],
                    "blocked_paths": [str(ctx.data_dir.resolve())]}
    try:
        from ui.turing_pages import mount_kwargs
    except ImportError:
        return kwargs
    return {**kwargs, **mount_kwargs(ctx)}
