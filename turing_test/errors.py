"""Errors of the Turing-test module.

Every error is a ValueError subclass with a message written for people, so the UI and the HTTP
API can show it as is. The API maps each class to one HTTP status (see `http_status`).
"""
from __future__ import annotations


class TuringError(ValueError):
    """Base class: bad input or a refused request; nothing was changed."""

    http_status = 400


class ManifestError(TuringError):
    """A study manifest or folder is invalid. `problems` lists every bad row, not just the first."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        head = f"{len(self.problems)} problem(s) in the study input; nothing was created:\n"
        super().__init__(head + "\n".join(f"- {p}" for p in self.problems))


class AuthError(TuringError):
    """Unknown user, wrong password, inactive account or expired session."""

    http_status = 401


class RateLimited(AuthError):
    """Too many wrong passwords; the caller must wait `retry_after` seconds."""

    http_status = 429

    def __init__(self, retry_after: float):
        self.retry_after = max(1, int(retry_after + 0.999))
        super().__init__(f"Too many failed logins; try again in {self.retry_after} s.")


class PermissionDenied(TuringError):
    """The user is logged in but may not do or see this (e.g. a reader asking for results)."""

    http_status = 403


class NotFound(TuringError):
    """The object does not exist *for this user* (we never reveal whether it exists for others)."""

    http_status = 404


class DuplicateAnswer(TuringError):
    """The reader already answered this question and the study does not allow edits."""

    http_status = 409


class PayloadError(TuringError):
    """An answer payload does not fit its protocol (unknown feature, bad choice, ...)."""

    http_status = 422
