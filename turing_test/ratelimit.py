"""Wrong-password limiting per (user name, client address), with a growing lock, shared by every
app server through the database.

Why (name, address) and not the address or the name alone: a clinic's readers often share one
address (its proxy), so counting per address let five wrong passwords for one name lock out
every reader behind it; counting per name let anyone lock a reader out from anywhere. Keyed
by the pair, a guesser is slowed down on the names it tries from its address, while the same
reader logs in from an address that has not failed and colleagues behind the same proxy are
not affected.

Why a backoff: after `max_failures` failures the key is locked for `base_lock_s`, and every
further failure (possible once a lock has run out) doubles the lock, up to `max_lock_s`. A
patient guesser gets a handful of tries per hour instead of five every five minutes.

Why in the database and not in memory: with several app servers behind one address, an
in-process counter would give an attacker N times the allowance (and a restart would reset
it). Failures are rows in `login_failures` (revision 0003); rows older than `max_lock_s` are
forgotten as keys are touched, and a successful login clears its key.
"""
from __future__ import annotations

import time

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from turing_test.errors import RateLimited
from turing_test.models import LoginFailure


def login_key(username: str, client: str) -> str:
    """The limiter key of a login attempt: the normalised name and the client address.

    Truncated to the column's 200 characters: real names are at most 100, longer ones name
    nobody and must not turn into a database error.
    """
    return f"{(username or '').strip().lower()[:120]}|{(client or '')[:64]}"


class LoginRateLimiter:
    def __init__(self, engine: Engine, max_failures: int = 5, base_lock_s: float = 60.0,
                 max_lock_s: float = 3600.0, clock=time.time):
        self.max_failures = max_failures
        self.base_lock_s = base_lock_s
        self.max_lock_s = max_lock_s
        self._clock = clock
        self._session = sessionmaker(engine)

    def lock_s(self, failures: int) -> float:
        """How long a key with this many recent failures stays locked after its last one."""
        if failures < self.max_failures:
            return 0.0
        return min(self.max_lock_s, self.base_lock_s * 2.0 ** (failures - self.max_failures))

    def check(self, key: str) -> None:
        """Raise RateLimited while the key's lock (from its recent failures) runs."""
        now = self._clock()
        with self._session() as s:
            count, last = s.execute(select(func.count(), func.max(LoginFailure.at))
                                    .where(LoginFailure.key == key, LoginFailure.at > now - self.max_lock_s)).one()
        wait = self.lock_s(count) - (now - last) if count else 0.0
        if wait > 0:
            raise RateLimited(wait)

    def failed(self, key: str) -> None:
        now = self._clock()
        with self._session.begin() as s:
            s.execute(delete(LoginFailure).where(LoginFailure.key == key, LoginFailure.at <= now - self.max_lock_s))
            s.add(LoginFailure(key=key, at=now))

    def succeeded(self, key: str) -> None:
        with self._session.begin() as s:
            s.execute(delete(LoginFailure).where(LoginFailure.key == key))
