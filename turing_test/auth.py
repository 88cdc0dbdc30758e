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


def new_token() -> str:
    """A random session token (URL-safe, 256 bits)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Sessions store only this hash, so a database dump holds no usable token."""
    return hashlib.sha256(token.encode()).hexdigest()
