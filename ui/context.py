"""What every page needs: the model folder, the lazily loaded pipeline and the study store.

Pages receive one AppContext; they never build models or database engines themselves.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tiger.paths import DATA_ROOT, DEFAULT_MODEL


@dataclass
class AppContext:
    model_dir: Path = DEFAULT_MODEL
    db_url: str | None = None
    data_dir: Path = DATA_ROOT
    require_login: bool = False  # the generation pages ask for a study account (served beyond localhost)
    _pipeline: Any = field(default=None, repr=False)
    _store: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: the generation thread count chosen at load (`TigerPipeline.warm_up`)
    threads: dict | None = None

    def pipeline(self) -> Any:
        """The TigerPipeline, loaded once per process on first use and warmed up (thread count
        measured for this machine); a bad folder raises a clear error."""
        with self._lock:
            if self._pipeline is None:
                from tiger.pipeline import TigerPipeline

                pipe = TigerPipeline.from_pretrained(self.model_dir)
                pipe.set_progress_bar_config(disable=True)
                self.threads = pipe.warm_up()
                self._pipeline = pipe
            return self._pipeline

    def store_if_open(self) -> Any:
        """The store when it is already open, else None (never opens or migrates it)."""
        return self._store

    def store(self) -> Any:
        """The Turing-test store (SQLite in data_dir by default, or db_url)."""
        with self._lock:
            if self._store is None:
                from turing_test.storage import open_store

                self._store = open_store(self.db_url, data_dir=self.data_dir)
            return self._store
