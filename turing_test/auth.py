"""Password hashing (argon2id) and session tokens.

Why argon2: it is memory-hard, so a stolen database does not give away readers' passwords.
Why only token hashes are stored: a database dump then holds no usable session.
The wrong-password limiter lives in `turing_test.ratelimit`.
"""
from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

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


_DUMMY_HASH: list[str] = []


def verify_dummy(password: str) -> None:
    """Spend the time of one real verification, for a user name that does not exist.

    Why: argon2 runs only when the name exists, so an unknown name answered in a few ms and a
    known one in ~100 ms, which told an outsider which names are accounts. The dummy hash is
    made once with the same hasher (same parameters), so both paths cost the same.
    """
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(_HASHER.hash(secrets.token_urlsafe(16)))
    verify_password(_DUMMY_HASH[0], password)


def new_token() -> str:
    """A random session token (URL-safe, 256 bits)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Sessions store only this hash, so a database dump holds no usable token."""
    return hashlib.sha256(token.encode()).hexdigest()
