"""Store behaviour on a real SQLite file with real DDTI images: studies, order, answers, access."""
from __future__ import annotations

import csv
import io
import json
import shutil
import threading
import time

import pytest
from PIL import Image
from sqlalchemy import select

from tests.fixtures_turing import PASSWORD
from turing_test.errors import (AuthError, DuplicateAnswer, ManifestError, NotFound, PayloadError,
                                PermissionDenied, RateLimited)
from turing_test.manifest import cases_from_folder, load_manifest
from turing_test.assignment import CaseInfo, plan_items
from turing_test.models import Case, Item
from turing_test.ratelimit import LoginRateLimiter
from turing_test.storage import Store


def _answer_all(store, reader, study_id, limit=None):
    n = 0
    while limit is None or n < limit:
        item = store.next_item(reader, study_id)
        if item is None:
            break
        if item["protocol"] == 1:
            payload = {"answer": "synthetic", "confidence": 4}
        elif item["protocol"] == 2:
            payload = {"choice": item["options"][0]}
        else:
            payload = {"features": {f["group"]: True for f in item["features"]}}
        store.submit(reader, study_id, item["item_id"], payload)
        n += 1
    return n


def test_sqlite_runs_wal_with_foreign_keys(turing_store):
    with turing_store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_reader_views_hide_truth_method_and_paths(turing_study, turing_manifest):
    store, study_id, r = turing_study
    text = ""
    while (item := store.next_item(r["jun"], study_id)) is not None:
        text += json.dumps(item)
        _answer_all(store, r["jun"], study_id, limit=1)
    text += json.dumps(store.studies_for(r["jun"]))
    for secret in ("real", "synthetic", "tiger", "coarse", "case_0", str(turing_manifest.parent)):
        assert secret not in text.replace("Real or synthetic", ""), secret


def test_orders_are_seeded_per_reader_and_balanced(turing_study):
    store, study_id, r = turing_study
    with store.Session() as s:
        def order(reader):
            return [(i.protocol, i.case_id) for i in s.scalars(select(Item).where(Item.reader_id == reader.id)
                                                                .order_by(Item.position))]
        jun, sen = order(r["jun"]), order(r["sen"])
        assert sorted(jun) == sorted(sen) and jun != sen
        truths = {c.id: c.truth for c in s.scalars(select(Case))}
    p1 = [truths[c] for p, c in jun if p == 1]
    p1_sen = [truths[c] for p, c in sen if p == 1]
    assert p1.count("real") == p1_sen.count("real") == 6  # every case once (one block of 12)
    assert p1 != p1_sen  # a per-reader shuffle, not one shared truth pattern (issue 18)
    # the same seed and reader give the same order again (reproducible assignment)
    with store.Session() as s:
        cases = [CaseInfo(c.id, c.truth, c.method, c.description, c.features, c.phash) for c in s.scalars(select(Case))]
    again = plan_items([1, 2, 3], cases, {}, 7, r["jun"].id)
    assert [(i.protocol, i.case_id) for i in again] == jun


def test_protocol2_distractors_have_other_descriptions(turing_study):
    store, study_id, r = turing_study
    with store.Session() as s:
        cases = {c.id: c for c in s.scalars(select(Case))}
        items = s.scalars(select(Item).where(Item.reader_id == r["jun"].id, Item.protocol == 2)).all()
    assert items
    for item in items:
        assert len(item.options) == 4 and item.case_id in item.options
        target = cases[item.case_id]
        assert all(cases[o].description != target.description for o in item.options if o != item.case_id)


def test_resume_at_next_unanswered_and_progress(turing_study):
    store, study_id, r = turing_study
    first = store.next_item(r["jun"], study_id)
    assert store.next_item(r["jun"], study_id)["item_id"] == first["item_id"]  # reload: same question
    _answer_all(store, r["jun"], study_id, limit=5)
    nxt = store.next_item(r["jun"], study_id)
    assert nxt["position"] == 5 and nxt["answered"] == 5
    total = nxt["total"]
    assert _answer_all(store, r["jun"], study_id) == total - 5
    assert store.next_item(r["jun"], study_id) is None


