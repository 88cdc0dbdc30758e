"""Every public endpoint of the Synthesize, Reference and Teach pages through gradio_client.

The app is the real one (ui.server.create_app under uvicorn) with a random micro model, so
these tests cover event wiring, queueing, session state and error messages end to end.
"""
from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from tiger.paths import SHARED_DATA

DDTI_IMAGE = SHARED_DATA / "ddti" / "images" / "100_1.jpg"
OUR_ENDPOINTS = {"/chip_texts", "/drop_nodule", "/pick_location", "/resize_nodule", "/set_extension",
                 "/custom_mask", "/adjust_gland", "/filter_backgrounds", "/choose_background",
                 "/derive_background", "/generate", "/stop", "/recall_png", "/reference_upload",
                 "/reference_mask", "/reference_predict_mask", "/reference_generate", "/reference_stop",
                 "/teach_row", "/teach_grid", "/teach_stop"}
PTC = ["papillary", "solid", "hypoechoic", "heterogeneous", "microcalcification", "taller-than-wide",
       "irregular", "lobulated/irregular", "none", "unspecified", "transverse"]
SETTINGS = [0, False, 1, 3, 3.0, 1.0, 1.0, "both"]   # seed, random, batch, steps, cfg, fg, bg, encoders


@pytest.fixture(scope="module")
def client(ui_server) -> Client:
    return Client(ui_server.url, verbose=False)


def _gen_args(location: str = "middle", seed: int = 0, batch: int = 1, steps: int = 3) -> list:
    return [*PTC, location, "", "", seed, False, batch, steps, 3.0, 1.0, 1.0, "both"]


def test_every_page_endpoint_is_exposed(client: Client):
    named = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert OUR_ENDPOINTS <= named


def test_chip_texts_live(client: Client):
    fg, bg, tirads = client.predict(*PTC, "upper pole", api_name="/chip_texts")
    assert "papillary carcinoma" in fg and "at the upper pole" in fg
    assert bg == "thyroid ultrasound image, transverse plane" and "TR5" in tirads


def test_placement_endpoints_move_the_nodule(client: Client):
    loc = client.predict("inferior", api_name="/pick_location")[-1]
    assert loc == "inferior"
    # outputs (session state is not part of the API): canvas value, condition image, location
    canvas_value = client.predict("upper pole", api_name="/pick_location")[0]
    assert canvas_value["location"] == "upper pole"
    inferior = next(t for t in canvas_value["thirds"] if t["name"] == "inferior")
    cx = (inferior["left"] + inferior["width"] / 2) / 100 * canvas_value["w"]
    cy = (inferior["top"] + inferior["height"] / 2) / 100 * canvas_value["h"]
    dropped = client.predict({**canvas_value, "drop": {"cx": cx, "cy": cy}}, api_name="/drop_nodule")
    assert dropped[-1] == "inferior" and dropped[0]["location"] == "inferior"
    assert dropped[1] and Path(dropped[1]).exists()
    assert client.predict(0.3, api_name="/resize_nodule")[-1] in ("inferior", "middle", "upper pole")
    ext = client.predict(True, api_name="/set_extension")[0]
    assert ext["box"]["top"] <= ext["gland"]["top"]
    adj = client.predict(10, 10, 118, 100, api_name="/adjust_gland")[0]
    assert abs(adj["gland"]["left"] - 100 * 10 / adj["w"]) < 1e-2


def test_backgrounds_filter_choose_and_derive(client: Client, ui_model_dir: Path):
    rows = [json.loads(x) for x in (ui_model_dir / "background_bank" / "index.jsonl").read_text().splitlines()]
    planes = {r["plane"] for r in rows}
    for plane in planes:
        shown = client.predict(plane, api_name="/filter_backgrounds")
        assert len(shown) == sum(r["plane"] == plane for r in rows)
    assert len(client.predict("all", api_name="/filter_backgrounds")) == len(rows)
    chosen = client.predict(rows[-1]["id"], api_name="/choose_background")
    assert chosen[0]["bg"].startswith("data:image/png")
    with pytest.raises(AppError, match="cannot be used"):
        client.predict("no-such-background", api_name="/choose_background")
    derived = client.predict(handle_file(str(DDTI_IMAGE)), api_name="/derive_background")
    assert "derived" in derived[0]["note"]


