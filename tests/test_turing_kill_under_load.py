"""SIGKILL of the API server while 24 readers are submitting at once (issue 17).

After a restart every acknowledged answer must be stored exactly once, and anything stored that
was never acknowledged can only be the one request each reader had in flight, stored whole (a
valid payload at revision 0). Runs on SQLite and on a real PostgreSQL server.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

import pytest

from tests.fixtures_turing import PASSWORD
from turing_test.manifest import load_manifest
from turing_test.simulate import answer_loop, login, setup_study
from turing_test.storage import default_url, open_store
from tests.servers import free_port, spawn_api_server

READERS = 24


def _kill_under_load(tmp_path, manifest, url: str) -> None:
    data = tmp_path / "data"
    store = open_store(url, data_dir=data)
    store.create_reader("ada", PASSWORD, role="admin")
    sid, creds = setup_study(store, load_manifest(manifest), READERS, PASSWORD, protocols=[1, 2, 3])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = spawn_api_server(port, {"TIGER_DB_URL": url, "TIGER_DATA_DIR": str(data)}, log_path=tmp_path / "server.log")
    runs: dict[str, object] = {}
    stop = threading.Event()
    try:
        sessions = {u: login(base, u, p) for u, p in creds}

        def work(user: str) -> None:
            runs[user] = answer_loop(sessions[user], base, user, sid, double_submit_rate=0.2, stop=stop)

        threads = [threading.Thread(target=work, args=(u,)) for u, _ in creds]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while proc.poll() is None and store.count_answers(sid) < 3 * READERS and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # every reader has a request in flight or about to be
        proc.wait()
        stop.set()
        for t in threads:
            t.join(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    store.engine.dispose()
    acked = {u: r.acknowledged for u, r in runs.items()}
    assert sum(len(a) for a in acked.values()) >= 2 * READERS, "the kill came before the load"
    assert all(len(a) < 12 for a in acked.values()), "a reader finished before the kill: not under load"

    proc = spawn_api_server(port, {"TIGER_DB_URL": url, "TIGER_DATA_DIR": str(data)}, log_path=tmp_path / "server.log")
    try:
        store = open_store(url, data_dir=data)
        rows = store.answer_rows(store.authenticate("ada", PASSWORD), sid)
    finally:
        proc.kill()
        proc.wait()
        store.engine.dispose()
    ids = [r["answer_id"] for r in rows]
    assert len(ids) == len(set(ids))
    per_reader = Counter((r["reader"], r["case_id"], r["protocol"], r["question"]) for r in rows)
    assert max(per_reader.values()) == 1, "a question was stored twice"
    stored_by_reader = Counter(r["reader"] for r in rows)
    for user, ids_acked in acked.items():
        assert len(ids_acked) == len(set(ids_acked))
        assert set(ids_acked) <= set(ids), f"{user}: an acknowledged answer was lost"
        assert stored_by_reader[user] - len(ids_acked) in (0, 1), f"{user}: more than the in-flight answer stored"
    for r in rows:  # whole rows only: a validated payload, never a half-applied edit
        assert r["revision"] == 0 and r["payload"] and r["correct"] in (True, False, None) and r["answered_at"]


def test_sigkill_under_load_sqlite(tmp_path, turing_manifest):
    _kill_under_load(tmp_path, turing_manifest, default_url(tmp_path / "data"))


@pytest.mark.postgres
def test_sigkill_under_load_postgres(tmp_path, turing_manifest, postgres_server):
    _kill_under_load(tmp_path, turing_manifest, postgres_server())
