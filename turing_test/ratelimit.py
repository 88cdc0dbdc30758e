"""Wrong-password rate limiting, shared by every app server through the database.

Why in the database and not in memory: with several app servers behind one address, an
in-process counter would give an attacker N times the allowance (and a restart would reset
it). Failures are rows in `login_failures` (revision 0003); a key (user name, client address)
with `max_failures` failures inside `window_s` seconds is refused until the oldest leaves the
window. A successful login clears the user's failures; old rows are pruned as keys are touched.
"""
from __future__ import annotations

import time

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from turing_test.errors import RateLimited
from turing_test.models import LoginFailure


class LoginRateLimiter:
    def __init__(self, engine: Engine, max_failures: int = 5, window_s: float = 300.0, clock=time.time):
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._session = sessionmaker(engine)

    def check(self, *keys: str) -> None:
        """Raise RateLimited when any key has used up its failures inside the window."""
        now = self._clock()
        with self._session() as s:
            for key in keys:
                count, oldest = s.execute(select(func.count(), func.min(LoginFailure.at))
                                          .where(LoginFailure.key == key, LoginFailure.at > now - self.window_s)).one()
                if count >= self.max_failures:
                    raise RateLimited(self.window_s - (now - oldest))

    def failed(self, *keys: str) -> None:
        now = self._clock()
        with self._session.begin() as s:
            s.execute(delete(LoginFailure).where(LoginFailure.key.in_(keys), LoginFailure.at <= now - self.window_s))
            s.add_all([LoginFailure(key=key, at=now) for key in keys])

    def succeeded(self, key: str) -> None:
        with self._session.begin() as s:
            s.execute(delete(LoginFailure).where(LoginFailure.key == key))
