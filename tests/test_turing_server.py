"""The API served by uvicorn in a real subprocess: SIGKILL in the middle of a study loses no
acknowledged answer and the reader resumes at the next unanswered case; concurrent readers
(with double clicks) store every answer exactly once."""
from __future__ import annotations

import os
import signal
import threading
import time

import requests

from tests.fixtures_turing import PASSWORD
from turing_test.manifest import load_manifest
from turing_test.simulate import run_reader, run_readers, setup_study
from turing_test.storage import default_url, open_store
from tests.servers import free_port, spawn_api_server


def _server(tmp_path, port):
    env = {"TIGER_DB_URL": default_url(tmp_path / "data"), "TIGER_DATA_DIR": str(tmp_path / "data")}
    return spawn_api_server(port, env, log_path=tmp_path / "server.log")


def test_sigkill_loses_no_acknowledged_answer(tmp_path, turing_manifest):
    store = open_store(None, data_dir=tmp_path / "data")
    store.create_reader("ada", PASSWORD, role="admin")
    sid, creds = setup_study(store, load_manifest(turing_manifest), 1, PASSWORD, protocols=[1, 3])
    store.engine.dispose()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _server(tmp_path, port)
    try:
        stop = threading.Event()
        worker_run = {}

        def work():
            worker_run["run"] = run_reader(base, creds[0][0], PASSWORD, sid, double_submit_rate=0.0, stop=stop)

        t = threading.Thread(target=work)
        t.start()
        watcher = open_store(None, data_dir=tmp_path / "data", migrate=False)
        while proc.poll() is None and watcher.count_answers(sid) < 6:
            time.sleep(0.02)
        watcher.engine.dispose()
        os.kill(proc.pid, signal.SIGKILL)  # mid-study: requests are in flight
        proc.wait()
        stop.set()
        t.join(60)
        acked = worker_run["run"].acknowledged
        assert len(acked) >= 5
    finally:
        if proc.poll() is None:
            proc.kill()
    proc = _server(tmp_path, port)
    try:
        store = open_store(None, data_dir=tmp_path / "data")
        ada = store.authenticate("ada", PASSWORD)
        rows = store.answer_rows(ada, sid)
        stored = {r["answer_id"] for r in rows}
        assert set(acked) <= stored and len(stored) == len(rows)
        http = requests.Session()
        token = http.post(f"{base}/api/turing/login", json={"username": creds[0][0], "password": PASSWORD}).json()["token"]
        http.headers["Authorization"] = f"Bearer {token}"
        nxt = http.get(f"{base}/api/turing/studies/{sid}/next").json()
        assert nxt["answered"] == len(rows) and nxt["position"] == len(rows)  # resumes at the next unanswered
        run = run_reader(base, creds[0][0], PASSWORD, sid, double_submit_rate=0.0)
        assert not run.errors and store.count_answers(sid) == nxt["total"]
    finally:
        proc.kill()
        proc.wait()


def test_concurrent_readers_store_each_answer_once(tmp_path, turing_manifest):
    store = open_store(None, data_dir=tmp_path / "data")
    sid, creds = setup_study(store, load_manifest(turing_manifest), 10, PASSWORD)
    port = free_port()
    proc = _server(tmp_path, port)
    try:
        runs, wall = run_readers(f"http://127.0.0.1:{port}", creds, sid, max_answers=8, double_submit_rate=0.3)
    finally:
        proc.kill()
        proc.wait()
    assert not [e for r in runs for e in r.errors]
    acked = [a for r in runs for a in r.acknowledged]
    assert len(acked) == 80 == len(set(acked)) == store.count_answers(sid)
    assert sum(r.duplicates_refused for r in runs) > 0
