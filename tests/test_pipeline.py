"""TigerPipeline on a random micro model with a bank of real DDTI backgrounds: reproducibility,
the PNG parameter record, modes, cancellation, control guidance and bad input."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from tiger import knowledge, pngmeta
from tiger.background_bank import BackgroundBank, BackgroundError
from tiger.conditions import location_of
from tiger.paths import SHARED_DATA
from tiger.pipeline import PipelineInputError, TigerPipeline, record_to_kwargs

STEPS = 2
FTC = {"malignancy": "malignant", "subtype": "follicular", "size": "large", "location": "upper pole"}


def _arr(img) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


@pytest.fixture(scope="module")
def pipe(micro_pipe):
    return micro_pipe


@pytest.fixture(scope="module")
def ftc_out(pipe):
    return pipe(chips=FTC, num_inference_steps=STEPS, num_images=2, seed=11)


def test_same_seed_same_image_other_seed_other_image(pipe, ftc_out):
    assert len(ftc_out.images) == 2 and ftc_out.images[0].size == (128, 128) and ftc_out.images[0].mode == "L"
    again = pipe(chips=FTC, num_inference_steps=STEPS, num_images=2, seed=11)
    assert all(np.array_equal(_arr(a), _arr(b)) for a, b in zip(again.images, ftc_out.images))
    assert not np.array_equal(_arr(ftc_out.images[0]), _arr(ftc_out.images[1]))
    assert [r["seed"] for r in ftc_out.records] == [11, 12]


def test_png_record_restores_the_call_exactly(pipe, ftc_out, tmp_path):
    path = tmp_path / "ftc.png"
    pngmeta.write_png(ftc_out.images[1], ftc_out.records[1], path)
    rec = pngmeta.read_record(path)
    assert rec == ftc_out.records[1]
    assert rec["chips"]["subtype"] == "follicular" and rec["background_id"] and rec["mode"] == "diversify"
    assert rec["text_fg"] == knowledge.build_prompts(FTC)[0]
    replay = pipe.replay(rec)
    assert np.array_equal(_arr(replay.images[0]), _arr(Image.open(path)))
    with pytest.raises(pngmeta.RecordError, match="no Tiger parameter record"):
        buf = io.BytesIO()
        Image.new("L", (8, 8)).save(buf, format="PNG")
        pngmeta.read_record(buf.getvalue())
    with pytest.raises(pngmeta.RecordError, match="not an image"):
        pngmeta.read_record(b"plain text, not a picture")


def test_diversify_places_mask_at_the_location_chip(pipe, ftc_out):
    rec = ftc_out.records[0]
    mask = pngmeta.b64png_to_array(rec["mask"])
    _, gland = pipe.background_bank.get(rec["background_id"], size=128)
    assert location_of(mask, gland) == "upper pole"


@pytest.mark.parametrize("size", ["small", "middle", "large"])
def test_diversify_mask_is_the_canvas_mask_for_a_size_chip(pipe, size):
    """One placement path: on a gland smaller than the frame, the size chip gives the pipeline's
    Diversify mask the area the Synthesize canvas gives it (the canvas centres it in the third,
    Diversify picks a seeded point of the third, so only the position may differ)."""
    from tiger.conditions import GlandExtent
    from ui import placement

    gland = GlandExtent(20, 40, 110, 100, "horizontal", "start")
    sobel = np.zeros((128, 128), np.uint8)
    canvas_mask = placement.new_placement(sobel, gland, size=size, location="inferior")["mask"] > 0
    diversify = pipe._placed_mask({"size": size, "location": "inferior"}, gland, seed=3) > 0
    assert location_of(diversify, gland) == "inferior"
    assert abs(int(diversify.sum()) - int(canvas_mask.sum())) <= 0.02 * canvas_mask.sum(), (diversify.sum(), canvas_mask.sum())


def test_reference_mode_with_strength_reproduces(pipe, tmp_path):
    real = Image.open(sorted((SHARED_DATA / "ddti" / "images").glob("*.jpg"))[0])
    mask = np.zeros((128, 128), np.uint8)
    mask[50:80, 40:90] = 255
    out = pipe(chips={"subtype": "medullary"}, reference_image=real, mask=mask, strength=0.6,
               num_inference_steps=3, seed=4)
    rec = out.records[0]
    assert rec["mode"] == "reference" and rec["strength"] == 0.6 and rec["reference_image"]
    again = pipe(**record_to_kwargs(rec))
    assert np.array_equal(_arr(again.images[0]), _arr(out.images[0]))
    weaker = pipe(chips={"subtype": "medullary"}, reference_image=real, mask=mask, strength=0.3,
                  num_inference_steps=3, seed=4)
    assert not np.array_equal(_arr(weaker.images[0]), _arr(out.images[0]))


@pytest.fixture(scope="module")
def hearing_pipe(micro_model_dir):
    """The micro model with its ControlNets' zero convolutions (and the condition embeddings'
    last convs) made non-zero, so each encoder changes the output, as a trained one does."""
    import torch
    p = TigerPipeline.from_pretrained(micro_model_dir)
    p.set_progress_bar_config(disable=True)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for cn in (p.controlnet_fg, p.controlnet_bg):
            for zc in [cn.controlnet_cond_embedding.conv_out, *cn.controlnet_down_blocks, cn.controlnet_mid_block]:
                zc.weight.copy_(torch.randn(zc.weight.shape, generator=g) * 0.2)
    return p


def test_encoder_choices_and_explicit_sobel(hearing_pipe):
    pipe = hearing_pipe
    sobs = [np.asarray(Image.open(f)) for f in sorted((pipe.background_bank.folder / "sobel").glob("*.png"))[:2]]
    outs = {}
    for enc in ("both", "fg", "bg", "none"):
        o = pipe(chips=FTC, sobel=sobs[0], encoders=enc, num_inference_steps=2, seed=1)
        assert o.records[0]["encoders"] == enc and o.records[0]["sobel"]
        outs[enc] = _arr(o.images[0])
        replay = pipe.replay(o.records[0])
        assert np.array_equal(_arr(replay.images[0]), outs[enc]), enc
    encs = list(outs)
    for i, a in enumerate(encs):          # every encoder choice draws something else
        for b in encs[i + 1:]:
            assert np.abs(outs[a] - outs[b]).mean() > 0.5, (a, b)
    # the placed mask follows each Sobel map's gland, so the other map gets the same mask explicitly
    placed = pngmeta.b64png_to_array(pipe(chips=FTC, sobel=sobs[0], encoders="fg", num_inference_steps=1,
                                          seed=1).records[0]["mask"])
    outs["fg"] = _arr(pipe(chips=FTC, sobel=sobs[0], mask=placed, encoders="fg", num_inference_steps=2, seed=1).images[0])
    other = {enc: _arr(pipe(chips=FTC, sobel=sobs[1], mask=placed if enc == "fg" else None, encoders=enc,
                            num_inference_steps=2, seed=1).images[0]) for enc in ("fg", "bg")}
    assert np.array_equal(other["fg"], outs["fg"])        # the FG encoder alone never reads the Sobel map
    assert not np.array_equal(other["bg"], outs["bg"])     # the BG encoder does


def test_one_unet_pass_per_step(pipe):
    calls = {"unet": []}
    h2 = pipe.unet.register_forward_pre_hook(lambda m, args: calls["unet"].append(args[0].shape[0]))
    try:
        pipe(chips=FTC, num_inference_steps=STEPS, num_images=2, seed=0, guidance_scale=3.0)
        assert calls["unet"] == [4] * STEPS  # uncond + cond halves in one batch
        calls["unet"].clear()
        pipe(chips=FTC, num_inference_steps=1, num_images=2, seed=0, guidance_scale=3.0, beta=0.5)
        assert calls["unet"] == [6]  # + the no-control rows, still one pass
        calls["unet"].clear()
        pipe(chips=FTC, num_inference_steps=1, num_images=2, seed=0, guidance_scale=1.0)
        assert calls["unet"] == [2]  # no guidance: conditional rows only
    finally:
        h2.remove()


def test_text_states_computed_once_per_call(pipe, monkeypatch):
    from tiger import nets
    n = {"calls": 0}
    real = nets.encode_prompts

    def counting(*a, **k):
        n["calls"] += 1
        return real(*a, **k)

    monkeypatch.setattr(nets, "encode_prompts", counting)
    pipe._text_cache.clear()
    pipe(chips=FTC, num_inference_steps=2, num_images=2, seed=0)
    assert n["calls"] == 3  # full, FG and BG texts, each [uncond, cond] once
    pipe(chips=FTC, num_inference_steps=1, seed=4)
    assert n["calls"] == 3  # the next click with the same texts: cached
    pipe(chips={**FTC, "location": "inferior"}, num_inference_steps=1, seed=4)
    assert n["calls"] == 5  # new nodule text: full and FG texts again, the BG text cached


def test_callback_progress_and_cancel(pipe):
    seen = []

    def stop_at_two(p, step, t, kw):
        seen.append(step)
        assert kw["latents"].shape == (1, 4, 32, 32)
        return {"stop": step == 1}

    out = pipe(chips=FTC, num_inference_steps=4, seed=0, callback_on_step_end=stop_at_two)
    assert out.cancelled and out.images == [] and seen == [0, 1]

    def interrupt(p, step, t, kw):
        p._interrupt = True

    assert pipe(chips=FTC, num_inference_steps=4, seed=0, callback_on_step_end=interrupt).cancelled
    assert not pipe(chips=FTC, num_inference_steps=1, seed=0).cancelled  # the flag is reset


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_inference_steps=0), "num_inference_steps"),
    (dict(num_inference_steps=10000), "1 to 1000"),
    (dict(mask=np.ones((64, 64), np.uint8) * 255), "64x64 pixels"),
    (dict(mask=np.zeros((128, 128), np.uint8)), "empty"),
    (dict(mask=np.ones((128, 128), np.uint8)), "whole image"),
    (dict(reference_image=b"%PDF-1.4 not an image", mask=np.pad(np.ones((8, 8)), 60)), "not a readable image"),
    (dict(reference_image=np.zeros((128, 128), np.uint8)), "needs the nodule mask"),
    (dict(seed=[1, 2, 3]), "3 seeds for 1 images"),
    (dict(encoders="middle"), "encoders"),
    (dict(guidance_scale="lots"), "guidance_scale"),
    (dict(background_id="../../etc/passwd"), "unknown background"),
])
def test_bad_input_is_refused_with_a_message(pipe, kwargs, match):
    with pytest.raises(PipelineInputError, match=match):
        pipe(chips=FTC, **{"num_inference_steps": 1, **kwargs})


def test_unknown_or_conflicting_chips(pipe):
    with pytest.raises(knowledge.ChipError):
        pipe(chips={"subtype": "squamous"}, num_inference_steps=1)
    with pytest.raises(knowledge.ChipError):
        pipe(chips={"colour": "blue"}, num_inference_steps=1)


def test_save_pretrained_from_pretrained_bit_identical(pipe, tmp_path):
    a = pipe(chips=FTC, num_inference_steps=1, seed=5)
    pipe.save_pretrained(tmp_path / "copy")
    again = TigerPipeline.from_pretrained(tmp_path / "copy")
    again.set_progress_bar_config(disable=True)
    b = again(chips=FTC, num_inference_steps=1, seed=5)
    assert np.array_equal(_arr(a.images[0]), _arr(b.images[0]))
    assert b.records[0]["background_id"] == a.records[0]["background_id"]


def test_missing_model_folder_names_the_file(micro_model_dir, tmp_path):
    import shutil
    broken = tmp_path / "broken"
    shutil.copytree(micro_model_dir, broken)
    (broken / "controlnet_bg" / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="controlnet_bg/config.json"):
        TigerPipeline.from_pretrained(broken)


def test_background_bank(micro_model_dir, tmp_path):
    bank = BackgroundBank(micro_model_dir / "background_bank")
    rows = bank.list()
    assert len(rows) >= 2 and {"id", "file", "plane", "gland"} <= set(rows[0])
    sob, gland = bank.get(rows[0]["id"])
    assert sob.dtype == np.uint8 and sob.ndim == 2 and sob.max() > 100
    small, g2 = bank.get(rows[0]["id"], size=64)
    assert small.shape == (64, 64) and g2.x1 <= 64
    assert bank.pick(seed=3) == bank.pick(seed=3)
    with pytest.raises(BackgroundError, match="unknown background"):
        bank.get("no-such-id")
    (tmp_path / "bad").mkdir()
    with pytest.raises(BackgroundError, match="index.jsonl"):
        BackgroundBank(tmp_path / "bad")


def test_bank_holds_training_backgrounds_only(micro_model_dir, ddti_small):
    from tiger.data import load_metadata, split
    parts = split(load_metadata(ddti_small), seed=0)
    ids = set(BackgroundBank(micro_model_dir / "background_bank").ids())
    assert ids and ids <= {r["id"] for r in parts["train"]}
    assert not ids & {r["id"] for r in parts["test"] + parts["val"]}


def test_shipped_model_generates(shipped_model_dir):
    pipe = TigerPipeline.from_pretrained(shipped_model_dir)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(chips=FTC, num_inference_steps=2, seed=0)
    assert out.images[0].size == (pipe.image_size, pipe.image_size)
    assert out.records[0]["model_id"] == pipe.model_id


@pytest.mark.parametrize("name", ["dpm++2m", "unipc"])
def test_sampler_by_name_is_recorded_and_replayed(pipe, name):
    out = pipe(chips=FTC, num_inference_steps=3, seed=5, num_images=2, scheduler=name)
    rec = out.records[1]
    assert rec["scheduler"] == name and rec["scheduler_config"] == {}
    assert _arr(pipe.replay(rec).images[0]).tolist() == _arr(out.images[1]).tolist()
    ddim = pipe(chips=FTC, num_inference_steps=3, seed=5, num_images=2)
    assert ddim.records[0]["scheduler"] == "ddim"
    assert not np.array_equal(_arr(ddim.images[1]), _arr(out.images[1]))   # another sampler, another image


def test_swapped_scheduler_as_in_diffusers_is_recorded(micro_pipe):
    from diffusers import UniPCMultistepScheduler
    p = TigerPipeline(**micro_pipe.components, background_bank=micro_pipe.background_bank,
                      model_id=micro_pipe.model_id, image_size=micro_pipe.image_size, clip=micro_pipe.clip)
    p.set_progress_bar_config(disable=True)
    p.scheduler = UniPCMultistepScheduler.from_config(p.scheduler.config, solver_order=3)
    out = p(chips=FTC, num_inference_steps=4, seed=2)
    rec = out.records[0]
    assert rec["scheduler"] == "unipc" and rec["scheduler_config"] == {"solver_order": 3}
    # replayed on a pipeline whose scheduler is DDIM again: the record alone rebuilds UniPC order 3
    assert _arr(micro_pipe.replay(rec).images[0]).tolist() == _arr(out.images[0]).tolist()


def test_unknown_sampler_is_refused(pipe):
    with pytest.raises(PipelineInputError, match="unknown sampler 'euler'.*ddim, dpm\\+\\+2m, unipc"):
        pipe(chips=FTC, num_inference_steps=2, scheduler="euler")


def test_preview_of_the_predicted_clean_image_approaches_the_final(pipe):
    """pred_x0 reaches the callback; the cheap preview of the last step resembles the image."""
    pipe.previewer.__init__()   # no fit yet: the first preview is a full decode that fits the map
    previews = []

    def cb(p, step, t, kw):
        assert kw["pred_x0"].shape == kw["latents"].shape
        previews.append(p.preview_image(kw["pred_x0"][0]))

    out = pipe(chips=FTC, num_inference_steps=6, seed=1, callback_on_step_end=cb)
    assert pipe.previewer.fitted and len(previews) == 6 and previews[0].size == out.images[0].size
    final = _arr(out.images[0]).astype(float)
    err_first = np.abs(_arr(previews[0]).astype(float) - final).mean()
    err_last = np.abs(_arr(previews[-1]).astype(float) - final).mean()
    assert err_last < err_first and err_last < 40


def test_texts_equal_to_the_chips_own_are_no_override(pipe):
    """The UI shows and sends the chip-built texts: the record must not call them user edits."""
    fg, bg = knowledge.build_prompts(knowledge.validate_chips(FTC))
    same = pipe(chips=FTC, text_fg=fg, text_bg=bg, num_inference_steps=1, seed=3).records[0]
    assert not same["text_fg_override"] and not same["text_bg_override"]
    edited = pipe(chips=FTC, text_fg=fg + ", with a thin halo", text_bg=bg, num_inference_steps=1, seed=3).records[0]
    assert edited["text_fg_override"] and not edited["text_bg_override"]
    assert edited["text_fg"].endswith("thin halo") and pipe.replay(edited).records[0]["text_fg"] == edited["text_fg"]


def test_version_1_records_with_steps_still_replay(pipe, ftc_out):
    """Records written before the rename (version 1 said "steps") replay to the same image."""
    new = ftc_out.records[0]
    assert new["version"] == 2 and new["num_inference_steps"] == STEPS and "steps" not in new
    old = {k: v for k, v in new.items() if k != "num_inference_steps"} | {"steps": STEPS, "version": 1}
    assert np.array_equal(_arr(pipe.replay(old).images[0]), _arr(pipe.replay(new).images[0]))


def test_model_control_guidance_is_the_default_beta(pipe, tmp_path):
    """A model folder can carry the control guidance its evaluation chose (continue_model
    --control-guidance): calls that give no beta use it, the record says it, and it survives a
    save; an explicit beta still wins."""
    from training.continue_model import continue_model

    pipe.save_pretrained(tmp_path / "m")
    continue_model(tmp_path / "m", control_guidance=2.0)
    guided = TigerPipeline.from_pretrained(tmp_path / "m")
    guided.set_progress_bar_config(disable=True)
    assert guided.control_guidance == 2.0 and pipe.control_guidance == 1.0
    out = guided(chips=FTC, num_inference_steps=2, seed=4)
    assert out.records[0]["beta"] == 2.0
    explicit = pipe(chips=FTC, num_inference_steps=2, seed=4, beta=2.0)
    assert np.array_equal(_arr(out.images[0]), _arr(explicit.images[0]))
    plain = guided(chips=FTC, num_inference_steps=2, seed=4, beta=1.0)
    assert not np.array_equal(_arr(out.images[0]), _arr(plain.images[0]))
    guided.save_pretrained(tmp_path / "again")
    assert TigerPipeline.from_pretrained(tmp_path / "again").control_guidance == 2.0
    with pytest.raises(Exception, match="control-guidance"):
        continue_model(tmp_path / "m", control_guidance=7.0)


def test_beta_until_limits_control_guidance_to_the_first_steps(pipe, tmp_path):
    """beta_until (guidance in a limited interval): 0 is plain sampling, 1 is beta on every step,
    a share between gives a third image; the record carries it and replays it bit-exactly, and a
    model folder can carry it as its default (continue_model --control-guidance-until)."""
    from training.continue_model import continue_model

    kw = dict(chips=FTC, num_inference_steps=4, seed=6, beta=2.0)
    plain = _arr(pipe(**(kw | {"beta": 1.0})).images[0])
    assert np.array_equal(_arr(pipe(**kw, beta_until=0.0).images[0]), plain)
    assert np.array_equal(_arr(pipe(**kw, beta_until=1.0).images[0]), _arr(pipe(**kw).images[0]))
    half = pipe(**kw, beta_until=0.5)
    assert half.records[0]["beta_until"] == 0.5

    def final_latents(**extra):  # the tiny model's last steps may round to the same pixels
        seen = {}
        pipe(**(kw | extra), callback_on_step_end=lambda _p, _i, _t, st: seen.update(x=st["latents"].clone()))
        return seen["x"]

    half_x = final_latents(beta_until=0.5)
    assert not torch.equal(half_x, final_latents(beta=1.0))
    assert not torch.equal(half_x, final_latents())
    assert np.array_equal(_arr(pipe.replay(half.records[0]).images[0]), _arr(half.images[0]))
    with pytest.raises(PipelineInputError, match="beta_until"):
        pipe(**kw, beta_until=1.5)
    pipe.save_pretrained(tmp_path / "m")
    continue_model(tmp_path / "m", control_guidance=2.0, control_guidance_until=0.5)
    limited = TigerPipeline.from_pretrained(tmp_path / "m")
    limited.set_progress_bar_config(disable=True)
    assert limited.control_guidance_until == 0.5
    assert np.array_equal(_arr(limited(chips=FTC, num_inference_steps=4, seed=6).images[0]), _arr(half.images[0]))
    with pytest.raises(Exception, match="control-guidance-until"):
        continue_model(tmp_path / "m", control_guidance_until=2.0)
