"""The study store: engine set-up, migrations, and every read and write of the Turing tests.

Why one Store class with scoped methods: each method takes the asking reader and checks what
that reader may see *in the query*, so no page or route can forget a permission check. Readers
get views without truth, method, file names or other readers' answers; admin-only data goes
through `require_admin`.

SQLite (default, a file in the app's data folder) runs in WAL mode with foreign keys on and
synchronous=FULL, so an acknowledged answer survives a killed process. Any SQLAlchemy URL
(PostgreSQL for many readers and several app servers) works through `TIGER_DB_URL`.
"""
from __future__ import annotations

import re

import contextlib
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from turing_test import auth
from turing_test.assignment import CaseInfo, plan_items
from turing_test.errors import (AuthError, DuplicateAnswer, ManifestError, NotFound, PermissionDenied,
                                TuringError)
from turing_test.images import ServeSpec, blinding_report, default_spec, served_png, spec_problems
from turing_test.manifest import CaseSpec, validate_cases
from turing_test.models import (PROTOCOLS, ROLES, Answer, AnswerRevision, Case, Enrollment, Item,
                                Reader, Session, Study)
from turing_test.protocols import PROTOCOL_NAMES, score, shown_features, validate_payload
from turing_test.ratelimit import LoginRateLimiter, login_key

MIGRATIONS = Path(__file__).parent / "migrations"
SESSION_TTL_S = 12 * 3600
DB_FILE_NAME = "turing.sqlite3"


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


def default_url(data_dir: str | Path) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / DB_FILE_NAME}"


def make_engine(url: str) -> Engine:
    """An engine; SQLite gets WAL, foreign keys, FULL sync and a busy timeout on every connection."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False},
                               pool_size=20, max_overflow=40)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        return engine
    return create_engine(url, pool_size=20, max_overflow=40, pool_pre_ping=True)


def alembic_config(connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` through the Alembic migrations (never create_all).

    SQLite alters tables by copying them (batch mode); with foreign keys on, dropping the old
    copy of a parent table would cascade-delete every answer. So SQLite migrates with foreign
    keys off and checks them afterwards (the migration test caught exactly this).
    """
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        with conn.begin():
            if engine.dialect.name == "postgresql":  # several app servers may start at once
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7274001)")
            command.upgrade(alembic_config(conn), revision)
        if sqlite:
            bad = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()
            if bad:
                raise RuntimeError(f"migration left {len(bad)} broken foreign keys, e.g. {bad[0]}")


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


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


def _now() -> float:
    return time.time()


