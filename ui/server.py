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
from ui.layout import build_blocks


def create_app(model_dir: str | Path | None = None, db_url: str | None = None,
               data_dir: str | Path | None = None) -> FastAPI:
    """Build the whole app. Defaults: shipped model, SQLite in the data folder."""
    ctx = AppContext(
        model_dir=Path(model_dir or DEFAULT_MODEL),
        db_url=db_url or os.environ.get("TIGER_DB_URL"),
        data_dir=Path(data_dir or DATA_ROOT),
    )
    ctx.data_dir.mkdir(parents=True, exist_ok=True)
    app = FastAPI(title="Tiger Studio")

    @app.get("/health")
    def health() -> dict:
        return {
            "status": "ok",
            "model_dir": str(ctx.model_dir),
            "model_present": (ctx.model_dir / "model_index.json").exists(),
        }

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

    demo = build_blocks(ctx)
    app.state.ctx = ctx
    app.state.blocks = demo
    return gr.mount_gradio_app(app, demo, path="/", **_mount_kwargs(ctx))


def _mount_kwargs(ctx: AppContext) -> dict:
    """Extra arguments for mount_gradio_app (login etc.), contributed by the Turing pages."""
    try:
        from ui.turing_pages import mount_kwargs
    except ImportError:
        return {}
    return mount_kwargs(ctx)
