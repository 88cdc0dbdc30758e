"""The plain functions behind the UI's buttons, tested without a browser or a server.

Inputs are real: DDTI images from the shared data and masks from its canonical import; the
model-dependent parts run the random micro model (tests/fixtures_server.py).
"""
from __future__ import annotations

import json
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tiger import conditions as cond
from tiger.paths import SHARED_DATA
from ui import canvas, chips, generate, placement, uploads
from ui.context import AppContext

DDTI_IMAGE = SHARED_DATA / "ddti" / "images" / "100_1.jpg"


# --- uploads -----------------------------------------------------------------------------------
def test_real_jpeg_loads_as_grey():
    grey = uploads.load_grey_image(str(DDTI_IMAGE))
    assert grey.dtype == np.uint8 and grey.ndim == 2 and grey.shape == (360, 560)


def test_text_file_as_image_is_refused(tmp_path: Path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    with pytest.raises(uploads.UploadError, match="not an image"):
        uploads.load_grey_image(str(bad))


def test_huge_image_refused_before_decoding(tmp_path: Path):
    big = tmp_path / "big.png"
    Image.new("L", (10000, 10000), 0).save(big)
    with pytest.raises(uploads.UploadError, match="10000x10000"):
        uploads.load_grey_image({"path": str(big)})


def test_dicom_upload(tmp_path: Path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    pixels = np.asarray(Image.open(DDTI_IMAGE).convert("L"), dtype=np.uint16) * 4
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"   # ultrasound image storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = FileDataset(str(tmp_path / "us.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = pixels.tobytes()
    ds.save_as(str(tmp_path / "us.dcm"), enforce_file_format=True)
    grey = uploads.load_grey_image(str(tmp_path / "us.dcm"))
    assert grey.shape == pixels.shape and grey.max() == 255
    assert pydicom is not None


def test_empty_and_full_masks_refused():
    with pytest.raises(uploads.UploadError, match="no pixels"):
        uploads.binarize_mask(np.zeros((128, 128), np.uint8))
    with pytest.raises(uploads.UploadError, match="covers 100%"):
        uploads.binarize_mask(np.full((128, 128), 255, np.uint8))


def test_real_mask_file_resized_and_binary(ui_canonical: Path):
    mask_path = sorted((ui_canonical / "masks").glob("*.png"))[0]
    m = uploads.load_mask(str(mask_path), (64, 64))
    assert m.shape == (64, 64) and set(np.unique(m)) <= {0, 255} and m.any()


def test_editor_drawing_outline_is_filled():
    layer = np.zeros((128, 128, 4), np.uint8)
    yy, xx = np.mgrid[:128, :128]
    ring = np.abs(np.hypot(xx - 64, yy - 64) - 20) < 1.5
    layer[ring] = (255, 255, 255, 255)
    m = uploads.editor_mask({"background": None, "layers": [layer], "composite": None}, (128, 128))
    assert m is not None and m[64, 64] == 255        # the inside of a traced contour is nodule
    assert uploads.editor_mask({"layers": [np.zeros((128, 128, 4), np.uint8)]}, (128, 128)) is None


# --- chips -------------------------------------------------------------------------------------
def test_preview_live_texts_and_tirads():
    form = chips.form_from_chips(chips.preset_chips("Typical PTC"))
    pv = chips.preview(chips.chips_from_form(form, location="upper pole"))
    assert pv["ok"] and "papillary carcinoma" in pv["text_fg"] and "upper pole" in pv["text_fg"]
    assert pv["level"] == "TR5" and pv["points"] >= 7
    assert chips.chips_from_form(form)["malignancy"] == "malignant"


def test_contradiction_is_explained_not_raised():
    pv = chips.preview({"malignancy": "benign", "subtype": "papillary"})
    assert not pv["ok"] and "benign" in pv["message"] and "papillary" in pv["message"]
    assert "Cannot combine" in chips.tirads_markdown(pv)


# --- placement and canvas ----------------------------------------------------------------------
@pytest.fixture()
def real_sobel() -> np.ndarray:
    grey = np.asarray(Image.open(DDTI_IMAGE).convert("L").resize((128, 128)))
    return cond.sobel_map(grey)


def test_drop_moves_location_between_poles(real_sobel: np.ndarray):
    gland = cond.GlandExtent(8, 20, 120, 100, "horizontal", "start")
    state = placement.new_placement(real_sobel, gland, location="upper pole")
    assert state["location"] == "upper pole"
    boxes = cond.thirds(gland)
    x0, y0, x1, y1 = boxes["inferior"]
    value = placement.canvas_for(state)
    value["drop"] = {"cx": (x0 + x1) / 2, "cy": (y0 + y1) / 2}
    moved = placement.move_to_center(state, *canvas.dropped_center(value))
    assert moved["location"] == "inferior"
    assert not np.array_equal(moved["mask"], state["mask"])
    # the template is untouched, so size survives many moves
    assert np.array_equal(moved["shape"], state["shape"])
    again = placement.move_to_location(moved, "middle")
    assert again["location"] == "middle" and abs(int((again["mask"] > 0).sum()) - int((state["mask"] > 0).sum())) < 30


def test_canvas_value_is_json_and_malformed_drops_are_ignored(real_sobel: np.ndarray):
    state = placement.new_placement(real_sobel)
    value = placement.canvas_for(state)
    json.dumps(value)
    assert value["mask"].startswith("data:image/png;base64,") and len(value["thirds"]) == 3
    for bad in (None, "x", {"drop": "x"}, {"drop": {"cx": "nan", "cy": 1}}, {"drop": {"cy": 1}}):
        assert canvas.dropped_center(bad) is None


def test_extension_crosses_gland_top(real_sobel: np.ndarray):
    gland = cond.GlandExtent(8, 30, 120, 110)
    state = placement.set_extension(placement.new_placement(real_sobel, gland), True)
    ys, _ = np.nonzero(state["mask"])
    assert ys.min() < gland.y0


# --- generation requests ------------------------------------------------------------------------
def _request(**kw) -> generate.GenerationRequest:
    base = dict(chips={}, text_fg="thyroid nodule", text_bg="thyroid ultrasound image",
                mask=np.pad(np.full((20, 20), 255, np.uint8), 54), background_id="x", seeds=[1])
    base.update(kw)
    return generate.GenerationRequest(**base)


@pytest.mark.parametrize("field,value,needle", [("num_inference_steps", 0, "Steps"), ("num_inference_steps", 1001, "Steps"),
                                                ("num_inference_steps", 2.5, "whole number"), ("guidance_scale", -1, "Guidance"),
                                                ("fg_scale", "abc", "number"), ("encoders", "all", "Encoders")])
def test_out_of_range_settings_named(field, value, needle):
    with pytest.raises(generate.GenerationError, match=needle):
        generate.check_request(_request(**{field: value}))


def test_fg_encoder_needs_mask():
    with pytest.raises(generate.GenerationError, match="mask"):
        generate.check_request(_request(mask=None))
    generate.check_request(_request(mask=None, encoders="bg"))


def test_seeds_recorded_per_image():
    assert generate.make_seeds(41, False, 3) == [41, 42, 43]
    rnd = generate.make_seeds(0, True, 4)
    assert len(rnd) == 4 and all(0 <= s <= generate.MAX_SEED for s in rnd)
    with pytest.raises(generate.GenerationError, match="Batch"):
        generate.make_seeds(0, False, 99)


def test_stop_flags_are_per_session():
    flags = generate.StopFlags()
    a, b = flags.arm("alice"), flags.arm("bob")
    assert flags.stop("alice") and a.is_set() and not b.is_set()
    assert not flags.stop("carol")


# --- real runs with the micro model --------------------------------------------------------------
@pytest.fixture(scope="module")
def micro_pipe(ui_model_dir: Path):
    return AppContext(model_dir=ui_model_dir).pipeline()


def test_run_batch_writes_pngs_with_records_and_zip(micro_pipe, tmp_path: Path):
    req = generate.check_request(_request(background_id=micro_pipe.background_bank.ids()[0], seeds=[5, 9],
                                          num_inference_steps=2, chips={"subtype": "medullary", "malignancy": "malignant"}))
    results = list(generate.run_batch(micro_pipe, req, tmp_path / "run"))
    assert [r.record["seed"] for r in results] == [5, 9]
    rec = generate.read_recall(str(results[1].path))
    assert rec["seed"] == 9 and rec["chips"]["subtype"] == "medullary" and rec["num_inference_steps"] == 2
    z = generate.zip_results(results, tmp_path / "b.zip")
    with zipfile.ZipFile(z) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert {e["file"] for e in manifest["images"]} == {r.path.name for r in results}
        assert set(zf.namelist()) == {"manifest.json", *(r.path.name for r in results)}


def test_stop_interrupts_within_a_step(micro_pipe, tmp_path: Path):
    stop = threading.Event()
    seen: list[int] = []

    def on_step(i: int, step: int, n: int) -> None:
        seen.append(step)
        if step == 2:
            stop.set()

    req = generate.check_request(_request(background_id=micro_pipe.background_bank.ids()[0], seeds=[1, 2], num_inference_steps=8))
    results = list(generate.run_batch(micro_pipe, req, tmp_path, on_step=on_step, stop=stop))
    assert results == [] and max(seen) <= 3


def test_recall_of_foreign_png_is_explained(tmp_path: Path):
    plain = tmp_path / "plain.png"
    Image.new("L", (32, 32)).save(plain)
    with pytest.raises(generate.RecallError, match="no Tiger parameter record"):
        generate.read_recall(str(plain))


def test_send_back_restores_form_and_placement(micro_pipe, ui_model_dir: Path, tmp_path: Path):
    from ui import synthesize

    bank_id = micro_pipe.background_bank.ids()[1]
    sobel, gland = micro_pipe.background_bank.get(bank_id, size=128)
    state = placement.new_placement(sobel, gland, background_id=bank_id, location="inferior")
    req = synthesize.request_from_form(chips.form_from_chips(chips.preset_chips("Typical MTC")), "inferior",
                                       "", "", state, 77, False, 1, 2, 2.5, 0.8, 1.2, "both")
    result = next(generate.run_batch(micro_pipe, req, tmp_path))
    form = synthesize.form_from_record(AppContext(model_dir=ui_model_dir), generate.read_recall(str(result.path)), None)
    assert form["chips"][0] == "medullary" and form["location"] == "inferior"
    assert (form["seed"], form["steps"], form["guidance"], form["fg_scale"], form["bg_scale"]) == (77, 2, 2.5, 0.8, 1.2)
    restored = form["state"]
    assert restored["background_id"] == bank_id and restored["location"] == "inferior"
    assert np.array_equal(restored["mask"] > 0, state["mask"] > 0)   # the exact condition comes back
    # the Size slider follows the recalled nodule (its mask's measured fraction, on the slider's scale)
    assert synthesize.recalled_size(restored) == pytest.approx(state["frac"], abs=0.06)
    assert synthesize.recalled_size({**restored, "frac": 3.0}) == placement.SIZE_RANGE[1]


def test_batch_is_first_image_then_the_rest_in_one_call():
    assert generate.batch_groups(1) == [[0]]
    assert generate.batch_groups(2) == [[0], [1]]
    assert generate.batch_groups(4) == [[0], [1, 2, 3]]
    assert generate.batch_groups(3, batched=False) == [[0], [1], [2]]


def test_run_batch_streams_previews_then_image_one_then_the_rest(micro_pipe, tmp_path: Path):
    """Events in order: previews of image 1, image 1, previews of the batched rest, the rest;
    every image replays bit-exactly from its PNG record (the record names its own call)."""
    req = generate.check_request(_request(background_id=micro_pipe.background_bank.ids()[0], seeds=[3, 4, 5],
                                          num_inference_steps=7, scheduler="dpm++2m"))
    events: list[tuple] = []
    for res in generate.run_batch(micro_pipe, req, tmp_path,
                                  on_preview=lambda i, step, im: events.append(("preview", i, step, im.size))):
        events.append(("image", res.record["batch_position"], res))
    kinds = [(e[0], e[1]) for e in events]
    assert kinds == [("preview", 0)] * 3 + [("image", 0)] + [("preview", 1)] * 3 + [("image", 1), ("image", 2)]
    assert [e[2] for e in events if e[0] == "preview"][:3] == [1, 3, 6]      # step 1, then every 3rd
    assert all(e[3] == (128, 128) for e in events if e[0] == "preview")
    last = events[-1][2]
    assert last.record["batch_seeds"] == [4, 5] and last.record["scheduler"] == "dpm++2m"
    again = micro_pipe.replay(generate.read_recall(str(last.path)))
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(Image.open(last.path)))


def test_unknown_sampler_in_request(tmp_path: Path):
    with pytest.raises(generate.GenerationError, match="Sampler must be one of ddim"):
        generate.check_request(_request(scheduler="euler"))