def test_double_submit_refused_and_stored_once(turing_study):
    store, study_id, r = turing_study
    item = store.next_item(r["jun"], study_id)
    store.submit(r["jun"], study_id, item["item_id"], {"answer": "real"})
    with pytest.raises(DuplicateAnswer, match="already answered"):
        store.submit(r["jun"], study_id, item["item_id"], {"answer": "synthetic"})
    assert store.count_answers(study_id) == 1
    rows = store.answer_rows(r["ada"], study_id)
    assert rows[0]["payload"] == {"answer": "real"} and rows[0]["duration_s"] >= 0


def test_edits_keep_history_when_allowed(turing_study, turing_manifest):
    store, _, r = turing_study
    sid = store.create_study("editable", load_manifest(turing_manifest), protocols=[1], allow_edits=True,
                             readers=["jun"])
    item = store.next_item(r["jun"], sid)
    a = store.submit(r["jun"], sid, item["item_id"], {"answer": "real"})
    b = store.submit(r["jun"], sid, item["item_id"], {"answer": "synthetic", "confidence": 2})
    assert a["answer_id"] == b["answer_id"] and b["revision"] == 1
    assert store.count_answers(sid) == 1
    hist = store.answer_history(r["ada"], a["answer_id"])
    assert hist == [{"revision": 0, "payload": {"answer": "real"}, "answered_at": hist[0]["answered_at"],
                     "replaced_at": hist[0]["replaced_at"]}]
    assert store.item_for(r["jun"], sid, item["item_id"])["my_answer"] == {"answer": "synthetic", "confidence": 2}


def test_bad_payloads_are_refused_with_reasons(turing_study):
    store, study_id, r = turing_study
    items = {}
    with store.Session() as s:
        for it in s.scalars(select(Item).where(Item.reader_id == r["jun"].id)):
            items.setdefault(it.protocol, it.id)
    cases = [
        (1, {"answer": "maybe"}, "real' or 'synthetic"),
        (1, {"answer": "real", "confidence": 9}, "1 to 5"),
        (1, {"answer": "real", "truth": "x"}, "unexpected field"),
        (1, ["real"], "JSON object"),
        (2, {"choice": "../../etc/passwd"}, "four images"),
        (3, {"features": {"composition": True, "colour": True}}, "unknown feature"),
        (3, {"features": {"composition": True}}, "missing"),
    ]
    for protocol, payload, message in cases:
        with pytest.raises(PayloadError, match=message):
            store.submit(r["jun"], study_id, items[protocol], payload)
    assert store.count_answers() == 0


def test_unassigned_items_and_foreign_studies_are_refused(turing_study, turing_manifest):
    store, study_id, r = turing_study
    with store.Session() as s:
        sen_item = s.scalar(select(Item.id).where(Item.reader_id == r["sen"].id))
    with pytest.raises(NotFound, match="not assigned"):
        store.submit(r["jun"], study_id, sen_item, {"answer": "real"})
    other = store.create_study("other", load_manifest(turing_manifest)[:8], protocols=[1], readers=["sen"])
    for bad in (other, 10**12, -1, True):
        with pytest.raises(NotFound):
            store.next_item(r["jun"], bad)
    sen_other = store.next_item(r["sen"], other)
    with pytest.raises(NotFound):  # the same image under another study's id is not jun's
        store.image_png(r["jun"], sen_other["image"])
    for token in ("../../etc/passwd", "/etc/passwd", "", "x" * 200, "a/b"):
        with pytest.raises(NotFound):
            store.image_png(r["jun"], token)
    assert store.count_answers() == 0


def test_cached_item_facts_do_not_widen_access(turing_study):
    """The per-process item cache (store_reading.ItemFacts) holds what an item asks, not who may
    answer it: a cached item of one reader stays refused to another, and a removed enrollment
    ends access though the facts stay cached."""
    store, study_id, r = turing_study
    sen_item = store.next_item(r["sen"], study_id)  # now cached
    assert sen_item["item_id"] in store._facts_cache
    with pytest.raises(NotFound, match="not assigned"):
        store.submit(r["jun"], study_id, sen_item["item_id"], {"answer": "real"})
    with pytest.raises(NotFound):
        store.item_for(r["jun"], study_id, sen_item["item_id"])
    from turing_test.models import Enrollment
    with store.Session.begin() as s:
        s.query(Enrollment).filter(Enrollment.reader_id == r["sen"].id).delete()
    with pytest.raises(NotFound, match="no such study"):
        store.submit(r["sen"], study_id, sen_item["item_id"], {"answer": "real"})
    assert store.count_answers() == 0


