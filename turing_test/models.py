"""Database tables (the head schema). Migrations in turing_test/migrations build exactly this.

Rules of the reader study live here as constraints, not only in code (grand-challenge style):
one answer per reader, case, protocol and question; one enrollment per reader and study; one
item per reader position; truth and role restricted to their values. Times are UTC epoch
seconds (float): portable between SQLite and PostgreSQL and exact enough for durations.
"""
from __future__ import annotations

from sqlalchemy import (JSON, BigInteger, Boolean, CheckConstraint, Float, ForeignKey, Integer, false,
                        String, Text, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ROLES = ("junior", "senior", "admin")
TRUTHS = ("real", "synthetic")
PROTOCOLS = (1, 2, 3)


class Base(DeclarativeBase):
    pass


class Study(Base):
    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    protocols: Mapped[list] = mapped_column(JSON, nullable=False)
    design: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    seed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    # added by revision 0002
    allow_edits: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())


class Reader(Base):
    __tablename__ = "readers"
    __table_args__ = (CheckConstraint("role IN ('junior', 'senior', 'admin')", name="ck_reader_role"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    years_experience: Mapped[float] = mapped_column(Float, nullable=False, default=0)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)


class Enrollment(Base):
    __tablename__ = "enrollments"
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint("study_id", "image_sha256", name="uq_case_image"),
        CheckConstraint("truth IN ('real', 'synthetic')", name="ck_case_truth"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), nullable=False, index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    image_path: Mapped[str] = mapped_column(Text, nullable=False)
    image_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    truth: Mapped[str] = mapped_column(String(16), nullable=False)
    method: Mapped[str] = mapped_column(String(100), nullable=False)
    subtype: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    features: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    phash: Mapped[int] = mapped_column(BigInteger, nullable=False)  # signed view of the 64-bit hash


class Item(Base):
    """One question in one reader's ordered list (the assignment)."""

    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("study_id", "reader_id", "position", name="uq_item_position"),
        UniqueConstraint("reader_id", "case_id", "protocol", name="uq_item_case"),
        CheckConstraint("protocol IN (1, 2, 3)", name="ck_item_protocol"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), nullable=False)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id", ondelete="CASCADE"), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    protocol: Mapped[int] = mapped_column(Integer, nullable=False)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), nullable=False)
    options: Mapped[list | None] = mapped_column(JSON, nullable=True)  # protocol 2: case ids shown
    shown_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class Answer(Base):
    __tablename__ = "answers"
    __table_args__ = (
        UniqueConstraint("reader_id", "case_id", "protocol", "question", name="uq_answer_once"),
        CheckConstraint("protocol IN (1, 2, 3)", name="ck_answer_protocol"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # indexed by revision 0004: every request asks which of a reader's items have an answer
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), nullable=False, index=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), nullable=False, index=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id", ondelete="CASCADE"), nullable=False)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), nullable=False)
    protocol: Mapped[int] = mapped_column(Integer, nullable=False)
    question: Mapped[str] = mapped_column(String(32), nullable=False, default="main")
    payload: Mapped[dict] = mapped_column(JSON, nullable=False)
    shown_at: Mapped[float] = mapped_column(Float, nullable=False)
    answered_at: Mapped[float] = mapped_column(Float, nullable=False)
    duration_s: Mapped[float] = mapped_column(Float, nullable=False)
    # added by revision 0002
    revision: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")


class AnswerRevision(Base):
    """Earlier versions of an edited answer (revision 0002): edits never overwrite history."""

    __tablename__ = "answer_revisions"
    __table_args__ = (UniqueConstraint("answer_id", "revision", name="uq_answer_revision"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    answer_id: Mapped[int] = mapped_column(ForeignKey("answers.id", ondelete="CASCADE"), nullable=False)
    revision: Mapped[int] = mapped_column(Integer, nullable=False)
    payload: Mapped[dict] = mapped_column(JSON, nullable=False)
    answered_at: Mapped[float] = mapped_column(Float, nullable=False)
    replaced_at: Mapped[float] = mapped_column(Float, nullable=False)


class Session(Base):
    """A login session of the HTTP API or the in-page admin login; only the token's hash is kept."""

    __tablename__ = "sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id", ondelete="CASCADE"), nullable=False)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    expires_at: Mapped[float] = mapped_column(Float, nullable=False)


class LoginFailure(Base):
    """One wrong password (revision 0003), shared by all app servers for rate limiting."""

    __tablename__ = "login_failures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    at: Mapped[float] = mapped_column(Float, nullable=False)
