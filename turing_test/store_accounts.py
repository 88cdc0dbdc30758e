"""Readers and logins: accounts, password checks with the per-(name, address) limiter, session tokens."""
from __future__ import annotations

import re


from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from turing_test import auth
from turing_test import hot_queries as Q
from turing_test.errors import AuthError, NotFound, PermissionDenied, TuringError
from turing_test.models import ROLES, Reader, Session
from turing_test.ratelimit import login_key
from turing_test.store_base import ReaderInfo, StoreBase, timestamp


SESSION_TTL_S = 12 * 3600
#: what a user name may hold: it appears in URLs, CSV exports and logs, so no slashes or controls
USERNAME_RE = re.compile(r"[A-Za-z0-9._@-]{1,100}")


class AccountsMixin(StoreBase):
    """Readers, logins and sessions."""

    def create_reader(self, username: str, password: str, role: str = "junior",
                      years_experience: float = 0) -> ReaderInfo:
        username = (username or "").strip()
        if not USERNAME_RE.fullmatch(username):
            raise TuringError("user name must be 1-100 letters, digits or . _ @ - (no spaces or slashes)")
        if role not in ROLES:
            raise TuringError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if not password or len(password) < auth.MIN_PASSWORD_LENGTH:
            raise TuringError(f"password must have at least {auth.MIN_PASSWORD_LENGTH} characters")
        try:
            years = float(years_experience)
        except (TypeError, ValueError):
            raise TuringError("years of experience must be a number") from None
        if not 0 <= years <= 80:
            raise TuringError("years of experience must be between 0 and 80")
        reader = Reader(username=username, password_hash=auth.hash_password(password), role=role,
                        years_experience=years, active=True, created_at=timestamp())
        with self.Session() as s:
            s.add(reader)
            try:
                s.commit()
            except IntegrityError:
                raise TuringError(f"user name {username!r} is taken") from None
            return self._info(reader)

    @staticmethod
    def _info(r: Reader) -> ReaderInfo:
        return ReaderInfo(r.id, r.username, r.role, r.years_experience)

    def set_reader_active(self, username: str, active: bool) -> None:
        """Deactivate (or reactivate) a reader; a deactivated reader's sessions end at once."""
        with self.Session.begin() as s:
            reader = s.scalar(select(Reader).where(Reader.username == username))
            if reader is None:
                raise NotFound(f"no reader named {username!r}")
            reader.active = bool(active)
            if not active:
                s.query(Session).filter(Session.reader_id == reader.id).delete()

    def list_readers(self) -> list[dict]:
        with self.Session() as s:
            return [{"id": r.id, "username": r.username, "role": r.role, "years_experience": r.years_experience,
                     "active": r.active} for r in s.scalars(select(Reader).order_by(Reader.id))]

    def has_admin(self) -> bool:
        with self.Session() as s:
            return s.scalar(select(func.count()).select_from(Reader).where(Reader.role == "admin",
                                                                             Reader.active.is_(True))) > 0

    def authenticate(self, username: str, password: str, client: str = "") -> ReaderInfo:
        """The reader for these credentials; AuthError (same text for unknown user and wrong
        password) or RateLimited after too many failures for this (user name, client address).

        An unknown name is verified against a dummy hash with the same parameters, so a login
        takes as long for a name that does not exist as for one that does (no enumeration by
        timing).
        """
        key = login_key(username, client)
        self.limiter.check(key)
        with self.Session() as s:
            reader = s.scalar(select(Reader).where(Reader.username == (username or "").strip()))
        if reader is None:
            auth.verify_dummy(password or "")
        ok = reader is not None and auth.verify_password(reader.password_hash, password or "")
        if not ok or not reader.active:
            self.limiter.failed(key)
            raise AuthError("wrong user name or password, or the account is deactivated")
        self.limiter.succeeded(key)
        return self._info(reader)

    def login(self, username: str, password: str, client: str = "", ttl_s: float = SESSION_TTL_S) -> tuple[str, ReaderInfo]:
        """Check the credentials and open a session; returns (token, reader)."""
        reader = self.authenticate(username, password, client)
        token = auth.new_token()
        with self._write_lock, self.Session.begin() as s:
            s.add(Session(token_hash=auth.token_hash(token), reader_id=reader.id, created_at=timestamp(),
                          expires_at=timestamp() + ttl_s))
        return token, reader

    def reader_for_token(self, token: str | None) -> ReaderInfo:
        if not token:
            raise AuthError("log in first")
        with self.engine.connect() as c:  # every request: a Core query, no ORM Session (issue 17)
            row = c.execute(Q.READER_FOR_TOKEN, {"token": auth.token_hash(token)}).first()
        if row is None or row.expires_at < timestamp() or not row.active:
            raise AuthError("session expired or unknown; log in again")
        return ReaderInfo(row.id, row.username, row.role, row.years_experience)

    def reader_by_username(self, username: str | None) -> ReaderInfo:
        """For Gradio's login (request.username): the active reader of that name."""
        with self.Session() as s:
            reader = s.scalar(select(Reader).where(Reader.username == (username or "")))
        if reader is None or not reader.active:
            raise AuthError("log in first")
        return self._info(reader)

    def logout(self, token: str) -> None:
        with self.Session.begin() as s:
            s.query(Session).filter(Session.token_hash == auth.token_hash(token)).delete()

    @staticmethod
    def require_admin(reader: ReaderInfo) -> None:
        if not reader.is_admin:
            raise PermissionDenied("only an admin may do this")
