"""Issue 17.5: hostile input, swept over every reader and admin route and every upload endpoint
of the running app (`ui.server.create_app` under uvicorn, micro model, SQLite store), over HTTP.

Each request must get a clear 4xx (a JSON {"error"} or FastAPI's 422 detail, a Gradio error
event with a message), never a stack trace, a server path or a case's truth, and the server must
answer /health afterwards. Values that are legitimately free text (a password, a study name) may
also be accepted; they must then not leak anything either.
"""
from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.fixtures_turing import PASSWORD
from tiger.paths import PROJECT_ROOT, SHARED_DATA

API = "/api/turing"
#: what must never appear in an answer to a hostile request
LEAKS = ("Traceback", 'File "', "sqlalchemy", "Internal Server Error", str(PROJECT_ROOT), "image_path",
         '"truth"', "root:x:0:0")
TRAVERSAL = ["../", "../../../../etc/passwd", "..%2f..%2fetc%2fpasswd", "%2e%2e/%2e%2e/etc/passwd",
             "....//....//etc/passwd", "..\\..\\windows\\win.ini", "/etc/passwd", str(PROJECT_ROOT / "app.py"),
             "file:///etc/passwd", "\x00", "a" * 5000]
WRONG_TYPES = [None, True, -1, 2**70, 1e308, "", "x", [], {}, [1, "a"], {"$gt": ""}]
MALFORMED = ['{"username": ', "not json at all", "[]", '"a string"', "123", "null", "{'single': 'quotes'}",
             '{"a": 1}' + "}" * 3, "\xff\xfe garbage"]
PATH_VALUES = ["..", "%2e%2e", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "-1", "0", "1.5",
               "99999999999999999999999", "%00", "a%20b", "%252e%252e"]


