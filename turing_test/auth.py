"""Password hashing (argon2id) and the wrong-password rate limiter.

Why argon2: it is memory-hard, so a stolen database does not give away readers' passwords.
Why a limiter keyed by user name *and* by client address: guessing one reader's password from
many addresses and many readers' passwords from one address are both slowed down.
"""
from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import deque

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from turing_test.errors import RateLimited

_HASHER = PasswordHasher()  # argon2id with the library's recommended parameters
MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    """The argon2id hash string of a password (salt and parameters included)."""
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when the password matches; never raises for a wrong password or a corrupt hash."""
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    """A random session token (URL-safe, 256 bits)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Sessions store only this hash, so a database dump holds no usable token."""
    return hashlib.sha256(token.encode()).hexdigest()


class LoginRateLimiter:
    """Sliding-window counter of failed logins per key (user name, client address).

    After `max_failures` failures within `window_s` seconds a key is refused until the oldest
    failure leaves the window. A success clears the user's counter. In-process: with several app
    servers each server limits on its own, which multiplies the allowance by the server count
    but still makes online guessing impractical.
    """

    def __init__(self, max_failures: int = 5, window_s: float = 300.0, clock=time.monotonic):
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque:
        q = self._failures.setdefault(key, deque())
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def check(self, *keys: str) -> None:
        """Raise RateLimited when any key has used up its failures."""
        now = self._clock()
        with self._lock:
            for key in keys:
                q = self._recent(key, now)
                if len(q) >= self.max_failures:
                    raise RateLimited(self.window_s - (now - q[0]))

    def failed(self, *keys: str) -> None:
        now = self._clock()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