def test_custom_mask_upload_and_bad_masks(client: Client, ui_canonical: Path, tmp_path: Path):
    mask_path = sorted((ui_canonical / "masks").glob("*.png"))[0]
    value = client.predict(handle_file(str(mask_path)), None, api_name="/custom_mask")[0]
    assert value["note"] == "custom mask" and value["mask"]
    empty = tmp_path / "empty.png"
    Image.new("L", (128, 128), 0).save(empty)
    with pytest.raises(AppError, match="no pixels"):
        client.predict(handle_file(str(empty)), None, api_name="/custom_mask")
    full = tmp_path / "full.png"
    Image.new("L", (128, 128), 255).save(full)
    with pytest.raises(AppError, match="covers 100%"):
        client.predict(handle_file(str(full)), None, api_name="/custom_mask")


def test_text_file_uploaded_as_image(client: Client, tmp_path: Path):
    bad = tmp_path / "scan.png"
    bad.write_text("definitely not pixels")
    with pytest.raises(AppError, match="not an image"):
        client.predict(handle_file(str(bad)), api_name="/derive_background")
    with pytest.raises(AppError, match="not an image"):
        client.predict(handle_file(str(bad)), api_name="/reference_upload")


def test_huge_image_upload_refused(client: Client, tmp_path: Path):
    big = tmp_path / "huge.png"
    Image.new("L", (10000, 10000), 0).save(big)    # small file, 100 megapixels
    with pytest.raises(AppError, match="10000x10000"):
        client.predict(handle_file(str(big)), api_name="/derive_background")