def _bearer(client: httpx.Client, user: str) -> dict:
    r = client.post(f"{API}/login", json={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _no_leak(r: httpx.Response, what, sent: object = None) -> None:
    """No marker in the answer, except inside what the client sent itself (an echoed name)."""
    body = r.text
    for marker in LEAKS:
        if isinstance(sent, str) and marker in sent:
            body = body.replace(json.dumps(sent)[1:-1], "")
        assert marker not in body, (what, marker, body[:300])


def _clear_4xx(r: httpx.Response, what, sent: object = None) -> None:
    assert 400 <= r.status_code < 500, (what, r.status_code, r.text[:300])
    _no_leak(r, what, sent)
    if r.headers.get("content-type", "").startswith("application/json"):
        body = r.json()
        assert isinstance(body, dict) and (body.get("error") or body.get("detail")), (what, body)


def _alive(client: httpx.Client) -> None:
    assert client.get("/health").json()["status"] == "ok"


@pytest.fixture(scope="module")
def app(ui_server, turing_manifest):
    """(client, store, ids): an admin, readers h-r1 and h-r2 in a protocol 1+2+3 study, and a
    protocol-1 study only h-r1 is in (its image tokens are someone else's for h-r2)."""
    store = ui_server.app.state.ctx.store()
    store.create_reader("h-admin", PASSWORD, role="admin")
    for name in ("h-r1", "h-r2"):
        store.create_reader(name, PASSWORD, role="junior")
    with httpx.Client(base_url=ui_server.url, timeout=60) as client:
        admin = _bearer(client, "h-admin")
        r = client.post(f"{API}/admin/studies", headers=admin, json={
            "name": "hostile", "manifest": str(turing_manifest), "protocols": [1, 2, 3], "seed": 1,
            "readers": ["h-r1", "h-r2"], "allow_edits": True})
        assert r.status_code == 201, r.text
        shared = r.json()["id"]
        r = client.post(f"{API}/admin/studies", headers=admin, json={
            "name": "r1 only", "manifest": str(turing_manifest), "protocols": [1], "readers": ["h-r1"]})
        assert r.status_code == 201, r.text
        private = r.json()["id"]
        r1, r2 = _bearer(client, "h-r1"), _bearer(client, "h-r2")
        item1 = client.get(f"{API}/studies/{shared}/next", headers=r1).json()
        private_item = client.get(f"{API}/studies/{private}/next", headers=r1).json()
        yield client, store, {"admin": admin, "r1": r1, "r2": r2, "shared": shared, "private": private,
                              "item1": item1, "private_item": private_item}


def _body_routes(ids: dict) -> list[tuple[str, dict | None, dict]]:
    """(path, auth headers, a valid body) of every JSON-body route."""
    s, item = ids["shared"], ids["item1"]
    return [
        (f"{API}/login", None, {"username": "h-r1", "password": PASSWORD}),
        (f"{API}/studies/{s}/answers", ids["r2"], {"item_id": item["item_id"], "payload": {"answer": "real", "confidence": 3}}),
        (f"{API}/admin/readers", ids["admin"], {"username": "h-new", "password": PASSWORD, "role": "junior",
                                                 "years_experience": 3}),
        (f"{API}/admin/readers/h-r2/active", ids["admin"], {"active": True}),
        (f"{API}/admin/studies", ids["admin"], {"name": "x", "manifest": "m.csv", "protocols": [1], "seed": 0,
                                                 "readers": [], "design": {}, "description": "d",
                                                 "generated_batch": "", "folders": [], "allow_edits": False}),
        (f"{API}/admin/studies/{s}/enroll", ids["admin"], {"readers": ["h-r2"]}),
    ]


def test_malformed_json_and_non_object_bodies_get_a_clear_4xx(app):
    client, _, ids = app
    for path, auth, _ in _body_routes(ids):
        for raw in MALFORMED:
            r = client.post(path, content=raw.encode("utf-8", "surrogateescape"),
                            headers={**(auth or {}), "Content-Type": "application/json"})
            _clear_4xx(r, (path, raw))
        r = client.post(path, headers=auth or {})  # no body at all
        _clear_4xx(r, (path, "no body"))
    _alive(client)


def _variants(body: dict):
    """(field, body, bad value, valid value) over every top-level field and every field of a nested payload."""
    for key, valid in body.items():
        for value in WRONG_TYPES + TRAVERSAL:
            yield key, {**body, key: value}, value, valid
    for key, sub in body.items():
        if isinstance(sub, dict):
            for k2, valid in sub.items():
                for value in WRONG_TYPES + TRAVERSAL:
                    yield f"{key}.{k2}", {**body, key: {**sub, k2: value}}, value, valid


def _same_kind(a, b) -> bool:
    """JSON kinds: a bool is not a number, an int and a float are both numbers."""
    kind = lambda v: "bool" if isinstance(v, bool) else "number" if isinstance(v, (int, float)) else type(v).__name__  # noqa: E731
    return kind(a) == kind(b)


def test_wrong_types_and_traversal_in_every_body_field(app):
    """A value of the wrong JSON kind is a clear 4xx; one of the right kind (a traversal string
    as a user name) may be accepted where the field allows it, but never errors or leaks."""
    client, store, ids = app
    answers_before = store.count_answers(ids["shared"])
    for path, auth, body in _body_routes(ids):
        for field, bad, value, valid in _variants(body):
            r = client.post(path, json=bad, headers=auth or {})
            if _same_kind(value, valid) and r.status_code < 400:
                assert r.status_code in (200, 201), (path, field, value, r.status_code)
                _no_leak(r, (path, field, value), value)
                continue
            _clear_4xx(r, (path, field, value), value)
        _alive(client)
    # the only answer bodies were h-r2's for h-r1's item: nothing was stored
    assert store.count_answers(ids["shared"]) == answers_before


def test_traversal_and_junk_in_every_path_parameter(app):
    client, _, ids = app
    s, item = ids["shared"], ids["item1"]["item_id"]
    templates = [f"{API}/studies/{{v}}/next", f"{API}/studies/{{v}}/answered", f"{API}/studies/{s}/items/{{v}}",
                 f"{API}/studies/{{v}}/items/{item}", f"{API}/images/{{v}}", f"{API}/admin/studies/{{v}}/answers",
                 f"{API}/admin/studies/{{v}}/summary"]
    for template in templates:
        auth = ids["admin"] if "/admin/" in template else ids["r1"]
        for v in PATH_VALUES:
            r = client.get(template.format(v=v), headers=auth)
            _clear_4xx(r, (template, v))
    for v in PATH_VALUES:
        for path in (f"{API}/studies/{v}/answers", f"{API}/admin/studies/{v}/enroll", f"{API}/admin/readers/{v}/active"):
            auth = ids["admin"] if "/admin/" in path else ids["r1"]
            r = client.post(path, headers=auth, json={"item_id": item, "payload": {"answer": "real"},
                                                     "readers": ["h-r2"], "active": True})
            _clear_4xx(r, (path, v))
    r = client.get(f"{API}/admin/studies/{s}/answers", params={"format": "../../etc/passwd"}, headers=ids["admin"])
    assert r.status_code in (200, 400, 422) and r.headers["content-type"].startswith("application/json")
    _alive(client)


def test_other_readers_items_and_image_tokens_are_not_theirs(app):
    client, store, ids = app
    s, p = ids["shared"], ids["private"]
    mine = ids["item1"]
    theirs = client.get(f"{API}/studies/{s}/next", headers=ids["r2"]).json()
    assert theirs["item_id"] != mine["item_id"]
    r = client.get(f"{API}/studies/{s}/items/{mine['item_id']}", headers=ids["r2"])
    _clear_4xx(r, "r2 reads r1's item")
    before = store.count_answers(s)
    r = client.post(f"{API}/studies/{s}/answers", headers=ids["r2"],
                    json={"item_id": mine["item_id"], "payload": {"answer": "real"}})
    _clear_4xx(r, "r2 answers r1's item")
    assert store.count_answers(s) == before
    private = ids["private_item"]
    for path in (f"{API}/studies/{p}/next", f"{API}/studies/{p}/answered", f"{API}/studies/{p}/items/{private['item_id']}",
                 f"{API}/images/{private['image']}"):
        _clear_4xx(client.get(path, headers=ids["r2"]), ("r2 in r1's private study", path))
    assert client.get(f"{API}/images/{private['image']}", headers=ids["r1"]).status_code == 200
    with httpx.Client(base_url=client.base_url, timeout=60) as anonymous:  # no login cookie
        for path in (f"{API}/admin/readers", f"{API}/admin/studies", f"{API}/admin/studies/{s}/answers",
                     f"{API}/admin/studies/{s}/summary"):
            r = client.get(path, headers=ids["r1"])
            assert r.status_code == 403, (path, r.status_code)
            _no_leak(r, path)
            assert anonymous.get(path).status_code == 401
        for bad in ({"Authorization": "Bearer " + "x" * 64}, {"Authorization": "Bearer ../../etc/passwd"},
                    {"Authorization": "Basic aDpw"}, {"Cookie": "tiger_turing=%2e%2e"}):
            _clear_4xx(anonymous.get(f"{API}/me", headers=bad), bad)
    _alive(client)


# ------------------------------------------------------------------ Gradio uploads and file routes
def _png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _bad_files() -> dict[str, tuple[str, bytes]]:
    real = Image.open(sorted((SHARED_DATA / "ddti" / "images").glob("*.jpg"))[0]).convert("L")
    whole = _png_bytes(real)
    return {
        "non-image": ("scan.png", b"%PDF-1.4 this is a document, not pixels\n" * 50),
        "50-megapixel image": ("huge.png", _png_bytes(Image.new("L", (7072, 7072), 0))),
        "truncated PNG": ("cut.png", whole[: len(whole) // 2]),
        "empty file": ("empty.png", b""),
        "wrong-size mask": ("mask.png", _png_bytes(Image.new("L", (17, 400), 255))),
    }


def _call(client: httpx.Client, endpoint: str, data: list) -> str:
    r = client.post(f"/gradio_api/call{endpoint}", json={"data": data})
    assert r.status_code == 200, r.text
    return client.get(f"/gradio_api/call{endpoint}/{r.json()['event_id']}").text


FILE_ENDPOINTS = ("/reference_upload", "/reference_mask", "/recall_png", "/derive_background", "/custom_mask")


def test_bad_files_on_every_upload_endpoint_get_a_clear_message(app):
    client, _, _ = app
    info = client.get("/gradio_api/info").json()["named_endpoints"]
    for kind, (name, payload) in _bad_files().items():
        up = client.post("/gradio_api/upload", files={"files": (name, payload, "image/png")})
        assert up.status_code == 200, (kind, up.text)
        fd = {"path": up.json()[0], "meta": {"_type": "gradio.FileData"}, "orig_name": name}
        for endpoint in FILE_ENDPOINTS:
            params = info[endpoint]["parameters"]
            data = []
            for p in params:
                if "FileData" in json.dumps(p.get("type", {})) or "filepath" in json.dumps(p.get("python_type", {})):
                    data.append({"background": fd, "layers": [], "composite": fd}
                                if p["component"].lower() == "imageeditor" else fd)
                else:
                    data.append(p.get("parameter_default"))
            text = _call(client, endpoint, data)
            if kind == "wrong-size mask" and endpoint not in ("/reference_mask", "/custom_mask"):
                continue  # a valid small image elsewhere; the size matters for masks only
            assert "event: error" in text and "event: complete" not in text, (kind, endpoint, text[:300])
            message = text.split("event: error", 1)[1]
            assert "Traceback" not in message and str(PROJECT_ROOT) not in message, (kind, endpoint, message)
            assert '"message": null' not in message and len(message) > 20, (kind, endpoint, message)
        _alive(client)


def test_gradio_file_routes_serve_nothing_outside_the_app_folders(app):
    client, _, _ = app
    targets = ["/etc/passwd", str(PROJECT_ROOT / "app.py"), str(PROJECT_ROOT / "models" / "tiger-tiny-ddti"
                                                                 / "unet" / "config.json"),
               "../../../../etc/passwd", "..%2f..%2f..%2fetc%2fpasswd", "%2e%2e/%2e%2e/etc/passwd",
               str(SHARED_DATA / "ddti" / "images" / "100_1.jpg")]
    for prefix in ("/gradio_api/file=", "/file=", "/study/gradio_api/file="):
        for target in targets:
            r = client.get(prefix + target)
            assert r.status_code in (403, 404, 401), (prefix, target, r.status_code)
            _no_leak(r, (prefix, target), target)
    _alive(client)