def test_images_are_served_without_metadata(turing_study):
    store, study_id, r = turing_study
    with store.Session() as s:
        synthetic = s.scalars(select(Case).where(Case.truth == "synthetic")).first()
    with Image.open(synthetic.image_path) as original:
        assert "tiger" in original.info  # the fixture's generation parameters are in the file
        pixels = original.convert("L").tobytes()
    png = store.image_png(r["jun"], synthetic.token)
    served = Image.open(io.BytesIO(png))
    assert served.convert("L").tobytes() == pixels
    assert not {k for k in served.info if k not in ("dpi",)} and b"tEXt" not in png and b"eXIf" not in png


def test_admin_only_data_and_deactivation(turing_study):
    store, study_id, r = turing_study
    with pytest.raises(PermissionDenied):
        store.answer_rows(r["jun"], study_id)
    token, _ = store.login("jun", PASSWORD)
    store.set_reader_active("jun", False)
    with pytest.raises(AuthError):
        store.reader_for_token(token)
    with pytest.raises(AuthError):
        store.authenticate("jun", PASSWORD)


def test_wrong_passwords_are_rate_limited_across_servers(turing_study):
    store, _, _ = turing_study
    second_server = Store(store.engine)  # another app server on the same database
    for i in range(store.limiter.max_failures):
        with pytest.raises(AuthError, match="wrong user name or password"):
            (store, second_server)[i % 2].authenticate("sen", "not the password", client="10.0.0.1")
    for server in (store, second_server):
        with pytest.raises(RateLimited, match="try again"):
            server.authenticate("sen", PASSWORD, client="10.0.0.1")  # even the right password waits
    assert store.authenticate("sen", PASSWORD, client="10.0.0.2").username == "sen"  # another address
    assert store.authenticate("jun", PASSWORD, client="10.0.0.1").username == "jun"  # another name
    later = Store(store.engine, LoginRateLimiter(store.engine, clock=lambda: time.time() + 61))
    assert later.authenticate("sen", PASSWORD, client="10.0.0.1").username == "sen"  # the lock has run out
    assert store.authenticate("sen", PASSWORD, client="10.0.0.1").username == "sen"  # success cleared the key


def test_manifest_errors_name_every_bad_row(turing_store, turing_manifest, tmp_path):
    rows = list(csv.DictReader(turing_manifest.open()))
    rows[1]["image"] = "missing.png"
    rows[2]["features"] = json.dumps({"colour": "blue"})
    rows[3]["image"] = rows[0]["image"]  # duplicate image
    rows[4]["truth"] = "fake"
    rows[5]["features"] = "{not json"
    bad = tmp_path / "bad.csv"
    for r in rows:
        r["image"] = str(turing_manifest.parent / r["image"])
    with bad.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(ManifestError) as exc:
        turing_store.create_study("bad", _load_lenient(bad))
    text = str(exc.value)
    for expected in ("row 2", "not found", "row 3", "unknown feature group 'colour'", "row 4", "duplicate image",
                     "row 5", "truth must be"):
        assert expected in text, expected
    with pytest.raises(ManifestError, match="row 6: features unreadable"):
        load_manifest(bad)
    assert turing_store.list_studies() == []
    (tmp_path / "x.json").write_text("{broken")
    with pytest.raises(ManifestError, match="not readable"):
        load_manifest(tmp_path / "x.json")
    with pytest.raises(ManifestError, match="unknown manifest type"):
        load_manifest(_touch(tmp_path / "m.xlsx"))


def _touch(path):
    path.write_text("x")
    return path


