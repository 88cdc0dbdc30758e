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
