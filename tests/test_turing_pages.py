"""The functions behind the reader app and the Results tab, without a browser, plus the app wiring."""
from __future__ import annotations

import pytest

from tests.fixtures_turing import PASSWORD
from turing_test.errors import PayloadError, PermissionDenied
from ui import results_page, turing_pages


def test_reader_view_and_submit_through_page_functions(turing_study):
    store, sid, r = turing_study
    assert turing_pages.study_choices(store, r["jun"]) == [("pilot (0/24 answered)", sid)]
    seen = set()
    while not (view := turing_pages.reader_view(store, r["jun"], sid))["done"]:
        item = view["item"]
        seen.add(item["protocol"])
        if item["protocol"] == 2:
            assert len(view["options"]) == 4 and all(im.size == (128, 128) for im in view["options"])
            with pytest.raises(PayloadError):  # nothing chosen
                turing_pages.submit_answer(store, r["jun"], item, answer=None, confidence=None, choice=None, present=None)
            kwargs = {"choice": "B"}
        elif item["protocol"] == 3:
            labels = [f["label"] for f in item["features"]]
            kwargs = {"present": labels[:3]}
        else:
            assert view["image"].size == (128, 128)
            kwargs = {"answer": "Real", "confidence": "4"}
        turing_pages.submit_answer(store, r["jun"], item, **{"answer": None, "confidence": None, "choice": None,
                                                             "present": None, **kwargs})
    assert seen == {1, 2, 3} and "All questions" in view["message"]
    rows = store.answer_rows(r["ada"], sid)
    p3 = [x for x in rows if x["protocol"] == 3][0]["payload"]["features"]
    assert list(p3.values())[:3] == [True] * 3 and not any(list(p3.values())[3:])
    assert {x["payload"].get("confidence") for x in rows if x["protocol"] == 1} == {4}


def test_results_page_is_admin_only_and_exports(turing_study, tmp_path):
    store, sid, r = turing_study
    with pytest.raises(PermissionDenied):
        results_page.admin_login(store, "jun", PASSWORD)
    token = results_page.admin_login(store, "ada", PASSWORD)
    item = store.next_item(r["sen"], sid)
    store.submit(r["sen"], sid, item["item_id"], {"answer": "real"})
    res = results_page.load_results(store, token, sid, tmp_path)
    assert "1 answers" in res["markdown"] and res["table"][0][:3] == ["1", "overall", "all"]
    assert res["paths"]["accuracy_png"].exists()
    msg = results_page.admin_create_reader(store, token, "newbie", "long password", "junior", 1)
    assert "newbie" in msg
    assert "deactivated" in results_page.admin_set_active(store, token, "newbie", False)


def test_app_mounts_reader_app_and_api(tmp_path):
    from fastapi.testclient import TestClient

    from ui.server import create_app

    client = TestClient(create_app(data_dir=tmp_path))
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/api/turing/studies").status_code == 401
    r = client.get("/study/config")
    assert r.status_code == 401 and "Not authenticated" in r.text  # the reader app needs a login
