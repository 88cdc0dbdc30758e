"""tiger.nets: AFF fusion, omega re-weighting, the FG attention processor, the shared forward and
the model folder. Micro preset (real diffusers modules, minimal widths)."""
from __future__ import annotations

import json
import math

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor

from tiger import knowledge, nets


@pytest.fixture(scope="module")
def micro():
    comps = nets.build_components("micro", seed=0)
    # ControlNets start with zero convs (all-zero residuals); give them weights so tests can see them.
    g = torch.Generator().manual_seed(1)
    for cn in (comps["controlnet_fg"], comps["controlnet_bg"]):
        for blk in list(cn.controlnet_down_blocks) + [cn.controlnet_mid_block]:
            blk.weight.data = torch.randn(blk.weight.shape, generator=g) * 0.1
    return comps


def _inputs(comps, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    lat = torch.randn(b, 4, 32, 32, generator=g)
    mask = torch.zeros(b, 1, 128, 128)
    mask[:, :, 40:90, 30:100] = 1
    sob = torch.rand(b, 1, 128, 128, generator=g)
    te = comps["text_encoder"]
    fg, om = nets.encode_prompts(te, ["malignant, medullary carcinoma, solid composition"] * b, reweight=True)
    bg, _ = nets.encode_prompts(te, ["thyroid ultrasound image, transverse plane"] * b, reweight=False)
    full, _ = nets.encode_prompts(te, ["malignant, medullary carcinoma. thyroid ultrasound image"] * b, reweight=False)
    return lat, full, fg, bg, om, mask, sob


def test_aff_at_init_is_exactly_fg_plus_bg_and_learns_away_from_it():
    fusion = nets.AFFFusion(channels=[8, 16, 16], reduction=2, norm="group")
    fg = [torch.randn(2, c, 5, 5) for c in (8, 16, 16)]
    bg = [torch.randn(2, c, 5, 5) for c in (8, 16, 16)]
    for out, a, b in zip(fusion(fg, bg), fg, bg):
        assert torch.equal(out, a + b)
    with torch.no_grad():
        fusion.blocks[0].local_att[-1].weight.normal_()
    assert not torch.allclose(fusion(fg, bg)[0], fg[0] + bg[0])
    # GroupNorm/no norm: each sample is fused on its own (batch 1 == row of batch 2)
    single = fusion([x[:1] for x in fg], [x[:1] for x in bg])[0]
    assert torch.allclose(single, fusion(fg, bg)[0][:1], atol=1e-6)
    with pytest.raises(ValueError, match="BatchNorm"):
        nets.AFFFusion(channels=[8], norm="batch")


def test_presets_give_13_residuals_at_latent_size(micro):
    cn = micro["controlnet_fg"]
    assert len(nets.controlnet_residual_channels(cn)) == 13
    assert len(micro["fusion"].blocks) == 13
    lat, full, fg, bg, om, mask, sob = _inputs(micro)
    down, mid = nets.control_residuals(micro["controlnet_fg"], micro["controlnet_bg"], micro["fusion"], lat,
                                       torch.tensor([10, 10]), fg, bg, om, mask, sob)
    assert len(down) == 12 and down[0].shape[-2:] == (32, 32)
    tiny_unet = nets.build_unet("tiny")
    assert 4e6 <= nets.count_parameters(tiny_unet) <= 8e6
    assert tiny_unet.config.cross_attention_dim == nets.build_text_encoder("tiny").text_width


def test_omega_values_from_term_classes(micro):
    assert nets.omega_of_delta(0.0).item() == pytest.approx(3.1)
    assert nets.omega_of_delta(1.0).item() == pytest.approx(0.6 + 5 / (1 + math.exp(5)), abs=1e-6)
    text = "malignant, medullary carcinoma, solid composition, hypoechoic"
    classes = dict((p.strip(), c) for p, c in knowledge.term_classes(text) if p.strip(" ,"))
    assert "particular" in classes.values() and "joint" in classes.values()
    _, om = nets.encode_prompts(micro["text_encoder"], [text, "benign, cystic composition"], reweight=True)
    vals = set(round(v, 3) for v in om[0].tolist())
    assert 3.1 in vals and 0.633 in vals
    joint = [v for v in om[0].tolist() if 0.64 < v < 3.09]
    assert joint, "joint terms get omega between 0.633 and 3.1"
    _, om_bg = nets.encode_prompts(micro["text_encoder"], [text], reweight=False)
    assert torch.equal(om_bg, torch.ones_like(om_bg))


def test_joint_term_frequency_is_per_batch(micro):
    te = micro["text_encoder"]
    text = "malignant, solid composition"
    _, one = nets.encode_prompts(te, [text], reweight=True)
    _, mixed = nets.encode_prompts(te, [text, "malignant, follicular carcinoma, large size"], reweight=True)
    assert not torch.allclose(one[0], mixed[0])


def _reference_attention(attn, x, ctx, omega):
    q, k, v = attn.to_q(x), attn.to_k(ctx), attn.to_v(ctx)
    B, N, _ = q.shape
    h = attn.heads
    d = q.shape[-1] // h
    q = q.view(B, N, h, d).transpose(1, 2)
    k = k.view(B, -1, h, d).transpose(1, 2)
    v = v.view(B, -1, h, d).transpose(1, 2)
    logits = omega[:, None, None, :] * (q @ k.transpose(-1, -2)) / math.sqrt(d)
    out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(B, N, h * d)
    return attn.to_out[0](out)


def test_omega_processor_matches_hand_written_reference():
    torch.manual_seed(0)
    attn = Attention(query_dim=16, cross_attention_dim=12, heads=2, dim_head=8)
    x, ctx = torch.randn(3, 10, 16), torch.randn(3, 7, 12)
    omega = torch.rand(3, 7) * 3 + 0.5
    attn.set_processor(nets.OmegaAttnProcessor())
    got = attn(x, encoder_hidden_states=ctx, omega=omega)
    assert torch.allclose(got, _reference_attention(attn, x, ctx, omega), atol=1e-5)
    ones = attn(x, encoder_hidden_states=ctx, omega=torch.ones(3, 7))
    attn.set_processor(AttnProcessor())
    assert torch.allclose(ones, attn(x, encoder_hidden_states=ctx), atol=1e-5)
    assert not torch.allclose(got, ones, atol=1e-3)


def test_fg_and_bg_controlnets_get_their_own_texts(micro):
    seen = {}

    def hook(name):
        def _h(module, args, kwargs):
            seen[name] = (kwargs["encoder_hidden_states"], (kwargs.get("cross_attention_kwargs") or {}).get("omega"))
        return _h

    hs = [micro["controlnet_fg"].register_forward_pre_hook(hook("fg"), with_kwargs=True),
          micro["controlnet_bg"].register_forward_pre_hook(hook("bg"), with_kwargs=True)]
    try:
        lat, full, fg, bg, om, mask, sob = _inputs(micro)
        with torch.no_grad():
            nets.fused_forward(micro["unet"], micro["controlnet_fg"], micro["controlnet_bg"], micro["fusion"],
                               lat, 50, full, fg, bg, om, mask, sob)
    finally:
        for h in hs:
            h.remove()
    assert torch.equal(seen["fg"][0], fg) and torch.equal(seen["bg"][0], bg)
    assert not torch.allclose(seen["fg"][0], seen["bg"][0])
    assert torch.equal(seen["fg"][1], om) and seen["bg"][1] is None


def test_fused_forward_at_init_equals_multicontrolnet_sum(micro):
    lat, full, fg, bg, om, mask, sob = _inputs(micro)
    u, f, b = micro["unet"], micro["controlnet_fg"], micro["controlnet_bg"]
    t = torch.tensor([100, 100])
    with torch.no_grad():
        ours = nets.fused_forward(u, f, b, micro["fusion"], lat, t, full, fg, bg, om, mask, sob, 0.8, 1.2)
        d1, m1 = f(lat, t, fg, mask, conditioning_scale=0.8, cross_attention_kwargs={"omega": om}, return_dict=False)
        d2, m2 = b(lat, t, bg, sob, conditioning_scale=1.2, return_dict=False)
        ref = u(lat, t, full, down_block_additional_residuals=[x + y for x, y in zip(d1, d2)],
                mid_block_additional_residual=m1 + m2).sample
        plain = u(lat, t, full).sample
    assert torch.allclose(ours, ref, atol=1e-5)
    assert not torch.allclose(ours, plain, atol=1e-4)


def test_n_plain_rows_are_the_uncontrolled_unet(micro):
    lat, full, fg, bg, om, mask, sob = _inputs(micro)
    u = micro["unet"]
    batch = torch.cat([lat, lat[:1]])
    ctx = torch.cat([full, full[:1]])
    with torch.no_grad():
        out = nets.fused_forward(u, micro["controlnet_fg"], micro["controlnet_bg"], micro["fusion"], batch, 100,
                                 ctx, fg, bg, om, mask, sob, n_plain=1)
        plain = u(lat[:1], torch.tensor([100]), full[:1]).sample
        none = nets.fused_forward(u, None, None, None, lat, 100, full, None, None, None, None, None, encoders="none")
    assert torch.allclose(out[-1:], plain, atol=1e-5)
    assert torch.allclose(none, u(lat, torch.tensor([100, 100]), full).sample, atol=1e-6)
    with pytest.raises(ValueError, match="encoders"):
        nets.fused_forward(u, None, None, None, lat, 100, full, None, None, None, None, None, encoders="left")


def test_mask_channel_unet_starts_as_the_plain_one_and_sees_the_mask_only_when_controlled(micro):
    """widen_for_mask adds a zero-weight fifth input: the same outputs at first; once that weight
    is non-zero the mask moves the controlled rows (encoders fg/both) and nothing else."""
    lat, full, fg, bg, om, mask, sob = _inputs(micro)
    u = micro["unet"]
    wide = nets.widen_for_mask(u)
    assert wide.config.in_channels == 5 and nets.has_mask_channel(wide) and not nets.has_mask_channel(u)
    assert nets.widen_for_mask(wide) is wide
    parts = micro["controlnet_fg"], micro["controlnet_bg"], micro["fusion"]
    with torch.no_grad():
        same = [torch.equal(nets.fused_forward(u, *parts, lat, 100, full, fg, bg, om, mask, sob, encoders=e),
                            nets.fused_forward(wide, *parts, lat, 100, full, fg, bg, om, mask, sob, encoders=e))
                for e in nets.ENCODERS]
        wide.conv_in.weight[:, 4:] = 0.5
        moved = {e: not torch.allclose(nets.fused_forward(u, *parts, lat, 100, full, fg, bg, om, mask, sob, encoders=e),
                                       nets.fused_forward(wide, *parts, lat, 100, full, fg, bg, om, mask, sob, encoders=e),
                                       atol=1e-5)
                 for e in nets.ENCODERS}
        batch, ctx = torch.cat([lat, lat[:1]]), torch.cat([full, full[:1]])
        out = nets.fused_forward(wide, *parts, batch, 100, ctx, fg, bg, om, mask, sob, n_plain=1)
        plain = nets.fused_forward(wide, None, None, None, lat[:1], 100, full[:1], None, None, None, None, None,
                                   encoders="none")
    assert all(same)
    assert moved == {"fg": True, "both": True, "bg": False, "none": False}
    assert torch.allclose(out[-1:], plain, atol=1e-5)
    ch = nets.mask_at_latent(mask, lat, 2, True)
    assert ch.shape == (2, 1, 32, 32) and float(ch.max()) == 1.0 and float(ch.min()) == 0.0
    assert abs(float(ch.mean()) - float(mask.mean())) < 1e-6  # area average keeps the nodule's area


def test_save_load_round_trip_and_folder_errors(micro, tmp_path):
    folder = nets.save_components(micro, tmp_path / "m", fp16=False)
    loaded = nets.load_components(folder)
    assert isinstance(loaded["controlnet_fg"].attn_processors[next(iter(loaded["controlnet_fg"].attn_processors))],
                      nets.OmegaAttnProcessor)
    lat, full, fg, bg, om, mask, sob = _inputs(micro)
    with torch.no_grad():
        a = nets.fused_forward(micro["unet"], micro["controlnet_fg"], micro["controlnet_bg"], micro["fusion"],
                               lat, 10, full, fg, bg, om, mask, sob)
        b = nets.fused_forward(loaded["unet"], loaded["controlnet_fg"], loaded["controlnet_bg"], loaded["fusion"],
                               lat, 10, full, fg, bg, om, mask, sob)
    assert torch.equal(a, b)
    # fp16 folder loads as fp32
    half = nets.load_components(nets.save_components(micro, tmp_path / "h", fp16=True))
    assert next(half["unet"].parameters()).dtype == torch.float32
    assert next(micro["unet"].parameters()).dtype == torch.float32
    # missing / corrupt parts are named
    (folder / "fusion" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(nets.ModelFolderError, match="fusion/diffusion_pytorch_model.safetensors"):
        nets.load_components(folder)
    (folder / "unet" / "config.json").write_text("{not json")
    with pytest.raises(nets.ModelFolderError, match="unet/config.json"):
        nets.load_components(folder)
    (folder / "model_index.json").unlink()
    with pytest.raises(nets.ModelFolderError, match="model_index.json"):
        nets.load_components(folder)
    with pytest.raises(ValueError, match="does not exist"):
        nets.load_components(tmp_path / "nowhere")
    with pytest.raises(nets.PresetError, match="tiny"):
        nets.resolve_preset("huge")
    index = json.loads((tmp_path / "h" / "model_index.json").read_text())
    assert index["controlnet_fg"] == ["diffusers", "ControlNetModel"] and index["tiger"]["image_size"] == 128
