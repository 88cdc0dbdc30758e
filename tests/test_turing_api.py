"""The HTTP API: what a reader can and cannot reach by editing ids or paths, admin-only routes,
rate-limited logins and clear errors. Runs the real FastAPI routes in-process."""
from __future__ import annotations

import io
import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from tests.fixtures_turing import PASSWORD
from ui.context import AppContext
from ui.turing_api import register


@pytest.fixture
def api(turing_study, tmp_path):
    store, study_id, readers = turing_study
    ctx = AppContext(data_dir=tmp_path)
    ctx._store = store
    app = FastAPI()
    register(app, ctx)
    client = TestClient(app)

    def login(user: str) -> dict:
        r = client.post("/api/turing/login", json={"username": user, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    return client, login, store, study_id


def test_reader_flow_and_no_leaks(api):
    client, login, store, sid = api
    jun = login("jun")
    assert [s["id"] for s in client.get("/api/turing/studies", headers=jun).json()] == [sid]
    item = client.get(f"/api/turing/studies/{sid}/next", headers=jun).json()
    img = client.get(f"/api/turing/images/{item['image']}", headers=jun)
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    assert not Image.open(io.BytesIO(img.content)).text
    body = {"item_id": item["item_id"], "payload": {"answer": "real", "confidence": 3}}
    r = client.post(f"/api/turing/studies/{sid}/answers", json=body, headers=jun)
    assert r.status_code == 201
    r2 = client.post(f"/api/turing/studies/{sid}/answers", json=body, headers=jun)
    assert r2.status_code == 409 and "already answered" in r2.json()["error"]
    assert store.count_answers(sid) == 1
    text = (json.dumps(item) + client.get(f"/api/turing/studies/{sid}/next", headers=jun).text).replace(
        "Real or synthetic", "")
    for secret in ('"truth"', '"method"', "synthetic", ".png", "case_0"):
        assert secret not in text


def test_ids_and_paths_cannot_reach_other_data(api, turing_manifest):
    from turing_test.manifest import load_manifest

    client, login, store, sid = api
    other = store.create_study("other", load_manifest(turing_manifest)[:6], protocols=[1], readers=["sen"])
    sen, jun = login("sen"), login("jun")
    sen_item = client.get(f"/api/turing/studies/{other}/next", headers=sen).json()
    sen_main = client.get(f"/api/turing/studies/{sid}/next", headers=sen).json()
    assert client.get(f"/api/turing/studies/{other}/next", headers=jun).status_code == 404
    assert client.get(f"/api/turing/studies/{sid}/items/{sen_main['item_id']}", headers=jun).status_code == 404
    r = client.post(f"/api/turing/studies/{sid}/answers", headers=jun,
                    json={"item_id": sen_main["item_id"], "payload": {"answer": "real"}})
    assert r.status_code == 404 and "not assigned" in r.json()["error"]
    r = client.post(f"/api/turing/studies/{other}/answers", headers=jun,
                    json={"item_id": sen_item["item_id"], "payload": {"answer": "real"}})
    assert r.status_code == 404
    assert client.get(f"/api/turing/images/{sen_item['image']}", headers=jun).status_code == 404
    for path in ("..%2F..%2Fetc%2Fpasswd", "../../etc/passwd", "%2Fetc%2Fpasswd", "/etc/passwd",
                 str(turing_manifest.parent / "case_000.png"), "case_000.png", "1", "..", "%2e%2e"):
        r = client.get(f"/api/turing/images/{path}", headers=jun)
        assert r.status_code == 404, path
        assert b"root:" not in r.content and not r.content.startswith(b"\x89PNG")
    client.cookies.clear()
    assert client.get(f"/api/turing/studies/{sid}/next").status_code == 401  # no token
    assert client.get(f"/api/turing/studies/{sid}/next", headers={"Authorization": "Bearer forged"}).status_code == 401
    assert store.count_answers() == 0


def test_admin_routes_refuse_readers(api):
    client, login, _, sid = api
    jun = login("jun")
    for method, url in (("get", "/api/turing/admin/readers"), ("get", "/api/turing/admin/studies"),
                        ("get", f"/api/turing/admin/studies/{sid}/answers"),
                        ("get", f"/api/turing/admin/studies/{sid}/summary"),
                        ("post", "/api/turing/admin/readers"), ("post", f"/api/turing/admin/studies/{sid}/enroll")):
        kwargs = {"json": {"username": "x", "password": "y" * 10, "readers": ["jun"]}} if method == "post" else {}
        r = getattr(client, method)(url, headers=jun, **kwargs)
        assert r.status_code == 403, url
        assert "only an admin" in r.json()["error"]


def test_admin_manages_readers_studies_and_exports(api, turing_manifest, tmp_path):
    client, login, store, sid = api
    ada = login("ada")
    r = client.post("/api/turing/admin/readers", headers=ada,
                    json={"username": "new", "password": "long enough", "role": "senior", "years_experience": 4})
    assert r.status_code == 201
    r = client.post("/api/turing/admin/readers", headers=ada, json={"username": "new2", "password": "short"})
    assert r.status_code == 400 and "at least 8" in r.json()["error"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image": "nope.png", "truth": "real", "method": "real"},
                               {"image": str(turing_manifest.parent / "case_000.png"), "truth": "fake", "method": "x",
                                "features": {"halo": "purple"}}]))
    r = client.post("/api/turing/admin/studies", headers=ada, json={"name": "bad", "manifest": str(bad)})
    assert r.status_code == 400
    err = r.json()["error"]
    assert "row 1" in err and "not found" in err and "row 2" in err and "'purple'" in err and "truth must be" in err
    r = client.post("/api/turing/admin/studies", headers=ada,
                    json={"name": "seedless", "manifest": str(turing_manifest), "seed": "abc", "protocols": 7})
    assert r.status_code == 422 and "seed: " in r.json()["error"] and "protocols: " in r.json()["error"]
    r = client.post("/api/turing/admin/studies", headers=ada,
                    json={"name": "new study", "manifest": str(turing_manifest), "protocols": [1], "readers": ["new"]})
    assert r.status_code == 201
    r = client.post("/api/turing/admin/readers/new/active", headers=ada, json={"active": False})
    assert r.status_code == 200
    assert client.post("/api/turing/login", json={"username": "new", "password": "long enough"}).status_code == 401
    jun = login("jun")
    item = client.get(f"/api/turing/studies/{sid}/next", headers=jun).json()
    client.post(f"/api/turing/studies/{sid}/answers", headers=jun, json={"item_id": item["item_id"],
                                                                          "payload": {"answer": "synthetic"}})
    csv_text = client.get(f"/api/turing/admin/studies/{sid}/answers?format=csv", headers=ada).text
    assert csv_text.splitlines()[0].startswith("answer_id,") and len(csv_text.splitlines()) == 2
    summary = client.get(f"/api/turing/admin/studies/{sid}/summary", headers=ada).json()
    assert summary["protocols"]["1"]["overall"]["n"] == 1