def _load_lenient(path):
    """Rows 1-5 of the bad manifest (row 6's unreadable features are tested separately)."""
    lines = path.read_text().splitlines()
    keep = path.with_name("lenient.csv")
    keep.write_text("\n".join(lines[:6]) + "\n")
    return load_manifest(keep)


def test_study_from_generated_batch_and_real_folder(turing_store, turing_manifest, tmp_path):
    from turing_test.manifest import cases_from_generated_batch

    batch = tmp_path / "batch"
    batch.mkdir()
    rows = [r for r in csv.DictReader(turing_manifest.open()) if r["truth"] == "synthetic"]
    records = []
    for r in rows:
        shutil.copy(turing_manifest.parent / r["image"], batch / r["image"])
        records.append({"file": r["image"], "text_fg": r["description"], "model_id": "tiger-tiny",
                        "chips": json.loads(r["features"])})
    (batch / "manifest.json").write_text(json.dumps({"records": records}))
    real = tmp_path / "real"
    real.mkdir()
    for r in csv.DictReader(turing_manifest.open()):
        if r["truth"] == "real":
            shutil.copy(turing_manifest.parent / r["image"], real / r["image"])
    specs = cases_from_generated_batch(batch / "manifest.json", real)
    assert {s.truth for s in specs} == {"real", "synthetic"} and {s.method for s in specs} == {"tiger-tiny", "real"}
    sid = turing_store.create_study("batch", specs, protocols=[1, 3])
    assert sid == 1
    assert len(cases_from_folder(real, "real", "real")) == 6


def test_answered_items_list_own_answers_in_order_with_revisions(turing_study, turing_manifest):
    store, sid, r = turing_study
    assert store.answered_items(r["jun"], sid) == []
    _answer_all(store, r["jun"], sid, limit=3)
    _answer_all(store, r["sen"], sid, limit=1)
    rows = store.answered_items(r["jun"], sid)
    assert [x["position"] for x in rows] == [0, 1, 2] and [x["number"] for x in rows] == [1, 2, 3]
    assert set(rows[0]) == {"item_id", "position", "number", "protocol", "protocol_name", "answered_at", "revision"}
    assert all(x["revision"] == 0 and x["answered_at"] > 0 for x in rows)
    assert len(store.answered_items(r["sen"], sid)) == 1  # scoped to the asking reader
    other = store.create_study("other", load_manifest(turing_manifest)[:4], protocols=[1], readers=["sen"])
    with pytest.raises(NotFound):
        store.answered_items(r["jun"], other)
    editable = store.create_study("editable", load_manifest(turing_manifest), protocols=[1], allow_edits=True,
                                  readers=["jun"])
    _answer_all(store, r["jun"], editable, limit=2)
    first = store.answered_items(r["jun"], editable)[0]
    store.submit(r["jun"], editable, first["item_id"], {"answer": "real"})
    again = store.answered_items(r["jun"], editable)
    assert again[0]["item_id"] == first["item_id"] and again[0]["revision"] == 1
    assert {s["id"]: s["allow_edits"] for s in store.studies_for(r["jun"])} == {sid: False, editable: True}


def _hold_write_lock(db: str, held, release) -> None:
    from turing_test.write_lock import SQLiteWriteLock
    with SQLiteWriteLock(db):
        held.set()
        release.wait(30)


def test_sqlite_write_lock_queues_writers_of_other_processes(tmp_path):
    """Two server processes on one study file take turns: while another process holds the write
    lock, this one waits (no 'database is locked' polling), and gets it as soon as it is let go."""
    import multiprocessing as mp


    from turing_test.write_lock import SQLiteWriteLock

    ctx = mp.get_context("spawn")
    held, release = ctx.Event(), ctx.Event()
    db = str(tmp_path / "turing.sqlite3")
    child = ctx.Process(target=_hold_write_lock, args=(db, held, release))
    child.start()
    try:
        assert held.wait(60)
        lock = SQLiteWriteLock(db)
        timer = threading.Timer(0.5, release.set)
        t0 = time.monotonic()
        timer.start()
        with lock:
            waited = time.monotonic() - t0
        assert 0.4 < waited < 10
        with lock:  # and it can be taken again at once
            pass
    finally:
        release.set()
        child.join(30)
    assert child.exitcode == 0
