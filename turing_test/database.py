"""The study database: engine set-up (SQLite WAL with synchronous=FULL, or any SQLAlchemy URL) and
Alembic migrations."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine


MIGRATIONS = Path(__file__).parent / "migrations"
DB_FILE_NAME = "turing.sqlite3"


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