def test_bad_requests_get_clear_errors(api):
    client, login, store, sid = api
    jun = login("jun")
    item = client.get(f"/api/turing/studies/{sid}/next", headers=jun).json()
    url = f"/api/turing/studies/{sid}/answers"
    r = client.post(url, headers=jun, json={"payload": {"answer": "real"}})
    assert r.status_code == 422 and "item_id: Field required" in r.json()["error"]
    r = client.post(url, headers=jun, json={"item_id": item["item_id"], "payload": {"answer": "perhaps"}})
    assert r.status_code == 422 and "'real' or 'synthetic'" in r.json()["error"]
    r = client.post(url, headers=jun, content=b"{not json", )
    assert r.status_code == 422
    assert client.get("/api/turing/studies/abc/next", headers=jun).status_code == 422
    assert store.count_answers() == 0


def test_wrong_passwords_are_rate_limited_over_http(api):
    client, _, _, _ = api
    codes = [client.post("/api/turing/login", json={"username": "sen", "password": "guess%d" % i}).status_code
             for i in range(7)]
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]
    r = client.post("/api/turing/login", json={"username": "sen", "password": PASSWORD})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0 and "try again" in r.json()["error"]


def test_answered_route_lists_own_answers_only(api, turing_manifest):
    from turing_test.manifest import load_manifest

    client, login, store, sid = api
    jun, sen = login("jun"), login("sen")
    url = f"/api/turing/studies/{sid}/answered"
    assert client.get(url, headers=jun).json() == []
    for _ in range(2):
        item = client.get(f"/api/turing/studies/{sid}/next", headers=jun).json()
        payload = ({"answer": "real"} if item["protocol"] == 1 else {"choice": item["options"][0]}
                   if item["protocol"] == 2 else {"features": {f["group"]: False for f in item["features"]}})
        r = client.post(f"/api/turing/studies/{sid}/answers", headers=jun, json={"item_id": item["item_id"],
                                                                               "payload": payload})
        assert r.status_code == 201, r.text
    rows = client.get(url, headers=jun).json()
    assert [x["number"] for x in rows] == [1, 2] and rows[1]["item_id"] == item["item_id"]
    for secret in ('"truth"', '"method"', '"payload"', "synthetic", ".png"):
        assert secret not in json.dumps(rows).replace("Real or synthetic", "")
    assert client.get(url, headers=sen).json() == []  # another reader sees only their own
    other = store.create_study("other", load_manifest(turing_manifest)[:4], protocols=[1], readers=["sen"])
    assert client.get(f"/api/turing/studies/{other}/answered", headers=jun).status_code == 404
    client.cookies.clear()
    assert client.get(url).status_code == 401
