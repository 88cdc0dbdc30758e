"""Fixtures that start the real app (`ui.server.create_app`) on a free 127.0.0.1 port.

The model is a randomly initialised *micro* model (tiger.random_model.make_random_pipeline) whose
background bank is built from real DDTI images (imported with tiger.importers, 24 samples):
the UI code paths are the real ones, only the weights are random, so images are noise.
Both the model and the small canonical import are cached in `.cache/` across runs.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import free_port, wait_for_health
from tiger.paths import CACHE_ROOT, SHARED_DATA

UI_CACHE = CACHE_ROOT / "ui-tests"
MODEL_VERSION = "micro-v1"   # bump to rebuild the cached model after a model-format change


def ddti_canonical(n: int = 24) -> Path:
    """A small canonical import of the real DDTI data (cached)."""
    from tiger.importers import import_dataset

    out = UI_CACHE / f"ddti-canonical-{n}"
    if not (out / "metadata.jsonl").exists():
        import_dataset("ddti", SHARED_DATA / "ddti", out, size=128, limit=n)
    return out


def micro_model(folder: Path | None = None) -> Path:
    """A random micro model folder with a DDTI background bank (built once, then reused)."""
    folder = folder or UI_CACHE / f"model-{MODEL_VERSION}"
    if (folder / "model_index.json").exists() and (folder / "background_bank" / "index.jsonl").exists():
        return folder
    from tiger.random_model import make_random_pipeline

    canonical = ddti_canonical()
    try:
        make_random_pipeline(folder, preset="micro", seed=0, bank_source=canonical, max_backgrounds=16)
    except ImportError:  # tiger.data not there yet: build the bank from every imported row
        from tiger.background_bank import BackgroundBank

        make_random_pipeline(folder, preset="micro", seed=0, bank_source=None)
        rows = [json.loads(line) for line in (canonical / "metadata.jsonl").read_text().splitlines() if line.strip()]
        BackgroundBank.build(canonical, rows[:16], folder / "background_bank", size=128)
    return folder


@dataclass
class RunningApp:
    url: str
    model_dir: Path
    data_dir: Path
    app: object


def start_app(model_dir: Path, data_dir: Path) -> tuple[RunningApp, object, threading.Thread]:
    """Start uvicorn in a daemon thread; returns once /health answers."""
    import uvicorn

    from ui.server import create_app

    app = create_app(model_dir=model_dir, data_dir=data_dir, db_url=f"sqlite:///{data_dir / 'ui-test.db'}")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_health(url + "health", 60.0)
    except RuntimeError:
        server.should_exit = True
        raise
    return RunningApp(url, model_dir, data_dir, app), server, thread


@pytest.fixture(scope="session")
def ui_model_dir() -> Path:
    return micro_model()


@pytest.fixture(scope="module")
def ui_server(ui_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    """The whole app (all tabs) serving the micro model; one per test module."""
    running, server, thread = start_app(ui_model_dir, tmp_path_factory.mktemp("ui-data"))
    yield running
    server.should_exit = True
    thread.join(timeout=3)


@pytest.fixture(scope="module")
def ui_server_no_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    """The app pointed at a model folder that does not exist (the page must say so)."""
    missing = tmp_path_factory.mktemp("no-model") / "absent"
    running, server, thread = start_app(missing, tmp_path_factory.mktemp("ui-data-nomodel"))
    yield running
    server.should_exit = True
    thread.join(timeout=3)


@pytest.fixture(scope="session")
def ui_canonical() -> Path:
    """The small canonical DDTI import the UI tests take masks and images from."""
    return ddti_canonical()
