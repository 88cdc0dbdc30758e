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


def _page_inputs(item: dict) -> dict:
    """Widget values a reader might give: one per protocol, so every widget is covered."""
    inputs = {"answer": None, "confidence": None, "choice": None, "present": []}
    if item["protocol"] == 1:
        inputs.update(answer="Synthetic", confidence="2")
    elif item["protocol"] == 2:
        inputs["choice"] = "C"
    else:
        inputs["present"] = [f["label"] for f in item["features"]][:2]
    return inputs


def test_review_opens_earlier_answers_prefilled_and_edits_keep_history(turing_study, turing_manifest):
    from turing_test.errors import NotFound, TuringError
    from turing_test.manifest import load_manifest

    store, pilot, r = turing_study
    sid = store.create_study("editable", load_manifest(turing_manifest), protocols=[1, 2, 3], allow_edits=True,
                             readers=["jun", "sen"])
    assert turing_pages.review_options(store, r["jun"], sid) == {"allow_edits": True, "choices": [], "note": ""}
    given = {}
    while len({i["protocol"] for i in given.values()}) < 3:  # protocols come in blocks: answer into the third
        item = turing_pages.reader_view(store, r["jun"], sid)["item"]
        given[item["item_id"]] = item | {"inputs": _page_inputs(item)}
        turing_pages.submit_answer(store, r["jun"], item, **given[item["item_id"]]["inputs"])
    unanswered = turing_pages.reader_view(store, r["jun"], sid)["item"]
    review = turing_pages.review_options(store, r["jun"], sid)
    assert [iid for _, iid in review["choices"]] == list(given)  # study order
    assert review["choices"][0][0].startswith("Question 1 - ") and "changed" not in review["choices"][0][0]
    for item_id, shown in given.items():  # each answer comes back in the same widgets, all three protocols
        view = turing_pages.review_view(store, r["jun"], sid, item_id)
        assert turing_pages.is_review(view["item"]) and view["progress"].startswith("Reviewing question")
        assert view["inputs"] == shown["inputs"]
        assert ("options" in view) == (view["item"]["protocol"] == 2)

    first = turing_pages.review_view(store, r["jun"], sid, review["choices"][0][1])
    assert turing_pages.submit_edit(store, r["jun"], first["item"], **first["inputs"])["stored"] is False
    changed = _page_inputs(first["item"]) | ({"answer": "Real", "confidence": None}
                                             if first["item"]["protocol"] == 1 else
                                             {"choice": "A"} if first["item"]["protocol"] == 2 else {"present": []})
    saved = turing_pages.submit_edit(store, r["jun"], first["item"], **changed)
    assert saved["stored"] and saved["revision"] == 1
    assert turing_pages.review_view(store, r["jun"], sid, first["item"]["item_id"])["inputs"] == changed
    assert "changed 1x" in turing_pages.review_options(store, r["jun"], sid)["choices"][0][0]
    history = store.answer_history(r["ada"], saved["answer_id"])
    old = turing_pages.payload_from_inputs(first["item"], **given[first["item"]["item_id"]]["inputs"])
    assert [(h["revision"], h["payload"]) for h in history] == [(0, old)]
    assert store.count_answers(sid) == len(given)  # an edit replaces, it never adds a second answer
    assert turing_pages.reader_view(store, r["jun"], sid)["item"]["item_id"] == unanswered["item_id"]  # back in place

    with pytest.raises(TuringError, match="not answered yet"):
        turing_pages.review_view(store, r["jun"], sid, unanswered["item_id"])
    with pytest.raises(TuringError, match="choose one"):
        turing_pages.review_view(store, r["jun"], sid, None)
    sen_item = store.next_item(r["sen"], sid)
    store.submit(r["sen"], sid, sen_item["item_id"], {"answer": "real"} if sen_item["protocol"] == 1 else
                 {"choice": sen_item["options"][0]} if sen_item["protocol"] == 2 else
                 {"features": {f["group"]: True for f in sen_item["features"]}})
    with pytest.raises(NotFound):  # another reader's answered question stays theirs
        turing_pages.review_view(store, r["jun"], sid, sen_item["item_id"])


def test_review_is_refused_where_answers_are_final(turing_study):
    store, sid, r = turing_study
    view = turing_pages.reader_view(store, r["jun"], sid)
    turing_pages.submit_answer(store, r["jun"], view["item"], **_page_inputs(view["item"]))
    review = turing_pages.review_options(store, r["jun"], sid)
    assert review == {"allow_edits": False, "choices": [], "note": turing_pages.FINAL_NOTE}
    with pytest.raises(PermissionDenied, match="final"):
        turing_pages.review_view(store, r["jun"], sid, view["item"]["item_id"])
    assert turing_pages.review_options(store, r["jun"], None)["note"] == ""