def _valid_id(value) -> bool:
    """Database ids are positive 32-bit ints; anything else (bool, huge, str) names nothing."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31


def _signed64(h: int) -> int:
    h &= 2**64 - 1
    return h - 2**64 if h >= 2**63 else h


#: what a user name may hold: it appears in URLs, CSV exports and logs, so no slashes or controls
USERNAME_RE = re.compile(r"[A-Za-z0-9._@-]{1,100}")


class Store:
    """All reads and writes of the Turing-test module."""

    def __init__(self, engine: Engine, limiter: LoginRateLimiter | None = None):
        self.engine = engine
        self.Session = sessionmaker(engine, expire_on_commit=False)
        self.limiter = limiter or LoginRateLimiter(engine)
        # SQLite has one writer at a time; waiting writers poll with growing sleeps (busy handler),
        # which made the p99 of 50 concurrent readers seconds long. Within one process a plain lock
        # queues writers without sleeping; other processes still meet the busy timeout.
        self._write_lock = threading.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()

    # ---------------------------------------------------------------- readers and logins
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
                        years_experience=years, active=True, created_at=_now())
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
            s.add(Session(token_hash=auth.token_hash(token), reader_id=reader.id, created_at=_now(),
                          expires_at=_now() + ttl_s))
        return token, reader

    def reader_for_token(self, token: str | None) -> ReaderInfo:
        if not token:
            raise AuthError("log in first")
        with self.Session() as s:
            row = s.execute(select(Session, Reader).join(Reader, Reader.id == Session.reader_id)
                            .where(Session.token_hash == auth.token_hash(token))).first()
        if row is None or row[0].expires_at < _now() or not row[1].active:
            raise AuthError("session expired or unknown; log in again")
        return self._info(row[1])

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

    # ---------------------------------------------------------------- studies
    def create_study(self, name: str, specs: list[CaseSpec], protocols=(1, 2, 3), design: dict | None = None,
                     seed: int = 0, allow_edits: bool = False, description: str = "",
                     readers: list[str] = (), progress: bool = False) -> int:
        """Validate every case first (ManifestError lists all problems), then create atomically."""
        problems = []
        name = (name or "").strip()
        if not name:
            problems.append("the study needs a name")
        protocols = list(protocols) if isinstance(protocols, (list, tuple)) else [protocols]
        try:
            seed = int(seed)
        except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf) from a JSON 1e400
            problems.append(f"seed must be a whole number, got {seed!r}")
            seed = 0
        if not protocols or any(p not in PROTOCOLS for p in protocols) or len(set(protocols)) != len(protocols):
            problems.append(f"protocols must be distinct values of {list(PROTOCOLS)}, got {protocols}")
        design = dict(design or {})
        problems += spec_problems(design.get("serve"))
        if design.get("blinding", "warn") not in ("warn", "strict"):
            problems.append(f'design "blinding" must be "warn" or "strict", got {design.get("blinding")!r}')
        block = design.get("block_size")
        if block is not None and (isinstance(block, bool) or not isinstance(block, int) or block < 1):
            problems.append(f'design "block_size" must be a whole number of questions >= 1, got {block!r}')
        with self.Session() as s:
            if name and s.scalar(select(Study.id).where(Study.name == name)) is not None:
                problems.append(f"a study named {name!r} exists")
        try:
            valid = validate_cases(specs, progress=progress)
        except ManifestError as exc:
            problems += exc.problems
            valid = []
        if problems:
            raise ManifestError(problems)
        design.update(self._blinding(valid, design))
        with self.Session.begin() as s:
            study = Study(name=name, description=description, protocols=protocols, design=design, seed=int(seed),
                          active=True, created_at=_now(), allow_edits=bool(allow_edits))
            s.add(study)
            s.flush()
            for c in valid:
                s.add(Case(study_id=study.id, token=secrets.token_urlsafe(16), image_path=str(c.image_path),
                           image_sha256=c.sha256, truth=c.truth, method=c.method, subtype=c.subtype,
                           description=c.description, features=c.features, phash=_signed64(c.phash)))
            study_id = study.id
        if readers:
            self.enroll(study_id, list(readers))
        return study_id

    @staticmethod
    def _blinding(valid: list, design: dict) -> dict:
        """The study's ServeSpec and what it cannot hide (`turing_test.images`); design["blinding"]
        = "strict" refuses a study whose served cases would still differ."""
        by_truth: dict[str, list[Path]] = {}
        for c in valid:
            by_truth.setdefault(c.truth, []).append(c.image_path)
        spec = default_spec(by_truth, design.get("serve"))
        warnings = blinding_report(by_truth, spec)
        if warnings and design.get("blinding") == "strict":
            raise ManifestError([f"blinding: {w}" for w in warnings])
        return {"serve": spec.as_design(), "blinding_warnings": warnings}

    def blinding(self, study_id: int) -> dict:
        """How a study serves its images and the warnings found at creation (admin view)."""
        with self.Session() as s:
            study = s.get(Study, study_id) if _valid_id(study_id) else None
            if study is None:
                raise NotFound(f"no study with id {study_id}")
            design = study.design or {}
        return {"serve": design.get("serve"), "warnings": list(design.get("blinding_warnings", []))}

    def list_studies(self) -> list[dict]:
        with self.Session() as s:
            return [{"id": st.id, "name": st.name, "protocols": st.protocols, "allow_edits": st.allow_edits,
                     "active": st.active} for st in s.scalars(select(Study).order_by(Study.id))]

    def enroll(self, study_id: int, usernames: list[str]) -> int:
        """Enroll readers and write their question lists; returns the number of items created.
        Enrolling an already enrolled reader changes nothing (their order must never move)."""
        created = 0
        with self.Session.begin() as s:
            study = s.get(Study, study_id) if _valid_id(study_id) else None
            if study is None:
                raise NotFound(f"no study with id {study_id}")
            cases = [CaseInfo(c.id, c.truth, c.method, c.description, c.features or {}, c.phash)
                     for c in s.scalars(select(Case).where(Case.study_id == study_id).order_by(Case.id))]
            for username in usernames:
                reader = s.scalar(select(Reader).where(Reader.username == username))
                if reader is None:
                    raise NotFound(f"no reader named {username!r}")
                if s.get(Enrollment, (study_id, reader.id)) is not None:
                    continue
                s.add(Enrollment(study_id=study_id, reader_id=reader.id, created_at=_now()))
                for it in plan_items(study.protocols, cases, study.design or {}, study.seed, reader.id):
                    s.add(Item(study_id=study_id, reader_id=reader.id, position=it.position, protocol=it.protocol,
                               case_id=it.case_id, options=it.options))
                    created += 1
        return created

    def _enrolled_study(self, s, reader: ReaderInfo, study_id: int) -> Study:
        study = s.get(Study, study_id) if _valid_id(study_id) else None
        if study is None or s.get(Enrollment, (study_id, reader.id)) is None:
            raise NotFound("no such study for this reader")
        return study

    def studies_for(self, reader: ReaderInfo) -> list[dict]:
        """The reader's own studies with their own progress."""
        with self.Session() as s:
            rows = s.execute(select(Study).join(Enrollment, Enrollment.study_id == Study.id)
                             .where(Enrollment.reader_id == reader.id, Study.active.is_(True))
                             .order_by(Study.id)).scalars().all()
            out = []
            for st in rows:
                total = s.scalar(select(func.count()).select_from(Item).where(Item.study_id == st.id,
                                                                              Item.reader_id == reader.id))
                done = s.scalar(select(func.count()).select_from(Answer).where(Answer.study_id == st.id,
                                                                               Answer.reader_id == reader.id))
                out.append({"id": st.id, "name": st.name, "description": st.description, "total": total,
                            "answered": done, "protocols": st.protocols, "allow_edits": st.allow_edits})
            return out

    # ---------------------------------------------------------------- reading
    def _item_view(self, s, study: Study, item: Item, total: int, answered: int) -> dict:
        case = s.get(Case, item.case_id)
        view = {"study_id": study.id, "item_id": item.id, "position": item.position, "total": total,
                "answered": answered, "protocol": item.protocol, "protocol_name": PROTOCOL_NAMES[item.protocol]}
        if item.protocol == 2:
            tokens = {c.id: c.token for c in s.scalars(select(Case).where(Case.id.in_(item.options or [])))}
            view["description"] = case.description
            view["options"] = [tokens[i] for i in item.options]
        else:
            view["image"] = case.token
        if item.protocol == 3:
            view["features"] = shown_features(case.features or {})
        return view

    def next_item(self, reader: ReaderInfo, study_id: int) -> dict | None:
        """The first unanswered item in the reader's order (None when finished); marks it shown."""
        with self._write_lock, self.Session.begin() as s:
            study = self._enrolled_study(s, reader, study_id)
            answered_items = select(Answer.item_id).where(Answer.reader_id == reader.id, Answer.study_id == study_id)
            item = s.scalar(select(Item).where(Item.study_id == study_id, Item.reader_id == reader.id,
                                               Item.id.not_in(answered_items)).order_by(Item.position).limit(1))
            total = s.scalar(select(func.count()).select_from(Item).where(Item.study_id == study_id,
                                                                          Item.reader_id == reader.id))
            answered = s.scalar(select(func.count()).select_from(Answer).where(Answer.study_id == study_id,
                                                                               Answer.reader_id == reader.id))
            if item is None:
                return None
            if item.shown_at is None:
                item.shown_at = _now()
            return self._item_view(s, study, item, total, answered)

    def item_for(self, reader: ReaderInfo, study_id: int, item_id: int) -> dict:
        """One of the reader's own items with their own answer (for review/edit in studies that allow it)."""
        with self.Session() as s:
            study = self._enrolled_study(s, reader, study_id)
            item = s.get(Item, item_id) if _valid_id(item_id) else None
            if item is None or item.reader_id != reader.id or item.study_id != study_id:
                raise NotFound("no such question for this reader")
            total = s.scalar(select(func.count()).select_from(Item).where(Item.study_id == study_id,
                                                                          Item.reader_id == reader.id))
            answered = s.scalar(select(func.count()).select_from(Answer).where(Answer.study_id == study_id,
                                                                               Answer.reader_id == reader.id))
            view = self._item_view(s, study, item, total, answered)
            ans = s.scalar(select(Answer).where(Answer.item_id == item.id))
            view["my_answer"] = ans.payload if ans else None
            return view

    def answered_items(self, reader: ReaderInfo, study_id: int) -> list[dict]:
        """The reader's own answered questions of a study in their order, for the review screen.

        Only what the reader already saw and said: item id, position (0-based, as in item views)
        and number (1-based, as the page counts), protocol, when it was last answered and how often
        it was changed (revision). No truth and no payload: opening one goes through `item_for`.
        """
        with self.Session() as s:
            self._enrolled_study(s, reader, study_id)
            rows = s.execute(select(Item.id, Item.position, Item.protocol, Answer.answered_at, Answer.revision)
                             .join(Answer, Answer.item_id == Item.id)
                             .where(Item.study_id == study_id, Item.reader_id == reader.id,
                                    Answer.reader_id == reader.id)
                             .order_by(Item.position)).all()
        return [{"item_id": iid, "position": pos, "number": pos + 1, "protocol": proto,
                 "protocol_name": PROTOCOL_NAMES[proto], "answered_at": at, "revision": rev}
                for iid, pos, proto, at, rev in rows]

    def submit(self, reader: ReaderInfo, study_id: int, item_id: int, payload, question: str = "main") -> dict:
        """Store one answer. Refuses items not assigned to this reader, malformed payloads and
        second answers (unless the study allows edits: then the old version goes to history)."""
        now = _now()
        with self.Session() as s:
            study = self._enrolled_study(s, reader, study_id)
            if not study.active:
                raise PermissionDenied("this study is closed")
            item = s.get(Item, item_id) if _valid_id(item_id) else None
            if item is None or item.reader_id != reader.id or item.study_id != study_id:
                raise NotFound("this question is not assigned to you")
            case = s.get(Case, item.case_id)
            tokens = None
            if item.protocol == 2:
                tokens = [c.token for c in s.scalars(select(Case).where(Case.id.in_(item.options or [])))]
            clean = validate_payload(item.protocol, payload, option_tokens=tokens, features=case.features or {})
            shown_at = item.shown_at or now
            allow_edits, case_id, protocol, iid = study.allow_edits, case.id, item.protocol, item.id
            answer = Answer(item_id=iid, study_id=study_id, reader_id=reader.id, case_id=case_id,
                            protocol=protocol, question=question, payload=clean, shown_at=shown_at,
                            answered_at=now, duration_s=max(0.0, now - shown_at), revision=0)
            s.add(answer)
            try:
                with self._write_lock:
                    s.commit()
                return {"answer_id": answer.id, "item_id": iid, "revision": 0, "stored": True}
            except IntegrityError:
                s.rollback()
        if not allow_edits:
            raise DuplicateAnswer("you already answered this question; answers cannot be changed in this study")
        return self._edit(reader, iid, case_id, protocol, question, clean, now)

    def _edit(self, reader: ReaderInfo, item_id: int, case_id: int, protocol: int, question: str,
              clean: dict, now: float) -> dict:
        """Replace an answer, keeping the previous version in answer_revisions."""
        with self._write_lock, self.Session.begin() as s:
            old = s.scalar(select(Answer).where(Answer.reader_id == reader.id, Answer.case_id == case_id,
                                                Answer.protocol == protocol, Answer.question == question)
                           .with_for_update())
            s.add(AnswerRevision(answer_id=old.id, revision=old.revision, payload=old.payload,
                                 answered_at=old.answered_at, replaced_at=now))
            old.payload, old.answered_at, old.revision = clean, now, old.revision + 1
            old.duration_s = max(0.0, now - old.shown_at)
            return {"answer_id": old.id, "item_id": item_id, "revision": old.revision, "stored": True}

    def image_png(self, reader: ReaderInfo, token: str) -> bytes:
        """The case image as the study serves it (`turing_test.images`: one size, mode and encoding
        for every case, no metadata), only if the case is in one of this reader's items."""
        if not isinstance(token, str) or not token or len(token) > 64 or not all(c.isalnum() or c in "-_" for c in token):
            raise NotFound("no such image")
        with self.Session() as s:
            case = s.scalar(select(Case).where(Case.token == token))
            if case is None:
                raise NotFound("no such image")
            spec = ServeSpec.from_design((s.get(Study, case.study_id).design or {}).get("serve"))
            if not reader.is_admin:
                if s.get(Enrollment, (case.study_id, reader.id)) is None:
                    raise NotFound("no such image")
                items = s.execute(select(Item.case_id, Item.options).where(Item.reader_id == reader.id,
                                                                           Item.study_id == case.study_id)).all()
                if not any(cid == case.id or case.id in (opts or []) for cid, opts in items):
                    raise NotFound("no such image")
            path = case.image_path
        try:
            return served_png(path, spec)
        except OSError:
            raise NotFound("the image file of this case is missing; tell the study admin") from None

    # ---------------------------------------------------------------- admin data
    def answer_rows(self, admin: ReaderInfo, study_id: int) -> list[dict]:
        """Raw answers joined with truth, method, subtype and reader group (admin only)."""
        self.require_admin(admin)
        with self.Session() as s:
            if not _valid_id(study_id) or s.get(Study, study_id) is None:
                raise NotFound(f"no study with id {study_id}")
            tokens = dict(s.execute(select(Case.token, Case.id).where(Case.study_id == study_id)).all())
            rows = s.execute(select(Answer, Case, Reader).join(Case, Case.id == Answer.case_id)
                             .join(Reader, Reader.id == Answer.reader_id)
                             .where(Answer.study_id == study_id).order_by(Answer.id)).all()
            out = []
            for a, c, r in rows:
                target = c.token if a.protocol == 2 else None
                out.append({
                    "answer_id": a.id, "study_id": study_id, "reader": r.username, "reader_id": r.id,
                    "reader_group": r.role, "years_experience": r.years_experience, "case_id": c.id,
                    "protocol": a.protocol, "question": a.question, "truth": c.truth, "method": c.method,
                    "subtype": c.subtype, "payload": a.payload, "chosen_case_id": tokens.get(a.payload.get("choice")),
                    "correct": score(a.protocol, a.payload, truth=c.truth, target_token=target),
                    "shown_at": a.shown_at, "answered_at": a.answered_at, "duration_s": a.duration_s,
                    "revision": a.revision,
                })
            return out

    def answer_history(self, admin: ReaderInfo, answer_id: int) -> list[dict]:
        self.require_admin(admin)
        with self.Session() as s:
            return [{"revision": r.revision, "payload": r.payload, "answered_at": r.answered_at,
                     "replaced_at": r.replaced_at}
                    for r in s.scalars(select(AnswerRevision).where(AnswerRevision.answer_id == answer_id)
                                       .order_by(AnswerRevision.revision))]

    def count_answers(self, study_id: int | None = None) -> int:
        with self.Session() as s:
            q = select(func.count()).select_from(Answer)
            if study_id is not None:
                q = q.where(Answer.study_id == study_id)
            return s.scalar(q)


__all__ = ["Store", "ReaderInfo", "open_store", "upgrade", "current_revision", "make_engine", "default_url"]
