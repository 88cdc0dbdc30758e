"""Schema upgrades keep a running study's answers: a database made at revision 0001 (the previous
schema) with answers in it is upgraded to head, and the answers and the reader's place survive."""
from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import text

from turing_test.auth import hash_password
from turing_test.errors import DuplicateAnswer
from turing_test.storage import Store, current_revision, make_engine, upgrade

PASSWORD = "previous schema pw"


def _fill_previous_schema(engine) -> None:
    now = time.time()
    with engine.begin() as c:
        c.execute(text("INSERT INTO readers (id, username, password_hash, role, years_experience, active, created_at) "
                       "VALUES (1, 'old', :h, 'senior', 9, :t, :now), (2, 'boss', :h, 'admin', 20, :t, :now)"),
                  {"h": hash_password(PASSWORD), "t": True, "now": now})
        c.execute(text("INSERT INTO studies (id, name, description, protocols, design, seed, active, created_at) "
                       "VALUES (1, 'running', '', :p, :d, 0, :t, :now)"),
                  {"p": json.dumps([1]), "d": json.dumps({}), "t": True, "now": now})
        c.execute(text("INSERT INTO enrollments (study_id, reader_id, created_at) VALUES (1, 1, :now)"), {"now": now})
        for i in (1, 2, 3):
            c.execute(text("INSERT INTO cases (id, study_id, token, image_path, image_sha256, truth, method, subtype, "
                           "description, features, phash) VALUES (:i, 1, :tok, '/nonexistent.png', :sha, :truth, 'm', "
                           "'', '', :f, :ph)"),
                      {"i": i, "tok": f"tok{i}", "sha": f"{i:064d}", "truth": "real" if i % 2 else "synthetic",
                       "f": json.dumps({}), "ph": -(2**62) * i // 3})
            c.execute(text("INSERT INTO items (id, study_id, reader_id, position, protocol, case_id, shown_at) "
                           "VALUES (:i, 1, 1, :pos, 1, :i, :now)"), {"i": i, "pos": i - 1, "now": now})
        for i in (1, 2):
            c.execute(text("INSERT INTO answers (item_id, study_id, reader_id, case_id, protocol, question, payload, "
                           "shown_at, answered_at, duration_s) VALUES (:i, 1, 1, :i, 1, 'main', :p, :now, :now, 1.5)"),
                      {"i": i, "p": json.dumps({"answer": "real"}), "now": now})


def _check_upgrade(url: str) -> None:
    engine = make_engine(url)
    upgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    _fill_previous_schema(engine)
    upgrade(engine)
    assert current_revision(engine) == "0004"
    from sqlalchemy import inspect
    assert "ix_answers_item_id" in {ix["name"] for ix in inspect(engine).get_indexes("answers")}
    store = Store(engine)
    boss = store.authenticate("boss", PASSWORD)
    rows = store.answer_rows(boss, 1)
    assert [(r["case_id"], r["payload"], r["revision"], r["duration_s"]) for r in rows] == \
        [(1, {"answer": "real"}, 0, 1.5), (2, {"answer": "real"}, 0, 1.5)]
    old = store.authenticate("old", PASSWORD)
    nxt = store.next_item(old, 1)
    assert nxt["item_id"] == 3 and nxt["answered"] == 2  # the reader resumes where they were
    with pytest.raises(DuplicateAnswer):  # allow_edits defaulted to false for the running study
        store.submit(old, 1, 1, {"answer": "synthetic"})
    store.submit(old, 1, 3, {"answer": "synthetic"})
    assert store.count_answers(1) == 3
    engine.dispose()


def test_upgrade_keeps_answers_sqlite(tmp_path):
    _check_upgrade(f"sqlite:///{tmp_path / 'old.sqlite3'}")


@pytest.mark.postgres
def test_upgrade_keeps_answers_postgres(postgres_server):
    _check_upgrade(postgres_server())
