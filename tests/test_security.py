"""Issue 18: the reader study cannot be read around. Every check runs against the real app
(`ui.server.create_app` under uvicorn, micro model, SQLite study store) over HTTP.

1. file access: a FileData naming a server path is refused on every file-taking endpoint;
2. blinding: a mixed study (560x360 RGB JPEGs and 128x128 greyscale PNGs) serves every case
   with the same size, mode, format, byte length and chunks;
3. order: two readers' truth sequences differ, and runs of one class occur as chance predicts;
4. login abuse: a locked name leaves other names (same address) and the same name from another
   address able to log in, on the API and on the /study login;
5. timing: unknown and known names take the same time to refuse (medians of 10 within 20%);
6. small holes: NaN/Infinity/1e400 confidence -> 422, oversized bodies -> 413, /health without paths.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import statistics
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from tests.fixtures_turing import PASSWORD, make_case_folder
from tiger.paths import PROJECT_ROOT, SHARED_DATA

PNG_CHUNK_HEADER = 8


@pytest.fixture(scope="module")
def app(ui_server):
    """(base url, store of the running app, httpx client)."""
    store = ui_server.app.state.ctx.store()
    with httpx.Client(base_url=ui_server.url, timeout=60) as client:
        yield ui_server.url, store, client


def _login(client: httpx.Client, user: str, password: str = PASSWORD) -> httpx.Response:
    return client.post("/api/turing/login", json={"username": user, "password": password})


def _bearer(client: httpx.Client, user: str) -> dict:
    r = _login(client, user)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _from(address: str, base_url: str) -> httpx.Client:
    """A client whose connections come from another loopback address (another machine, as the server sees it)."""
    return httpx.Client(base_url=base_url, timeout=60, transport=httpx.HTTPTransport(local_address=address))


# ------------------------------------------------------------------ 1. file access
def _secret_png(folder: Path) -> Path:
    """A PNG only the server has: fresh random pixels (a hash no earlier run left in Gradio's
    upload folder) and a parameter record."""
    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng().integers(0, 255, (64, 64), dtype=np.uint8)
    info = PngImagePlugin.PngInfo()
    info.add_text("tiger", json.dumps({"seed": 1818, "text_fg": "secret record"}))
    path = folder / "secret.png"
    Image.fromarray(pixels).save(path, pnginfo=info)
    return path


def _file_params(params: list[dict]) -> list[int]:
    return [i for i, p in enumerate(params) if "FileData" in json.dumps(p.get("type", {}))
            or "filepath" in json.dumps(p.get("python_type", {}))]


def _value(param: dict, file_value: dict):
    """A payload value for one parameter: the file where the component takes one, else its default."""
    if param["component"].lower() == "imageeditor":
        return {"background": file_value, "layers": [file_value], "composite": file_value}
    return file_value


def _call(client: httpx.Client, endpoint: str, data: list) -> str:
    """Run a Gradio endpoint through its HTTP call route; the SSE text of the result."""
    r = client.post(f"/gradio_api/call{endpoint}", json={"data": data})
    assert r.status_code == 200, r.text
    return client.get(f"/gradio_api/call{endpoint}/{r.json()['event_id']}").text


def _file_endpoints(client: httpx.Client) -> dict[str, list[dict]]:
    info = client.get("/gradio_api/info").json()["named_endpoints"]
    return {name: ep["parameters"] for name, ep in info.items() if _file_params(ep["parameters"])}


def test_filedata_with_a_server_path_is_refused_on_every_file_endpoint(app, tmp_path):
    from gradio.utils import get_upload_folder

    url, _, client = app
    secret = _secret_png(tmp_path / "server-only")
    digest = hashlib.sha256(secret.read_bytes()).hexdigest()
    endpoints = _file_endpoints(client)
    assert {"/reference_upload", "/recall_png", "/derive_background", "/custom_mask", "/reference_mask"} <= set(endpoints)
    targets = [secret, SHARED_DATA / "ddti" / "images" / "100_1.jpg",
               PROJECT_ROOT / "models" / "tiger-tiny-ddti" / "samples_subtypes.png"]
    for target in [t for t in targets if t.exists()]:
        evil = {"path": str(target), "meta": {"_type": "gradio.FileData"}}
        for name, params in endpoints.items():
            files = _file_params(params)
            data = [_value(p, evil) if i in files else p.get("parameter_default") for i, p in enumerate(params)]
            text = _call(client, name, data)
            assert "event: error" in text and "event: complete" not in text, (name, target, text[:300])
            assert "gradio_api/file=" not in text, (name, target)
    copies = [p for p in Path(get_upload_folder()).rglob("*.png")
              if p.is_file() and p.stat().st_size == secret.stat().st_size
              and hashlib.sha256(p.read_bytes()).hexdigest() == digest]
    assert copies == []  # nothing was copied where /gradio_api/file= could serve it
    # the same file uploaded through Gradio's upload route is accepted (the refusal is about the path)
    uploaded = client.post("/gradio_api/upload", files={"files": ("secret.png", secret.read_bytes(), "image/png")})
    assert uploaded.status_code == 200, uploaded.text
    fd = {"path": uploaded.json()[0], "meta": {"_type": "gradio.FileData"}, "orig_name": "secret.png"}
    assert "event: complete" in _call(client, "/reference_upload", [fd])


def test_health_reports_status_and_model_id_only(app, ui_server):
    _, _, client = app
    body = client.get("/health").json()
    assert set(body) == {"status", "model_id"} and body["status"] == "ok"
    assert body["model_id"] == ui_server.model_dir.name
    assert str(ui_server.model_dir) not in json.dumps(body) and "/" not in json.dumps(body)


# ------------------------------------------------------------------ 2. and 3. a mixed study
@pytest.fixture(scope="module")
def mixed_study(app, tmp_path_factory):
    """14 cases as in the issue: 7 real DDTI JPEGs (560x360 RGB) and 7 synthetic 128x128 greyscale
    PNGs with parameter records; two readers enrolled for protocol 1. Created over HTTP."""
    url, store, client = app
    folder = tmp_path_factory.mktemp("mixed")
    synthetic_rows = list(csv.DictReader(make_case_folder(folder, n_real=0, n_synthetic=7).open()))
    real = sorted((SHARED_DATA / "ddti" / "images").glob("*.jpg"))[20:27]
    rows = [{"image": str(folder / r["image"]), "truth": "synthetic", "method": r["method"]} for r in synthetic_rows]
    rows += [{"image": str(p), "truth": "real", "method": "real"} for p in real]
    manifest = folder / "mixed.csv"
    with manifest.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["image", "truth", "method"])
        w.writeheader()
        w.writerows(rows)
    store.create_reader("sec-admin", PASSWORD, role="admin")
    for name in ("sec-r1", "sec-r2"):
        store.create_reader(name, PASSWORD, role="junior")
    admin = _bearer(client, "sec-admin")
    r = client.post("/api/turing/admin/studies", headers=admin, json={
        "name": "blinding", "manifest": str(manifest), "protocols": [1], "seed": 3, "readers": ["sec-r1", "sec-r2"]})
    assert r.status_code == 201, r.text
    return r.json(), rows, admin


def _walk(client: httpx.Client, headers: dict, study_id: int) -> list[bytes]:
    """Answer every question of a reader in order; the served image bytes, in that order."""
    served = []
    while True:
        item = client.get(f"/api/turing/studies/{study_id}/next", headers=headers).json()
        if item.get("done"):
            return served
        img = client.get(f"/api/turing/images/{item['image']}", headers=headers)
        assert img.status_code == 200
        served.append(img.content)
        r = client.post(f"/api/turing/studies/{study_id}/answers", headers=headers,
                        json={"item_id": item["item_id"], "payload": {"answer": "real"}})
        assert r.status_code == 201, r.text


def _chunks(png: bytes) -> list[str]:
    out, i = [], PNG_CHUNK_HEADER
    while i < len(png):
        length = int.from_bytes(png[i:i + 4], "big")
        out.append(png[i + 4:i + 8].decode("ascii"))
        i += 12 + length
    return out


def test_mixed_study_serves_every_case_alike_and_readers_get_their_own_order(app, mixed_study):
    url, store, client = app
    created, rows, admin = mixed_study
    sources = {(Image.open(r["image"]).size, Image.open(r["image"]).mode) for r in rows}
    assert len(sources) == 2  # the sources themselves are separable by size and mode
    study_id = created["id"]
    served = {name: _walk(client, _bearer(client, name), study_id) for name in ("sec-r1", "sec-r2")}
    assert all(len(v) == 14 for v in served.values())
    props = set()
    for png in served["sec-r1"] + served["sec-r2"]:
        with Image.open(io.BytesIO(png)) as im:
            props.add((im.size, im.mode, im.format, len(png), tuple(_chunks(png)), tuple(sorted(im.info))))
    assert props == {((128, 128), "L", "PNG", len(served["sec-r1"][0]), ("IHDR", "IDAT", "IEND"), ())}
    answers = client.get(f"/api/turing/admin/studies/{study_id}/answers", headers=admin).json()
    truths = {name: "".join(a["truth"][0] for a in sorted(answers, key=lambda a: a["answer_id"])
                            if a["reader"] == name) for name in served}
    assert truths["sec-r1"] != truths["sec-r2"], truths
    assert all(t.count("r") == 7 for t in truths.values())
    blinding = store.blinding(study_id)
    assert blinding["serve"]["size"] == 128 and created["blinding_warnings"] == blinding["warnings"]


def test_strict_blinding_refuses_a_study_whose_cases_still_differ(app, tmp_path):
    """Synthetic cases far brighter than the real ones: the creation check names the statistic."""
    url, store, client = app
    rows = []
    for i, src in enumerate(sorted((SHARED_DATA / "ddti" / "images").glob("*.jpg"))[30:36]):
        rows.append({"image": str(src), "truth": "real", "method": "real"})
        bright = np.clip(np.asarray(Image.open(src).convert("L").resize((128, 128)), np.int16) + 120, 0, 255)
        Image.fromarray(bright.astype(np.uint8)).save(tmp_path / f"s{i}.png")
        rows.append({"image": str(tmp_path / f"s{i}.png"), "truth": "synthetic", "method": "tiger"})
    manifest = tmp_path / "bright.csv"
    with manifest.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["image", "truth", "method"])
        w.writeheader()
        w.writerows(rows)
    admin = _bearer(client, "sec-admin")
    body = {"name": "bright", "manifest": str(manifest), "protocols": [1], "design": {"blinding": "strict"}}
    r = client.post("/api/turing/admin/studies", headers=admin, json=body)
    assert r.status_code == 400 and "mean intensity separates the classes" in r.json()["error"], r.text
    r = client.post("/api/turing/admin/studies", headers=admin, json={**body, "design": {}})
    assert r.status_code == 201 and any("mean intensity" in w for w in r.json()["blinding_warnings"])


def _runs(seq: list[str]) -> int:
    return 1 + sum(a != b for a, b in zip(seq, seq[1:]))


@pytest.mark.parametrize("n_real,n_synthetic", [(7, 7), (50, 50)])
def test_runs_of_one_class_occur_as_chance_predicts(n_real, n_synthetic):
    """Over 400 readers, the mean number of runs of the truth sequence is within 5% of a plain
    shuffle's 1 + 2 n1 n2 / N (the old interleaving gave about N - 1), and readers' sequences differ."""
    from turing_test.assignment import CaseInfo, plan_items

    cases = [CaseInfo(i, "real" if i < n_real else "synthetic", "real" if i < n_real else ("tiger", "coarse")[i % 2],
                      "", {}, i) for i in range(n_real + n_synthetic)]
    truth = {c.id: c.truth for c in cases}
    sequences = [[truth[it.case_id] for it in plan_items([1], cases, {}, 11, reader)] for reader in range(1, 401)]
    n = n_real + n_synthetic
    expected = 1 + 2 * n_real * n_synthetic / n
    mean_runs = statistics.mean(_runs(s) for s in sequences)
    assert abs(mean_runs - expected) / expected < 0.05, (mean_runs, expected)
    orders = math.comb(n, n_real)  # distinct truth sequences; a uniform shuffle of 400 readers hits about:
    expected_distinct = orders * (1 - (1 - 1 / orders) ** len(sequences))
    assert len({tuple(s) for s in sequences}) >= 0.95 * expected_distinct


# ------------------------------------------------------------------ 4. and 5. logins
def test_a_locked_name_leaves_other_names_and_addresses_able_to_log_in(app):
    url, store, client = app
    for name in ("victim", "colleague"):
        store.create_reader(name, PASSWORD)
    codes = [_login(client, "victim", f"guess{i}").status_code for i in range(6)]
    assert codes == [401] * 5 + [429]
    r = _login(client, "victim")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert _login(client, "colleague").status_code == 200  # same address, another reader
    with _from("127.0.0.2", url) as elsewhere:
        assert _login(elsewhere, "victim").status_code == 200  # the victim, from an address that has not failed


def test_study_login_locks_per_name_and_address(app):
    url, store, client = app
    for name in ("study-victim", "study-colleague"):
        store.create_reader(name, PASSWORD)

    def study_login(c: httpx.Client, user: str, password: str = PASSWORD) -> int:
        return c.post("/study/login", data={"username": user, "password": password}).status_code

    assert [study_login(client, "study-victim", f"guess{i}") for i in range(6)] == [400] * 6
    assert study_login(client, "study-victim") == 400  # locked: even the right password is refused here
    assert study_login(client, "study-colleague") == 200
    with _from("127.0.0.3", url) as elsewhere:
        assert study_login(elsewhere, "study-victim") == 200


def test_login_takes_as_long_for_unknown_names_as_for_known_ones(app):
    """Wrong passwords for 10 existing and 10 unknown names, alternating after a warm-up (each
    name once, so no lock interferes): the medians are within 20% of each other.

    On a loaded 2-core machine one round can be disturbed, so up to three rounds with fresh
    names are run and one must pass; before the dummy hash every round differed ~10x.
    """
    url, store, client = app

    def timed(name: str) -> float:
        t0 = time.perf_counter()
        assert _login(client, name, "wrong password").status_code == 401
        return time.perf_counter() - t0

    rounds = []
    for round_no in range(3):
        known = [f"timing-known-{round_no}-{i}" for i in range(12)]
        for name in known:
            store.create_reader(name, PASSWORD)
        unknown = [f"timing-nobody-{round_no}-{i}" for i in range(12)]
        for name in (known[0], unknown[0], known[1], unknown[1]):  # warm-up: connections, caches, dummy hash
            timed(name)
        k, u = [], []
        for kn, un in zip(known[2:], unknown[2:]):
            k.append(timed(kn))
            u.append(timed(un))
        mk, mu = statistics.median(k), statistics.median(u)
        rounds.append((mk, mu))
        print(f"login medians (round {round_no}): known {mk * 1000:.1f} ms, unknown {mu * 1000:.1f} ms")
        if abs(mk - mu) / max(mk, mu) < 0.20:
            break
    mk, mu = rounds[-1]
    assert abs(mk - mu) / max(mk, mu) < 0.20, rounds


# ------------------------------------------------------------------ 6. small holes
def test_non_finite_confidence_is_a_clear_422(app, mixed_study):
    url, store, client = app
    created, _, _ = mixed_study
    store.create_reader("sec-r3", PASSWORD)
    store.enroll(created["id"], ["sec-r3"])
    headers = {**_bearer(client, "sec-r3"), "Content-Type": "application/json"}
    item = client.get(f"/api/turing/studies/{created['id']}/next", headers=headers).json()
    for raw in ("NaN", "Infinity", "-Infinity", "1e400"):
        body = '{"item_id": %d, "payload": {"answer": "real", "confidence": %s}}' % (item["item_id"], raw)
        r = client.post(f"/api/turing/studies/{created['id']}/answers", headers=headers, content=body)
        assert r.status_code == 422 and "whole number from 1 to 5" in r.json()["error"], (raw, r.text)
    assert store.count_answers(created["id"]) == 28  # the two readers' answers only


def test_oversized_bodies_get_413(app):
    url, store, client = app
    for path, mib in (("/api/turing/login", 2), ("/study/login", 2), ("/gradio_api/call/chip_texts", 9),
                      ("/gradio_api/upload", 52)):
        big = b'{"username": "' + b"x" * (mib * 1024 * 1024) + b'", "password": "p"}'
        r = client.post(path, content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413, (path, r.status_code)

    def chunks():  # no Content-Length: the limit is counted on the bytes received
        for _ in range(64):
            yield b"x" * 65536

    r = client.post("/api/turing/login", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert _login(client, "sec-admin").status_code == 200  # normal bodies still pass


def test_generation_pages_ask_for_a_login_when_configured(tmp_path, ui_model_dir):
    """`require_login` (app.py turns it on for a non-loopback --host): Gradio's config and API of
    the main app answer 401 without a session, and a study account logs in."""
    from fastapi.testclient import TestClient

    from ui.server import create_app

    app = create_app(model_dir=ui_model_dir, data_dir=tmp_path, require_login=True)
    app.state.ctx.store().create_reader("researcher", PASSWORD)
    with TestClient(app) as client:
        assert client.get("/config").status_code == 401
        assert client.post("/gradio_api/call/chip_texts", json={"data": []}).status_code == 401
        assert client.post("/login", data={"username": "researcher", "password": "wrong pass"}).status_code == 400
        assert client.post("/login", data={"username": "researcher", "password": PASSWORD}).status_code == 200
        assert client.get("/config").status_code == 200
        assert client.get("/health").json()["status"] == "ok"  # liveness stays open


def test_app_py_requires_login_beyond_loopback():
    import app as entry

    assert entry._is_loopback("127.0.0.1") and entry._is_loopback("localhost") and entry._is_loopback("::1")
    assert not entry._is_loopback("0.0.0.0") and not entry._is_loopback("10.1.2.3")
