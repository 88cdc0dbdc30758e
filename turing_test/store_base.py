"""Shared parts of the study store: the reader view (`ReaderInfo`), id checks and the base class
whose engine and sessions the store's parts (accounts, studies, reading, results) use."""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from turing_test.ratelimit import LoginRateLimiter


@dataclass(frozen=True)
class ReaderInfo:
    """The logged-in reader as pages and routes see it (never the password hash)."""

    id: int
    username: str
    role: str
    years_experience: float

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def timestamp() -> float:
    return time.time()


def valid_id(value) -> bool:
    """Database ids are positive 32-bit ints; anything else (bool, huge, str) names nothing."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31


def signed64(h: int) -> int:
    h &= 2**64 - 1
    return h - 2**64 if h >= 2**63 else h


class StoreBase:
    """What every part of the store shares: the engine, its sessions, the login limiter and the
    in-process write lock (see `turing_test.storage.Store`)."""

    engine: Engine
    Session: sessionmaker
    limiter: LoginRateLimiter
    _write_lock: contextlib.AbstractContextManager

    @contextlib.contextmanager
    def _mark_durability(self, conn):
        """Commit a timing mark (an item's first `shown_at`) without waiting for the disk.

        Why: every answer commit waits for an fsync (SQLite WAL with synchronous=FULL) under the
        write lock, and marking the next question shown was a second fsync per answer, so 50
        readers queued on the lock behind the disk (issue 17). The mark is still written before
        the question is served and survives a killed server (it is in the WAL, in the OS's
        cache); after a power loss the marks since the last answer commit may be missing (that
        commit's fsync covers every earlier WAL frame), and such an item's duration then counts
        from when it is shown again. Answers themselves always commit with the full fsync.
        SQLite: synchronous=NORMAL on this connection for this commit; PostgreSQL:
        synchronous_commit off for this transaction.
        """
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
            try:
                yield
            finally:
                conn.rollback()  # nothing is left open when the body committed; a failed body is undone
                conn.exec_driver_sql("PRAGMA synchronous=FULL")
        else:
            if dialect == "postgresql":
                conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            yield
