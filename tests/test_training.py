"""Training chain at micro size on real DDTI images (the `ddti_small` fixture, ~24 samples).

What is checked, and how it could fail:
- each stage lowers a FIXED-batch loss (fixed images, noise and timesteps, so not flaky):
  the stage is run to step 0 (which saves the initial model), then resumed for a few steps;
- a stopped-and-resumed stage ends bit-identical to an uninterrupted one (models, EMA);
- the discriminator learns (its hinge loss leaves chance level 2.0 on real vs smoothed images);
- one `train_chain` command writes a folder that `TigerPipeline.from_pretrained` loads and
  samples from, with a background bank from the TRAIN split only and training_log/;
- bad input gets a clear message.
Everything runs in fp32 on the CPU with batches of 4.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from training import train_chain, train_clip, train_coarse, train_fine, train_vae
from training.budget import parse_minutes
from training.ema import EMA
from training.errors import TrainingInputError
from training.loss_log import read_csv
from training.stage_run import stage_is_done
from training.tensor_data import load_split

STEPS = dict(clip=2, vae=2, coarse=2, fine=2)
COMMON = ["--preset", "micro", "--device", "cpu", "--precision", "fp32", "--log-every", "1"]


def _run(module, data: Path, out: Path, *extra: str):
    return module.train(module.build_parser().parse_args(["--data", str(data), "--out", str(out), *COMMON, *extra]))


@pytest.fixture(scope="module")
def chain(ddti_small: Path, tmp_path_factory) -> tuple[Path, Path, dict]:
    """The whole chain once, at micro size and 2 steps per stage."""
    root = tmp_path_factory.mktemp("chain")
    out, work = root / "model", root / "work"
    steps = ",".join(f"{k}={v}" for k, v in STEPS.items())
    argv = ["--data", str(ddti_small), "--out", str(out), "--work", str(work), "--preset", "micro",
            "--device", "cpu", "--precision", "fp32", "--steps", steps, "--batch", "clip=8,vae=4,coarse=4,fine=4",
            "--log-every", "1"]
    train_chain.run_chain(argv)
    return out, work, {"argv": argv}


# ------------------------------------------------------------------ the chain end to end

def test_chain_writes_a_loadable_model_folder(chain, ddti_small):
    from tiger.data import load_metadata, split
    from tiger.pipeline import TigerPipeline

    out, work, _ = chain
    for sub in ("vae", "unet", "controlnet_fg", "controlnet_bg", "fusion", "text_encoder", "scheduler",
                "background_bank", "training_log"):
        assert (out / sub).is_dir(), sub
    weights = load_file(str(out / "unet" / "diffusion_pytorch_model.safetensors"))
    assert all(v.dtype == torch.float16 for v in weights.values())
    info = json.loads((out / "training_log" / "train_info.json").read_text())
    assert info["split_seed"] == 0
    for stage, n in STEPS.items():
        s = info["stages"][stage]
        assert s["steps"] == n and s["device"].startswith("cpu") and s["train_seconds"] > 0
        assert (out / "training_log" / f"{stage}.csv").exists()
        assert (out / "training_log" / f"{stage}_loss.png").stat().st_size > 1000
    # background bank = training split only
    parts = split(load_metadata(ddti_small), seed=0)
    bank_ids = {json.loads(line)["id"] for line in (out / "background_bank" / "index.jsonl").read_text().splitlines()}
    assert bank_ids == {r["id"] for r in parts["train"]}
    assert not bank_ids & {r["id"] for r in parts["test"] + parts["val"]}

    pipe = TigerPipeline.from_pretrained(out)
    res = pipe(chips={"malignancy": "malignant", "subtype": "papillary"}, num_inference_steps=2, seed=3)
    assert res.images[0].size == (128, 128)


def test_chain_rerun_skips_finished_stages(chain, capsys):
    out, work, meta = chain
    train_chain.run_chain(meta["argv"])
    info = json.loads((out / "training_log" / "train_info.json").read_text())
    assert info["stages_skipped"] == ["clip", "vae", "coarse", "fine"] and info["stages_run"] == []
    assert "already finished" in capsys.readouterr().out


# ------------------------------------------------------------------ fixed-batch losses

def _fixed_clip_loss(folder: Path, data) -> float:
    from tiger.domain_clip import DomainCLIP, tokenize

    m = DomainCLIP.from_pretrained(str(folder)).float().eval()
    tok = tokenize(data.text[:8], m.context_length)
    with torch.no_grad():
        img, txt, scale = m(data.images[:8], tok)
        return train_clip.contrastive_loss(img, txt, scale, tok).item()


def test_clip_steps_lower_the_loss(ddti_small, tmp_path):
    data = load_split(ddti_small, "train")
    _run(train_clip, ddti_small, tmp_path, "--max-steps", "0", "--batch-size", "8")
    before = _fixed_clip_loss(tmp_path / "model", data)
    done = _run(train_clip, ddti_small, tmp_path, "--max-steps", "6", "--batch-size", "8", "--lr", "1e-3")
    assert done["resumed"] and done["steps"] == 6
    assert _fixed_clip_loss(tmp_path / "model", data) < before


def _fixed_vae_loss(folder: Path, x: torch.Tensor) -> float:
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(str(folder)).float().eval()
    with torch.no_grad():
        return train_vae.vae_losses(vae, x, 1.0, 1e-5)[0].item()


def test_vae_steps_lower_the_loss(ddti_small, tmp_path):
    x = load_split(ddti_small, "train").images[:4]
    _run(train_vae, ddti_small, tmp_path, "--max-steps", "0", "--no-disc")
    before = _fixed_vae_loss(tmp_path / "model", x)
    _run(train_vae, ddti_small, tmp_path, "--max-steps", "6", "--no-disc", "--batch-size", "4", "--lr", "2e-3")
    assert _fixed_vae_loss(tmp_path / "model", x) < before
    # the latent scaling factor was measured, not left at the preset's 1.0
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    assert cfg["scaling_factor"] != 1.0 and cfg["scaling_factor"] > 0


def _fixed_v_batch(work: Path, data):
    """Fixed latents, noise, timesteps and text states of 4 training samples."""
    from tiger import nets
    from training.diffusion import TextBank, load_frozen

    frozen = load_frozen("micro", str(work / "vae" / "model"), str(work / "clip" / "model"), torch.device("cpu"))
    with torch.no_grad():
        z0 = frozen.vae.encode(data.images[:4]).latent_dist.mean * frozen.scaling_factor
        g = torch.Generator().manual_seed(123)
        noise = torch.randn(z0.shape, generator=g)
        t = torch.tensor([50, 300, 600, 900])
        sched = nets.build_noise_scheduler(nets.build_scheduler())
        zt, v = sched.add_noise(z0, noise, t), sched.get_velocity(z0, noise, t)
        bank = TextBank(frozen.text_encoder, data.text[:4] + data.text_bg[:4])
        fg, om = nets.encode_prompts(frozen.text_encoder, data.text_fg[:4], reweight=True)
    return dict(zt=zt, t=t, v=v, full=bank(data.text[:4]), bg=bank(data.text_bg[:4]), fg=fg, omega=om,
                mask=data.masks[:4], sobel=data.sobel[:4])


def _coarse_loss(unet_dir: Path, b: dict) -> float:
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(str(unet_dir)).float().eval()
    with torch.no_grad():
        return torch.nn.functional.mse_loss(unet(b["zt"], b["t"], encoder_hidden_states=b["full"]).sample, b["v"]).item()


def _stage_inputs(work: Path) -> list[str]:
    return ["--vae", str(work / "vae" / "model"), "--text-encoder", str(work / "clip" / "model")]


def test_coarse_steps_lower_the_loss(chain, ddti_small, tmp_path):
    _, work, _ = chain
    b = _fixed_v_batch(work, load_split(ddti_small, "train"))
    args = [*_stage_inputs(work), "--no-ema", "--batch-size", "4", "--lr", "1e-3"]
    _run(train_coarse, ddti_small, tmp_path, "--max-steps", "0", *args)
    before = _coarse_loss(tmp_path / "model", b)
    _run(train_coarse, ddti_small, tmp_path, "--max-steps", "6", *args)
    assert _coarse_loss(tmp_path / "model", b) < before


def test_fine_steps_lower_the_loss(chain, ddti_small, tmp_path):
    from diffusers import ControlNetModel, UNet2DConditionModel

    from tiger import nets

    _, work, _ = chain
    b = _fixed_v_batch(work, load_split(ddti_small, "train"))
    unet = UNet2DConditionModel.from_pretrained(str(work / "coarse" / "model")).float().eval()

    def loss() -> float:
        m = tmp_path / "model"
        fg = ControlNetModel.from_pretrained(str(m / "controlnet_fg")).float().eval()
        nets.set_omega_processor(fg)
        bg = ControlNetModel.from_pretrained(str(m / "controlnet_bg")).float().eval()
        fu = nets.AFFFusion.from_pretrained(str(m / "fusion")).float().eval()
        with torch.no_grad():
            out = nets.fused_forward(unet, fg, bg, fu, b["zt"], b["t"], b["full"], b["fg"], b["bg"], b["omega"],
                                     b["mask"], b["sobel"])
        return torch.nn.functional.mse_loss(out, b["v"]).item()

    args = [*_stage_inputs(work), "--unet", str(work / "coarse" / "model"), "--no-ema", "--batch-size", "4",
            "--lr", "1e-3", "--text-dropout", "0", "--cond-dropout", "0", "--shifts=-32,0,32"]
    _run(train_fine, ddti_small, tmp_path, "--max-steps", "0", *args)
    before = loss()
    done = _run(train_fine, ddti_small, tmp_path, "--max-steps", "6", *args)
    assert "AdamW x3" in done["optimizers"] and done["shifts"] == [-32, 0, 32]
    assert loss() < before


def test_cubic_timesteps_favour_the_noisy_third():
    """The fine stage's --timesteps cubic draw: about 69% of draws in the noisiest third
    (uniform: 33%), all inside [0, T), and a clear error for an unknown draw."""
    from training.diffusion import draw_timesteps

    share = {}
    for name in ("uniform", "cubic"):
        t = draw_timesteps(20000, 1000, torch.Generator().manual_seed(0), name)
        assert int(t.min()) >= 0 and int(t.max()) <= 999
        share[name] = float((t >= 667).float().mean())
    assert abs(share["uniform"] - 1 / 3) < 0.02
    assert abs(share["cubic"] - (1 / 3) ** (1 / 3)) < 0.02
    with pytest.raises(ValueError, match="timestep sampling"):
        draw_timesteps(4, 1000, torch.Generator(), "logit")


# ------------------------------------------------------------------ resume

@pytest.mark.parametrize("stage", ["vae", "coarse"])
def test_resumed_stage_equals_uninterrupted(stage, chain, ddti_small, tmp_path):
    """4 steps == 2 steps, pause, resume, 2 steps: models (VAE + critic; UNet + EMA) and
    optimiser states are restored and every random draw depends only on (seed, step)."""
    _, work, _ = chain
    if stage == "vae":
        module, args = train_vae, ["--batch-size", "2", "--disc-start", "0", "--disc-warmup", "0.25", "--disc-gate", "2.5"]
        files = ("model.safetensors", "model_1.safetensors")
    else:
        module, args = train_coarse, [*_stage_inputs(work), "--batch-size", "4"]
        files = ("model.safetensors", "custom_checkpoint_1.pkl")
    args += ["--max-steps", "4"]
    _run(module, ddti_small, tmp_path / "a", *args)
    paused = _run(module, ddti_small, tmp_path / "b", *args, "--pause-after", "2")
    assert paused["steps"] == 2 and not paused["finished"] and not stage_is_done(tmp_path / "b")
    done = _run(module, ddti_small, tmp_path / "b", *args)
    assert done["resumed"] and done["steps"] == 4 and stage_is_done(tmp_path / "b")
    for name in files:
        pa, pb = tmp_path / "a" / "checkpoint" / name, tmp_path / "b" / "checkpoint" / name
        if name.endswith(".pkl"):
            sa, sb = torch.load(pa, weights_only=True), torch.load(pb, weights_only=True)
            assert sa["optimization_step"] == sb["optimization_step"] == 4
            a, b = dict(enumerate(sa["shadow_params"])), dict(enumerate(sb["shadow_params"]))
        else:
            a, b = load_file(str(pa)), load_file(str(pb))
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    assert [r["step"] for r in read_csv(tmp_path / "b" / "log.csv")] == ["1", "2", "3", "4"]
    if stage == "vae":  # the critic trained, its loss was logged, its term reached the decoder
        rows = read_csv(tmp_path / "b" / "log.csv")
        assert any(r.get("d_loss") for r in rows) and any(r.get("adaptive_w") for r in rows)


# ------------------------------------------------------------------ discriminator, EMA, helpers

def test_discriminator_learns_real_from_smoothed(ddti_small):
    """Real speckle vs a smoothed copy (what an L1 autoencoder produces): the critic must move
    its hinge loss well below chance level 2.0 within a few dozen steps."""
    from training.discriminator import PatchDiscriminator, hinge_d_loss

    torch.manual_seed(0)
    real = load_split(ddti_small, "train").images[:8]
    fake = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(real, 4), scale_factor=4, mode="bilinear")
    d = PatchDiscriminator(width=16)
    opt = torch.optim.Adam(d.parameters(), lr=4e-4, betas=(0.5, 0.9))
    losses = []
    for _ in range(40):
        loss = hinge_d_loss(d(real), d(fake))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 1.8 and sum(losses[-10:]) / 10 < 1.4  # GAN losses are noisy: average


def test_gan_ramp_and_adaptive_weight():
    from training.discriminator import adaptive_weight, gan_ramp

    assert gan_ramp(0.2, 0.5, 0.1) == (False, 0.0)
    assert gan_ramp(0.55, 0.5, 0.1) == (True, 0.0)  # critic warms up alone
    assert gan_ramp(0.65, 0.5, 0.1)[1] == pytest.approx(0.5)
    assert gan_ramp(0.9, 0.5, 0.1) == (True, 1.0)
    w = torch.nn.Parameter(torch.ones(3))
    assert adaptive_weight((w * 2).sum(), (w * 4).sum(), w).item() == pytest.approx(0.5, rel=1e-3)


def test_ema_tracks_and_round_trips():
    m = torch.nn.Linear(2, 2)
    ema = EMA(m, max_decay=0.9)
    with torch.no_grad():
        m.weight.add_(1.0)
    ema.update(m)                 # first update: the average starts at the weights
    first = m.weight.detach().clone()
    with torch.no_grad():
        m.weight.add_(1.0)
    ema.update(m)
    d = ema.get_decay(ema.optimization_step)
    assert 0 < d <= 0.9
    m3 = torch.nn.Linear(2, 2)
    ema.copy_to(m3)
    assert torch.allclose(m3.weight, first + (m.weight - first) * (1 - d))
    assert not torch.allclose(m3.weight, m.weight)  # moved towards, not onto, the new weights
    ema2 = EMA(torch.nn.Linear(2, 2))
    ema2.load_state_dict(ema.state_dict())
    m2 = torch.nn.Linear(2, 2)
    ema2.copy_to(m2)
    assert torch.equal(m2.weight, m3.weight)  # the state dict carries the average


def test_bad_input_is_explained(tmp_path, ddti_small):
    with pytest.raises(TrainingInputError, match="no metadata.jsonl"):
        train_chain.run_chain(["--data", str(tmp_path), "--out", str(tmp_path / "m")])
    with pytest.raises(TrainingInputError, match="stage=number"):
        parse_minutes("vae6")
    with pytest.raises(TrainingInputError, match="unknown stage"):
        train_chain.stage_argv("vae", train_chain.build_parser().parse_args(
            ["--data", "d", "--out", "o", "--minutes", "vea=3"]), tmp_path, "cpu")
    assert train_coarse.main(["--data", str(ddti_small), "--out", str(tmp_path / "c"), *COMMON]) == 2


# ------------------------------------------------------------------ continuing a finished model

def _state(folder: Path, sub: str = "") -> dict:
    f = next((folder / sub).glob("*.safetensors"))
    return {k: v.float() for k, v in load_file(str(f)).items()}


def test_local_hf_term_asks_for_the_inputs_fine_texture(ddti_small):
    """Zero for a perfect reconstruction, large for a smoothed one (the speckle lost), and it
    compares regions: texture moved to another part of the image is not free."""
    x = load_split(ddti_small, "train").images[:4]
    smooth = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(x, 4), scale_factor=4, mode="bilinear")
    assert train_vae.local_hf_l1(x, x).item() == 0.0
    assert train_vae.local_hf_l1(smooth, x).item() > 0.5
    assert train_vae.local_hf_l1(x.flip(-2), x).item() > 0.1


def test_decoder_only_continuation_keeps_the_latent_space(chain, ddti_small, tmp_path):
    _, work, _ = chain
    init = work / "vae" / "model"
    done = _run(train_vae, ddti_small, tmp_path, "--init", str(init), "--train-part", "decoder", "--hf-weight",
                "0.05", "--no-disc", "--crop", "0", "--max-steps", "3", "--batch-size", "4", "--lr", "1e-3")
    assert done["train_part"] == "decoder" and done["steps"] == 3 and "hf" in read_csv(tmp_path / "log.csv")[0]
    before, after = _state(init), _state(tmp_path / "model")
    enc = [k for k in before if k.startswith(("encoder.", "quant_conv."))]
    dec = [k for k in before if k.startswith("decoder.")]
    assert enc and dec
    assert all(torch.equal(before[k], after[k]) for k in enc)
    assert any(not torch.equal(before[k], after[k]) for k in dec)
    cfg = lambda p: json.loads((p / "config.json").read_text())["scaling_factor"]  # noqa: E731
    assert cfg(tmp_path / "model") == cfg(init)
    with pytest.raises(TrainingInputError, match="needs --init"):
        _run(train_vae, ddti_small, tmp_path / "x", "--train-part", "decoder", "--max-steps", "1")


def test_continued_stages_update_a_model_folder(chain, ddti_small, tmp_path):
    """train_fine --init starts from a model folder's own ControlNets and fusion (step 0 equals
    them), and continue_model swaps continued parts into a copy of the folder, which loads and
    samples, keeps the untouched parts byte for byte and logs the continuation."""
    import shutil

    from tiger.pipeline import TigerPipeline
    from training import continue_model

    out, work, _ = chain
    model = tmp_path / "model"
    shutil.copytree(out, model)
    args = [*_stage_inputs(work), "--unet", str(work / "coarse" / "model"), "--init", str(model), "--no-ema",
            "--batch-size", "4", "--lr", "1e-3"]
    _run(train_fine, ddti_small, tmp_path / "fine0", "--max-steps", "0", *args)
    for part in continue_model.FINE_PARTS:
        a, b = _state(model, part), _state(tmp_path / "fine0" / "model", part)
        assert all(torch.equal(a[k], b[k]) for k in a), part
    _run(train_fine, ddti_small, tmp_path / "fine", "--max-steps", "2", *args)
    vae_run = tmp_path / "vae"
    _run(train_vae, ddti_small, vae_run, "--init", str(model / "vae"), "--train-part", "decoder", "--no-disc",
         "--crop", "0", "--max-steps", "2", "--batch-size", "4")
    unet_bytes = (model / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()

    assert continue_model.main(["--base", str(model), "--vae", str(vae_run), "--fine", str(tmp_path / "fine"),
                                "--model-id", "micro-v2"]) == 0
    assert (model / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == unet_bytes
    new_fg, trained_fg = _state(model, "controlnet_fg"), _state(tmp_path / "fine" / "model", "controlnet_fg")
    assert all(torch.allclose(new_fg[k], trained_fg[k], atol=1e-2, rtol=1e-2) for k in new_fg)
    assert all(v.dtype == torch.float16 for v in load_file(str(model / "vae" / "diffusion_pytorch_model.safetensors")).values())
    info = json.loads((model / "training_log" / "train_info.json").read_text())
    cont = info["continuations"][-1]
    assert cont["stages"]["fine"]["steps"] == 2 and cont["stages"]["vae"]["train_part"] == "decoder"
    assert cont["model_id"]["to"] == "micro-v2" and (model / "training_log" / "fine_continued.csv").exists()
    pipe = TigerPipeline.from_pretrained(model)
    assert pipe.model_id == "micro-v2"
    assert pipe(chips={"composition": "solid"}, num_inference_steps=2, seed=1).images[0].size == (128, 128)

    # a whole-VAE run (new latent scale) would silently break the UNets: refused
    full = tmp_path / "vae-full"
    _run(train_vae, ddti_small, full, "--init", str(model / "vae"), "--no-disc", "--max-steps", "2", "--batch-size", "4")
    vae_bytes = (model / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert continue_model.main(["--base", str(model), "--vae", str(full)]) == 2
    # a good VAE beside an unfinished fine run: refused before anything is written
    more = tmp_path / "vae-more"
    _run(train_vae, ddti_small, more, "--init", str(model / "vae"), "--train-part", "decoder", "--no-disc",
         "--crop", "0", "--max-steps", "1", "--batch-size", "4")
    assert continue_model.main(["--base", str(model), "--vae", str(more), "--fine", str(tmp_path / "nope")]) == 2
    assert (model / "vae" / "diffusion_pytorch_model.safetensors").read_bytes() == vae_bytes


def test_eval_vae_prints_both_numbers_and_a_grid(chain, ddti_small, tmp_path, capsys):
    from PIL import Image

    from training import eval_vae

    _, work, _ = chain
    grid = tmp_path / "rec.png"
    assert eval_vae.main(["--vae", str(work / "vae" / "model"), "--data", str(ddti_small), "--split", "train",
                          "--device", "cpu", "--grid", str(grid)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["psnr_db"] > 0 and res["laplacian_var_ratio"] > 0 and res["images"] >= 2
    img = Image.open(grid)
    n = min(6, res["images"])
    assert img.size == (n * 128 * 2, 2 * 128 * 2)
    assert eval_vae.main(["--vae", str(tmp_path), "--data", str(ddti_small)]) == 2


def test_mask_channel_fine_stage_trains_the_unet_and_ships_it(chain, ddti_small, tmp_path):
    """train_fine --mask-channel --unet-lr widens the UNet (its fifth input starts at zero),
    trains it beside the ControlNets, and continue_model ships the wider UNet, which the pipeline
    samples from; without --unet-lr the flag is refused (the new weights would never train)."""
    import shutil

    from tiger.pipeline import TigerPipeline
    from training import continue_model

    out, work, _ = chain
    model = tmp_path / "model"
    shutil.copytree(out, model)
    args = [*_stage_inputs(work), "--unet", str(model / "unet"), "--init", str(model), "--no-ema",
            "--batch-size", "4", "--lr", "1e-3", "--mask-channel"]
    with pytest.raises(TrainingInputError, match="--unet-lr"):
        _run(train_fine, ddti_small, tmp_path / "refused", "--max-steps", "1", *args)
    _run(train_fine, ddti_small, tmp_path / "fine", "--max-steps", "3", "--unet-lr", "1e-3", "--control-lr", "1e-2",
         *args)
    trained = _state(tmp_path / "fine" / "model", "unet")
    assert trained["conv_in.weight"].shape[1] == 5 and float(trained["conv_in.weight"][:, 4].abs().max()) > 0
    assert continue_model.main(["--base", str(model), "--fine", str(tmp_path / "fine"), "--model-id", "micro-mc"]) == 0
    pipe = TigerPipeline.from_pretrained(model)
    assert pipe.unet.config.in_channels == 5
    assert pipe(chips={"composition": "solid"}, encoders="fg", num_inference_steps=2, seed=1).images[0].size == (128, 128)


def test_plain_dropout_trains_the_no_control_path(chain, ddti_small, tmp_path):
    """train_fine --plain-dropout trains rows without any control (the estimate control guidance
    extrapolates from): at 1.0 every row is plain, so the UNet learns and the ControlNets, which
    then get no gradient, stay exactly as they started; the share is recorded with the run."""
    import json
    import shutil

    out, work, _ = chain
    model = tmp_path / "model"
    shutil.copytree(out, model)
    args = [*_stage_inputs(work), "--unet", str(model / "unet"), "--init", str(model), "--no-ema",
            "--batch-size", "4", "--lr", "1e-3", "--mask-channel", "--unet-lr", "1e-3", "--plain-dropout", "1.0"]
    _run(train_fine, ddti_small, tmp_path / "fine", "--max-steps", "2", *args)
    before, after = _state(model, "controlnet_fg"), _state(tmp_path / "fine" / "model", "controlnet_fg")
    assert all(torch.equal(before[k], after[k].to(before[k].dtype)) for k in before)
    unet_before, unet_after = _state(model, "unet"), _state(tmp_path / "fine" / "model", "unet")
    assert any(not torch.equal(unet_before[k].float(), unet_after[k].float()[:, :4] if k == "conv_in.weight" else
                               unet_after[k].float()) for k in unet_before)
    assert json.loads((tmp_path / "fine" / "done.json").read_text())["plain_dropout"] == 1.0