def test_generate_zip_and_recall(client: Client, tmp_path: Path):
    gallery, status, zip_path, _preview = client.predict(*_gen_args(seed=11, batch=2), api_name="/generate")
    assert len(gallery) == 2 and "2/2 done" in status and "seeds 11, 12" in status
    import zipfile
    with zipfile.ZipFile(zip_path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert [e["seed"] for e in manifest["images"]] == [11, 12]
    assert all(e["chips"]["subtype"] == "papillary" for e in manifest["images"])
    recalled = client.predict(handle_file(gallery[1]["image"]), api_name="/recall_png")
    # outputs: 11 chips, location, fg, bg, seed, random, steps, guidance, fg, bg, encoders, canvas, condition,
    # size slider (the fraction the recalled mask measures)
    assert recalled[0] == "papillary" and recalled[14] == 12 and recalled[16] == 3
    assert 0.1 <= recalled[-1] <= 0.9 and recalled[-1] == round(recalled[-1], 2)


def test_steps_out_of_range(client: Client):
    # the slider's own bounds check answers first, with the limit in the message
    with pytest.raises(AppError, match="less than minimum value 1"):
        client.predict(*_gen_args(steps=0), api_name="/generate")
    with pytest.raises(AppError, match="greater than maximum value 100"):
        client.predict(*_gen_args(steps=1000), api_name="/generate")
    args = _gen_args()
    args[-4] = 99.0   # guidance
    with pytest.raises(AppError, match="maximum value 30"):
        client.predict(*args, api_name="/generate")


def test_recall_of_foreign_png(client: Client, tmp_path: Path):
    plain = tmp_path / "plain.png"
    Image.open(DDTI_IMAGE).save(plain)
    with pytest.raises(AppError, match="no Tiger parameter record"):
        client.predict(handle_file(str(plain)), api_name="/recall_png")


def test_two_users_generating_at_once_get_their_own_results(ui_server):
    """Two sessions submit at the same moment: both finish, each sees only its own seeds."""
    out: dict[str, tuple] = {}

    def user(name: str, seed: int) -> None:
        c = Client(ui_server.url, verbose=False)
        c.predict("upper pole" if name == "a" else "inferior", api_name="/pick_location")
        out[name] = c.predict(*_gen_args(seed=seed, batch=2), api_name="/generate")

    threads = [threading.Thread(target=user, args=("a", 100)), threading.Thread(target=user, args=("b", 500))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert "seeds 100, 101" in out["a"][1] and "seeds 500, 501" in out["b"][1]
    from tiger import pngmeta
    rec_a = pngmeta.read_record(out["a"][0][0]["image"])
    rec_b = pngmeta.read_record(out["b"][0][0]["image"])
    assert rec_a["seed"] == 100 and rec_b["seed"] == 500
    assert rec_a["mask"] != rec_b["mask"]   # each run used its own session's placement


def test_stop_without_a_run(client: Client):
    assert "Nothing is running" in client.predict(api_name="/stop")
    assert "Nothing is running" in client.predict(api_name="/reference_stop")
    assert "Nothing is running" in client.predict(api_name="/teach_stop")


def test_stop_cancels_a_running_generation(ui_server):
    c = Client(ui_server.url, verbose=False)
    job = c.submit(*_gen_args(batch=4, steps=40), api_name="/generate")
    deadline = time.time() + 120
    while not job.outputs() and time.time() < deadline:   # first yield: the run has started
        time.sleep(0.1)
    assert job.outputs(), "the generation never started"
    assert "Stopping" in c.predict(api_name="/stop")
    t0 = time.time()
    while not job.done() and time.time() - t0 < 30:
        time.sleep(0.1)
    assert job.done() and time.time() - t0 < 30      # cancelled, not run to the end
    outputs = job.outputs()
    assert len(outputs[-1][0]) < 4
    # the session can generate again right after a stop
    assert len(c.predict(*_gen_args(steps=2), api_name="/generate")[0]) == 1


def test_reference_flow(client: Client, ui_canonical: Path):
    row = json.loads((ui_canonical / "metadata.jsonl").read_text().splitlines()[0])
    src = client.predict(handle_file(str(ui_canonical / row["file_name"])), api_name="/reference_upload")
    assert src[0] and src[1]
    with pytest.raises(AppError, match="needs its nodule mask"):
        client.predict(*["unspecified"] * 11, "", "", 0.8, *SETTINGS, api_name="/reference_generate")
    with pytest.raises(AppError, match="segmenter"):
        client.predict(api_name="/reference_predict_mask")
    assert client.predict(handle_file(str(ui_canonical / row["mask"])), None, api_name="/reference_mask")
    chips = ["follicular", *["unspecified"] * 10]
    gallery, status, _preview = client.predict(*chips, "", "", 0.6, 3, False, 2, 3, 3.0, 1.0, 1.0, "both",
                                               "unipc", api_name="/reference_generate")
    assert len(gallery) == 2 and "2/2 done" in status
    from tiger import pngmeta
    rec = pngmeta.read_record(gallery[0]["image"])
    assert rec["mode"] == "reference" and rec["strength"] == 0.6 and "follicular" in rec["text_fg"]
    assert rec["scheduler"] == "unipc"


def test_teach_row_and_grid(client: Client):
    gallery, status, sheet, _preview = client.predict("Typical PTC", "echogenicity", None, 7, 2, 3.0,
                                                      api_name="/teach_row")
    assert [g["caption"].split("\n")[0] for g in gallery] == ["anechoic", "hyperechoic", "isoechoic", "hypoechoic",
                                                               "very hypoechoic"]
    from tiger import measures, pngmeta
    recs = [pngmeta.read_record(g["image"]) for g in gallery]
    assert {r["seed"] for r in recs} == {7} and len({r["background_id"] for r in recs}) == 1
    # under each image, the grey ratio measured inside its own placed mask
    for g, r in zip(gallery, recs):
        img = np.asarray(Image.open(g["image"]).convert("L"))
        ratio = measures.grey_ratio(img, pngmeta.b64png_to_array(r["mask"]) > 127)
        assert f"ratio {ratio:.2f}" in g["caption"].split("\n")[1]
    assert Image.open(sheet).format == "PNG" and Image.open(sheet).width > 5 * 128
    gallery, status, sheet, _preview = client.predict(None, 7, 2, 3.0, api_name="/teach_grid")
    assert [g["caption"].split("\n")[0] for g in gallery] == ["Benign", "PTC", "FTC", "MTC"] and sheet
    assert all(g["caption"].split("\n")[1].startswith("ratio ") for g in gallery)


def test_missing_model_is_explained(ui_server_no_model):
    with urllib.request.urlopen(ui_server_no_model.url + "health") as r:
        assert json.loads(r.read())["model_id"] is None  # no model served
    c = Client(ui_server_no_model.url, verbose=False)
    with pytest.raises(AppError, match="No model found"):
        c.predict(*_gen_args(), api_name="/generate")
    derived = c.predict(handle_file(str(DDTI_IMAGE)), api_name="/derive_background")
    assert derived[-1] in ("inferior", "middle", "upper pole")
    assert os.environ.get("GRADIO_ANALYTICS_ENABLED") == "False"
