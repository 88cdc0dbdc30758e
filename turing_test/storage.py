"""The study store: every read and write of the Turing tests, through one `Store`.

`Store` is assembled from one part per concept: accounts and logins (store_accounts.py), studies
and enrollment (store_studies.py), reading and answering (store_reading.py) and the admin's data
(store_results.py), on the engine and migrations of database.py.

Why one Store object with scoped methods: each method takes the asking reader and checks what
that reader may see *in the query*, so no page or route can forget a permission check. Readers
get views without truth, method, file names or other readers' answers; admin-only data goes
through `require_admin`.

SQLite (default, a file in the app's data folder) runs in WAL mode with foreign keys on and
synchronous=FULL, so an acknowledged answer survives a killed process. Any SQLAlchemy URL
(PostgreSQL for many readers and several app servers) works through `TIGER_DB_URL`.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from turing_test.write_lock import SQLiteWriteLock
from turing_test.database import (DB_FILE_NAME, MIGRATIONS, alembic_config, current_revision, default_url,
                                  make_engine, upgrade)
from turing_test.ratelimit import LoginRateLimiter
from turing_test.store_accounts import SESSION_TTL_S, USERNAME_RE, AccountsMixin
from turing_test.store_base import ReaderInfo
from turing_test.store_reading import ReadingMixin
from turing_test.store_results import ResultsMixin
from turing_test.store_studies import StudiesMixin


def open_store(db_url: str | None = None, data_dir: str | Path | None = None, migrate: bool = True) -> "Store":
    """The store for `db_url`, else `$TIGER_DB_URL`, else SQLite in `data_dir` (created if needed)."""
    url = db_url or os.environ.get("TIGER_DB_URL")
    if not url:
        from tiger.paths import DATA_ROOT

        folder = Path(data_dir or DATA_ROOT)
        folder.mkdir(parents=True, exist_ok=True)
        url = default_url(folder)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    if migrate:
        upgrade(engine)
    store = Store(engine)
    ensure_admin_from_env(store)
    return store


def ensure_admin_from_env(store: "Store") -> bool:
    """Create the first admin from TIGER_ADMIN_USER / TIGER_ADMIN_PASSWORD when no admin exists.

    There is never a default password: without both variables nothing happens and the admin is
    made with `python -m turing_test.cli create-admin`.
    """
    user, password = os.environ.get("TIGER_ADMIN_USER"), os.environ.get("TIGER_ADMIN_PASSWORD")
    if not user or not password or store.has_admin():
        return False
    store.create_reader(user, password, role="admin", years_experience=0)
    return True


class Store(AccountsMixin, StudiesMixin, ReadingMixin, ResultsMixin):
    """All reads and writes of the Turing-test module (one part per concept, see the module docstring)."""

    def __init__(self, engine: Engine, limiter: LoginRateLimiter | None = None):
        self.engine = engine
        self.Session = sessionmaker(engine, expire_on_commit=False)
        self.limiter = limiter or LoginRateLimiter(engine)
        self._facts_cache = {}  # item id -> ItemFacts (store_reading: what an enrolled item asks never changes)
        # SQLite has one writer at a time: writers queue on a thread lock and a file lock beside
        # the database instead of polling (turing_test.write_lock); PostgreSQL locks rows itself.
        if engine.dialect.name == "sqlite":
            db = engine.url.database
            self._write_lock = SQLiteWriteLock(db if db and db != ":memory:" else None)
        else:
            self._write_lock = contextlib.nullcontext()


__all__ = ["DB_FILE_NAME", "MIGRATIONS", "SESSION_TTL_S", "USERNAME_RE", "ReaderInfo", "Store", "alembic_config",
           "current_revision", "default_url", "ensure_admin_from_env", "make_engine", "open_store", "upgrade"]
