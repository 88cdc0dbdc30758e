"""The networks of the Tiger Model and the one forward pass that training and inference share.

Why one module: the fine stage trains exactly the path that the pipeline samples from. The
paper's reference code diverged here (AFF modules re-created untrained every step, omega never
applied, two UNet passes per step), so `fused_forward` is the single implementation that both
`training/` and `tiger.pipeline` call.

Parts (DESIGN.md, "Model"):
- VAE: diffusers `AutoencoderKL` (greyscale, f=4 for `tiny`).
- Text encoder: the text tower of the domain CLIP (`tiger.domain_clip.DomainCLIP`) for
  `tiny`/`micro`; a transformers `CLIPTextModel` + `CLIPTokenizer` for `sd2`.
- Base UNet: `UNet2DConditionModel` (v-prediction), trained in the coarse stage on image + full text.
- FG / BG ControlNets: `ControlNetModel.from_unet`, one conditioning channel (mask / Sobel map).
  Each gets its OWN text states (MultiControlNetModel cannot do that).
- `AFFFusion`: 13 Attentional Feature Fusion modules (12 down residuals + mid), zero-initialised
  so that the untrained fusion returns exactly fg + bg (MultiControlNet behaviour).
- `OmegaAttnProcessor`: the FG ControlNet's cross-attention, softmax(omega_j * QK^T / sqrt(d)) V
  with a per-key-token omega (paper eqs. 8-10).
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers import (AutoencoderKL, ControlNetModel, DDIMScheduler, DDPMScheduler,
                       UNet2DConditionModel)
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from tiger.domain_clip import DomainCLIP

# --------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------

#: omega = a + b / (1 + exp(b * delta)), paper eq. 9 (a = 0.6, b = 5).
OMEGA_A = 0.6
OMEGA_B = 5.0

_TINY_UNET = dict(
    sample_size=32, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(32, 64, 96, 96),  # 6.6M params, ~1 s per batch-32 step on 2 cores
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    norm_num_groups=16, attention_head_dim=4, cross_attention_dim=128,
)

PRESETS: dict[str, dict] = {
    # 128 px greyscale, trains on 2 CPU cores; shipped as models/tiger-tiny-ddti.
    "tiny": dict(
        kind="config",
        image_size=128,
        vae=dict(in_channels=1, out_channels=1, latent_channels=4,
                 down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                 block_out_channels=(32, 64, 128), layers_per_block=1, norm_num_groups=16,
                 sample_size=128, scaling_factor=1.0),
        unet=_TINY_UNET,
        clip=dict(embed_dim=128, vision_cfg=None, text_cfg=None),  # tiger.domain_clip TINY_*
        cond_channels=(16, 32, 64),
        aff_reduction=4, aff_norm="group",
    ),
    # Same shapes (f=4, 32x32 latents, 4 UNet levels, 13 residuals), minimal widths: for tests.
    "micro": dict(
        kind="config",
        image_size=128,
        vae=dict(in_channels=1, out_channels=1, latent_channels=4,
                 down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                 block_out_channels=(8, 8, 16), layers_per_block=1, norm_num_groups=4,
                 sample_size=128, scaling_factor=1.0),
        unet=dict(_TINY_UNET, block_out_channels=(8, 16, 16, 16), norm_num_groups=4,
                  attention_head_dim=2, cross_attention_dim=32),
        clip=dict(embed_dim=32,
                  vision_cfg=dict(layers=1, width=32, head_width=16, patch_size=32, image_size=128),
                  text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=1)),
        cond_channels=(8, 8, 16),
        aff_reduction=2, aff_norm="group",
    ),
    # A local Stable Diffusion 2 folder in diffusers layout (set "source" or $TIGER_SD2_DIR).
    "sd2": dict(kind="folder", source=os.environ.get("TIGER_SD2_DIR"),
                cond_channels=(16, 32, 96, 256), aff_reduction=4, aff_norm="group"),
}


class PresetError(ValueError):
    """An unknown preset name or a preset that lacks what it needs (e.g. the SD2 folder)."""


def resolve_preset(preset: str | dict) -> dict:
    """A preset name or dict -> a full preset dict (a copy; callers may edit it)."""
    if isinstance(preset, dict):
        return copy.deepcopy(preset)
    if preset not in PRESETS:
        raise PresetError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[preset])


def sd2_preset(folder: str | Path) -> dict:
    """The `sd2` preset pointed at a local SD2 folder (vae/, text_encoder/, tokenizer/, unet/)."""
    p = resolve_preset("sd2")
    p["source"] = str(folder)
    return p


def _sd2_source(p: dict, sub: str) -> Path:
    src = p.get("source")
    if not src:
        raise PresetError("the sd2 preset needs a local Stable Diffusion 2 folder: pass "
                          "sd2_preset(folder) or set TIGER_SD2_DIR (nothing is downloaded)")
    path = Path(src) / sub
    if not path.is_dir():
        raise ModelFolderError(f"Stable Diffusion 2 folder {src} has no {sub}/ folder", path)
    return path


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------

def build_vae(preset: str | dict = "tiny") -> AutoencoderKL:
    """Randomly initialised VAE of the preset (`sd2`: loaded from the SD2 folder's vae/)."""
    p = resolve_preset(preset)
    if p["kind"] == "folder":
        return AutoencoderKL.from_pretrained(str(_sd2_source(p, "vae")), local_files_only=True)
    return AutoencoderKL(**p["vae"])


def build_unet(preset: str | dict = "tiny") -> UNet2DConditionModel:
    """Randomly initialised base UNet (`sd2`: loaded from the SD2 folder's unet/)."""
    p = resolve_preset(preset)
    if p["kind"] == "folder":
        return UNet2DConditionModel.from_pretrained(str(_sd2_source(p, "unet")), local_files_only=True)
    return UNet2DConditionModel(**p["unet"])


def build_text_encoder(preset: str | dict = "tiny") -> Any:
    """`tiny`/`micro`: a fresh DomainCLIP (its text tower is the encoder); `sd2`: CLIPTextModel."""
    p = resolve_preset(preset)
    if p["kind"] == "folder":
        from transformers import CLIPTextModel
        return CLIPTextModel.from_pretrained(str(_sd2_source(p, "text_encoder")), local_files_only=True)
    return DomainCLIP(**p["clip"])


def build_tokenizer(preset: str | dict = "tiny") -> Any:
    """`sd2`: the folder's CLIPTokenizer; `tiny`/`micro`: None (open_clip's bundled BPE is used)."""
    p = resolve_preset(preset)
    if p["kind"] == "folder":
        from transformers import CLIPTokenizer
        return CLIPTokenizer.from_pretrained(str(_sd2_source(p, "tokenizer")), local_files_only=True)
    return None


def vae_factor(vae: AutoencoderKL) -> int:
    """Spatial downsampling of the VAE (4 for tiny, 8 for SD2)."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def build_controlnets(unet: UNet2DConditionModel, preset: str | dict = "tiny",
                      vae: AutoencoderKL | None = None) -> tuple[ControlNetModel, ControlNetModel]:
    """FG and BG ControlNets copied from the UNet's encoder (`ControlNetModel.from_unet`).

    The conditioning embedding has one stride-2 step per VAE downsampling step, so a condition
    at image size lands exactly at latent size (128 px -> 32 x 32 for f=4). One input channel:
    the FG condition is the nodule mask, the BG condition the Sobel map.
    """
    p = resolve_preset(preset)
    chans = tuple(p["cond_channels"])
    if vae is not None:
        steps = int(math.log2(vae_factor(vae)))
        if len(chans) - 1 != steps:  # keep the widths' pattern, fix the count
            base = chans[0]
            chans = tuple(base * 2 ** i for i in range(steps + 1))
    fg = ControlNetModel.from_unet(unet, conditioning_channels=1, conditioning_embedding_out_channels=chans)
    bg = ControlNetModel.from_unet(unet, conditioning_channels=1, conditioning_embedding_out_channels=chans)
    set_omega_processor(fg)
    return fg, bg


def controlnet_residual_channels(cn: ControlNetModel) -> list[int]:
    """Channels of the 12 down residuals and the mid residual, in the order the UNet takes them."""
    chans = [blk.out_channels for blk in cn.controlnet_down_blocks]
    chans.append(cn.controlnet_mid_block.out_channels)
    return chans


def build_fusion(cn: ControlNetModel, preset: str | dict = "tiny") -> "AFFFusion":
    p = resolve_preset(preset)
    return AFFFusion(channels=controlnet_residual_channels(cn), reduction=p.get("aff_reduction", 4),
                     norm=p.get("aff_norm", "group"))


_SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    prediction_type="v_prediction", clip_sample=False, set_alpha_to_one=False, steps_offset=1,
    timestep_spacing="leading",
)


def build_scheduler() -> DDIMScheduler:
    """DDIM sampler, v-prediction, SD-style scaled-linear betas (the pipeline's scheduler)."""
    return DDIMScheduler(**_SCHEDULER_CONFIG)


def build_noise_scheduler(scheduler: Any | None = None) -> DDPMScheduler:
    """The DDPM noise schedule training uses: the same betas and prediction type as `scheduler`."""
    cfg = dict(scheduler.config) if scheduler is not None else dict(_SCHEDULER_CONFIG)
    return DDPMScheduler.from_config(cfg)


# --------------------------------------------------------------------------------------------
# AFF fusion
# --------------------------------------------------------------------------------------------

def _norm(kind: str, ch: int, pooled: bool = False) -> nn.Module:
    """GroupNorm (or none). The global branch sees a 1x1 pooled map, so it normalises over all
    channels in one group (per-channel groups would have one value each and output zeros)."""
    if kind == "none":
        return nn.Identity()
    return nn.GroupNorm(1 if pooled else math.gcd(ch, 8), ch)


class AFFModule(nn.Module):
    """Attentional Feature Fusion (Dai et al., WACV 2021) of one residual pair.

    z = fg + bg; w = sigmoid(local(z) + global(z)); out = 2 fg w + 2 bg (1 - w).
    GroupNorm (or none) instead of BatchNorm: BatchNorm breaks at batch 1 and mixes the CFG
    halves. The last convs are zero-initialised, so w = 0.5 and out == fg + bg exactly at init.
    """

    def __init__(self, channels: int, reduction: int = 4, norm: str = "group"):
        super().__init__()
        mid = max(channels // reduction, 4)

        def branch(pooled: bool) -> nn.Sequential:
            last = nn.Conv2d(mid, channels, 1)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            return nn.Sequential(nn.Conv2d(channels, mid, 1), _norm(norm, mid, pooled), nn.ReLU(inplace=True), last)

        self.local_att = branch(pooled=False)
        self.global_att = branch(pooled=True)

    def forward(self, fg: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
        z = fg + bg
        w = torch.sigmoid(self.local_att(z) + self.global_att(F.adaptive_avg_pool2d(z, 1)))
        return 2 * fg * w + 2 * bg * (1 - w)


class AFFFusion(ModelMixin, ConfigMixin):
    """The 13 AFF modules that fuse the FG and BG ControlNets' residuals pairwise (trained)."""

    config_name = "config.json"

    @register_to_config
    def __init__(self, channels: Sequence[int] = (), reduction: int = 4, norm: str = "group"):
        super().__init__()
        if norm not in ("group", "none"):
            raise ValueError(f"AFF norm must be 'group' or 'none' (BatchNorm mixes the CFG halves), got {norm!r}")
        self.blocks = nn.ModuleList(AFFModule(int(c), reduction, norm) for c in channels)

    def forward(self, fg: Sequence[torch.Tensor], bg: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(fg) != len(self.blocks) or len(bg) != len(self.blocks):
            raise ValueError(f"AFFFusion has {len(self.blocks)} modules but got {len(fg)} FG and {len(bg)} BG residuals")
        return [blk(a, b) for blk, a, b in zip(self.blocks, fg, bg)]


# --------------------------------------------------------------------------------------------
# Omega-weighted cross-attention (FG ControlNet)
# --------------------------------------------------------------------------------------------

class OmegaAttnProcessor:
    """Cross-attention with a per-key-token weight: softmax(omega_j * Q K^T / sqrt(d)) V.

    Scaling the logits of key token j by omega_j equals scaling key vector k_j by omega_j
    (q . (omega_j k_j) = omega_j q . k_j), so the weight is applied to the keys and the fused
    `scaled_dot_product_attention` kernel still runs. `omega` (B x L, one value per key token)
    arrives through `cross_attention_kwargs={"omega": omega}`; self-attention ignores it.
    """

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 omega: torch.Tensor | None = None, **_: Any) -> torch.Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        cross = encoder_hidden_states is not None
        batch, seq = (hidden_states if not cross else encoder_hidden_states).shape[:2]
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, seq, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if not cross:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        if getattr(attn, "norm_q", None) is not None:
            query = attn.norm_q(query)
        if getattr(attn, "norm_k", None) is not None:
            key = attn.norm_k(key)
        if cross and omega is not None:
            if omega.shape != (batch, key.shape[2]):
                raise ValueError(f"omega must be (batch, tokens) = {(batch, key.shape[2])}, got {tuple(omega.shape)}")
            key = key * omega.to(key.dtype)[:, None, :, None]
        hidden_states = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def set_omega_processor(controlnet: ControlNetModel) -> None:
    """Install OmegaAttnProcessor on every attention of the (FG) ControlNet.

    Processors are not saved with the weights, so loaders call this again after loading.
    """
    controlnet.set_attn_processor(OmegaAttnProcessor())


# --------------------------------------------------------------------------------------------
# Prompts -> token states and omega
# --------------------------------------------------------------------------------------------

def omega_of_delta(delta: torch.Tensor | float) -> torch.Tensor:
    """omega = a + b / (1 + exp(b * delta)) (eq. 9): 3.1 at delta 0, ~0.633 at delta 1."""
    d = torch.as_tensor(delta, dtype=torch.float32)
    return OMEGA_A + OMEGA_B / (1 + torch.exp(OMEGA_B * d))


class _Tok:
    """Uniform view of the two tokenizers: open_clip's BPE (tiny) and transformers' CLIPTokenizer (sd2)."""

    def __init__(self, text_encoder: Any, tokenizer: Any | None):
        if isinstance(text_encoder, DomainCLIP):
            from tiger.domain_clip import tokenizer as oc_tok
            t = oc_tok(text_encoder.context_length)
            self.length = text_encoder.context_length
            self.bos, self.eos, self.pad = t.sot_token_id, t.eot_token_id, 0
            self.encode = t.encode
        else:
            if tokenizer is None:
                raise ValueError("a transformers text encoder needs its tokenizer (components['tokenizer'])")
            # an unset model_max_length is 1e30: the position table is the real limit
            self.length = min(int(min(tokenizer.model_max_length, 10**6)),
                              int(text_encoder.config.max_position_embeddings))
            self.bos, self.eos = tokenizer.bos_token_id, tokenizer.eos_token_id
            self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos
            self.encode = lambda s: tokenizer(s, add_special_tokens=False).input_ids

    def ids(self, pieces: Sequence[str]) -> tuple[list[int], list[int]]:
        """Token ids of the pieces (each tokenised alone, so every token knows its piece) and,
        per token, the index of its piece (-1 for start/end/padding)."""
        ids, owner = [self.bos], [-1]
        for k, piece in enumerate(pieces):
            toks = self.encode(piece) if piece.strip() else []
            ids += toks
            owner += [k] * len(toks)
        ids, owner = ids[: self.length - 1] + [self.eos], owner[: self.length - 1] + [-1]
        pad = self.length - len(ids)
        return ids + [self.pad] * pad, owner + [-1] * pad


def _text_states(text_encoder: Any, ids: torch.Tensor) -> torch.Tensor:
    if isinstance(text_encoder, DomainCLIP):
        return text_encoder.token_states(ids)
    return text_encoder(ids)[0]


def _term_pieces(text: str, reweight: bool) -> list[tuple[str, str]]:
    if not reweight:
        return [(text, "common")]
    from tiger.knowledge import term_classes
    return list(term_classes(text))


def encode_prompts(text_encoder: Any, texts: Sequence[str], *, reweight: bool,
                   tokenizer: Any | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token states (B x L x width) for cross-attention and per-token omega (B x L).

    reweight=True (FG encoder): each text is cut into classed pieces by
    `tiger.knowledge.term_classes`; delta_j = 0 for particular terms (omega 3.1), the token's
    frequency in this batch (occurrences / all term tokens of the batch, paper eq. 10) for joint
    terms, 1 for common terms and everything else (start/end/padding; omega ~0.633).
    reweight=False (BG encoder, coarse UNet): omega = 1 everywhere.
    Pieces are tokenised one by one, so token ids are the same in training and at inference.
    """
    if isinstance(texts, str):
        texts = [texts]
    tok = _Tok(text_encoder, tokenizer)
    all_ids, deltas = [], []
    classed = [_term_pieces(t, reweight) for t in texts]
    rows = []
    for pieces in classed:
        ids, owner = tok.ids([p for p, _ in pieces])
        rows.append((ids, owner, [pieces[o][1] if o >= 0 else "other" for o in owner]))
    counts: Counter = Counter()
    total = 0
    for ids, owner, _cls in rows:
        for i, o in zip(ids, owner):
            if o >= 0:
                counts[i] += 1
                total += 1
    for ids, _owner, cls in rows:
        d = []
        for i, c in zip(ids, cls):
            if c == "particular":
                d.append(0.0)
            elif c == "joint":
                d.append(counts[i] / max(total, 1))
            else:
                d.append(1.0)
        all_ids.append(ids)
        deltas.append(d)
    dev = next(text_encoder.parameters()).device
    ids_t = torch.tensor(all_ids, dtype=torch.long, device=dev)
    states = _text_states(text_encoder, ids_t)
    if reweight:
        omega = omega_of_delta(torch.tensor(deltas)).to(dev)
    else:
        omega = torch.ones(ids_t.shape, device=dev)
    return states, omega.to(states.dtype)


# --------------------------------------------------------------------------------------------
# The shared forward
# --------------------------------------------------------------------------------------------

ENCODERS = ("fg", "bg", "both", "none")


def control_residuals(cn_fg: ControlNetModel | None, cn_bg: ControlNetModel | None, fusion: AFFFusion | None,
                      latents: torch.Tensor, t: torch.Tensor, ctx_fg: torch.Tensor | None, ctx_bg: torch.Tensor | None,
                      omega_fg: torch.Tensor | None, cond_fg: torch.Tensor | None, cond_bg: torch.Tensor | None,
                      fg_scale: float = 1.0, bg_scale: float = 1.0, encoders: str = "both",
                      ) -> tuple[list[torch.Tensor], torch.Tensor] | None:
    """The 12 down + 1 mid residuals for the UNet: FG and/or BG ControlNet, fused by AFF when both.

    Returns None for encoders="none". With one encoder its residuals go to the UNet unfused
    (the AFF modules were trained on pairs; feeding them a zero partner is off-distribution).
    """
    if encoders not in ENCODERS:
        raise ValueError(f"encoders must be one of {ENCODERS}, got {encoders!r}")
    if encoders == "none":
        return None
    outs = {}
    if encoders in ("fg", "both"):
        down, mid = cn_fg(latents, t, encoder_hidden_states=ctx_fg, controlnet_cond=cond_fg,
                          conditioning_scale=fg_scale, cross_attention_kwargs={"omega": omega_fg},
                          return_dict=False)
        outs["fg"] = list(down) + [mid]
    if encoders in ("bg", "both"):
        down, mid = cn_bg(latents, t, encoder_hidden_states=ctx_bg, controlnet_cond=cond_bg,
                          conditioning_scale=bg_scale, return_dict=False)
        outs["bg"] = list(down) + [mid]
    res = fusion(outs["fg"], outs["bg"]) if encoders == "both" else outs[encoders]
    return res[:-1], res[-1]


def fused_forward(unet: UNet2DConditionModel, cn_fg: ControlNetModel | None, cn_bg: ControlNetModel | None,
                  fusion: AFFFusion | None, latents: torch.Tensor, t: torch.Tensor | int,
                  ctx_full: torch.Tensor, ctx_fg: torch.Tensor | None, ctx_bg: torch.Tensor | None,
                  omega_fg: torch.Tensor | None, cond_fg: torch.Tensor | None, cond_bg: torch.Tensor | None,
                  fg_scale: float = 1.0, bg_scale: float = 1.0, encoders: str = "both",
                  n_plain: int = 0) -> torch.Tensor:
    """One denoising prediction of the Tiger Model (v-prediction), used by the pipeline AND the
    fine-stage training loss, so the path that is trained is the path that is sampled.

    Args:
        unet: the (frozen in the fine stage) base UNet.
        cn_fg, cn_bg: FG (mask) and BG (Sobel) ControlNets; may be None when `encoders` excludes them.
        fusion: AFFFusion, used when encoders == "both".
        latents: B x 4 x h x w noisy latents (already scaled by the scheduler's input scaling).
        t: timestep, an int or a tensor of B values (one per row).
        ctx_full: B x L x D text states of the FULL prompt for the UNet's own cross-attention.
        ctx_fg / ctx_bg: (B - n_plain) x L x D states of the FG / BG texts for each ControlNet.
        omega_fg: (B - n_plain) x L per-token omega of the FG text (`encode_prompts(reweight=True)`).
        cond_fg / cond_bg: (B - n_plain) x 1 x H x W mask in {0,1} / Sobel map in [0,1], image size.
        fg_scale / bg_scale: ControlNet conditioning scales.
        encoders: "both" (AFF-fused), "fg", "bg" or "none" (the plain coarse-stage UNet).
        n_plain: the LAST n_plain rows of `latents`/`ctx_full` get no control residuals. The
            pipeline uses this for control guidance (eq. 13, beta != 1): the no-control
            prediction rides in the same UNet batch instead of a second pass.

    Returns:
        B x 4 x h x w model output (v).
    """
    B = latents.shape[0]
    n_ctrl = B - n_plain
    t_all = torch.as_tensor(t, device=latents.device)
    if t_all.ndim == 0:
        t_all = t_all.expand(B)
    res = None
    if n_ctrl > 0:
        res = control_residuals(cn_fg, cn_bg, fusion, latents[:n_ctrl], t_all[:n_ctrl], ctx_fg, ctx_bg, omega_fg,
                                cond_fg, cond_bg, fg_scale, bg_scale, encoders)
    if res is None:
        return unet(latents, t_all, encoder_hidden_states=ctx_full, return_dict=False)[0]
    down, mid = res
    if n_plain:
        pad = lambda r: torch.cat([r, r.new_zeros((n_plain,) + r.shape[1:])])  # noqa: E731
        down, mid = [pad(r) for r in down], pad(mid)
    return unet(latents, t_all, encoder_hidden_states=ctx_full, down_block_additional_residuals=down,
                mid_block_additional_residual=mid, return_dict=False)[0]


# --------------------------------------------------------------------------------------------
# Model folder (diffusers layout)
# --------------------------------------------------------------------------------------------

class ModelFolderError(FileNotFoundError, ValueError):
    """A model folder that is missing, incomplete or corrupt; the message names the file."""

    def __init__(self, message: str, path: str | Path | None = None):
        super().__init__(message)
        self.path = str(path) if path is not None else None

    def __str__(self) -> str:  # FileNotFoundError would otherwise print errno formatting
        return self.args[0]


_MODULE_CLASSES = {
    "vae": ("diffusers", "AutoencoderKL"),
    "unet": ("diffusers", "UNet2DConditionModel"),
    "controlnet_fg": ("diffusers", "ControlNetModel"),
    "controlnet_bg": ("diffusers", "ControlNetModel"),
    "fusion": ("tiger.nets", "AFFFusion"),
    "scheduler": ("diffusers", "DDIMScheduler"),
}
_WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "model.safetensors", "diffusion_pytorch_model.bin")


def _require(path: Path, what: str) -> None:
    if not path.exists():
        raise ModelFolderError(f"model folder {path.parent.parent if path.parent.name else path.parent} is missing "
                               f"{path.relative_to(path.parent.parent)} ({what})", path)


def _check_module(folder: Path, name: str, config: str = "config.json", weights: bool = True) -> Path:
    sub = folder / name
    if not sub.is_dir():
        raise ModelFolderError(f"model folder {folder} is missing {name}/", sub)
    if not (sub / config).exists():
        raise ModelFolderError(f"model folder {folder} is missing {name}/{config}", sub / config)
    try:
        json.loads((sub / config).read_text())
    except (ValueError, OSError) as e:
        raise ModelFolderError(f"{name}/{config} in {folder} is not valid JSON ({e})", sub / config) from e
    if weights and not any((sub / w).exists() for w in _WEIGHT_NAMES):
        raise ModelFolderError(f"model folder {folder} is missing {name}/{_WEIGHT_NAMES[0]}", sub / _WEIGHT_NAMES[0])
    return sub


def _load(cls: Any, sub: Path) -> Any:
    try:
        model = cls.from_pretrained(str(sub), local_files_only=True, torch_dtype=torch.float32)
    except Exception as e:  # safetensors / config errors: say which file
        raise ModelFolderError(f"could not load {sub.name}/ from {sub.parent}: {e}", sub) from e
    if next(model.parameters()).dtype != torch.float32:
        model = model.float()
    return model.eval()


@contextlib.contextmanager
def _quiet_diffusers():
    """diffusers warns on every fp16 cast of a module ("should be kept in float32: []"); mute it."""
    from diffusers.utils import logging as dlog
    old = dlog.get_verbosity()
    dlog.set_verbosity_error()
    try:
        yield
    finally:
        dlog.set_verbosity(old)


def save_components(components: dict, folder: str | Path, fp16: bool = True) -> Path:
    """Write a model folder in diffusers layout (model_index.json + one subfolder per part).

    fp16=True halves the size; loading upcasts to fp32 (CPU runs fp32). Weights are cast on a
    copy of the state, the in-memory modules are left in their dtype.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {"_class_name": "TigerPipeline", "_diffusers_version": _diffusers_version()}
    for name in ("vae", "unet", "controlnet_fg", "controlnet_bg", "fusion", "text_encoder"):
        m = components.get(name)
        if m is None:
            continue
        dtype = next(m.parameters()).dtype
        with _quiet_diffusers():
            if fp16:
                m.to(torch.float16)
            try:
                m.save_pretrained(str(folder / name))
            finally:
                if fp16:
                    m.to(dtype)
        index[name] = _MODULE_CLASSES.get(name) or [type(m).__module__.split(".")[0], type(m).__name__]
        if name == "text_encoder" and isinstance(m, DomainCLIP):
            index[name] = ["tiger.domain_clip", "DomainCLIP"]
    if components.get("tokenizer") is not None:
        components["tokenizer"].save_pretrained(str(folder / "tokenizer"))
        index["tokenizer"] = ["transformers", type(components["tokenizer"]).__name__]
    if components.get("clip") is not None and components["clip"] is not components.get("text_encoder"):
        components["clip"].save_pretrained(str(folder / "clip"))
        index["clip"] = ["tiger.domain_clip", "DomainCLIP"]
    components["scheduler"].save_pretrained(str(folder / "scheduler"))
    index["scheduler"] = list(_MODULE_CLASSES["scheduler"])
    bank = components.get("background_bank")
    if bank is not None:
        bank.save(folder / "background_bank")
        index["background_bank"] = ["tiger.background_bank", "BackgroundBank"]
    index["tiger"] = {"model_id": components.get("model_id") or folder.name,
                      "image_size": int(components.get("image_size") or _image_size(components["unet"], components["vae"]))}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder


def _diffusers_version() -> str:
    import diffusers
    return diffusers.__version__


def _image_size(unet: UNet2DConditionModel, vae: AutoencoderKL) -> int:
    s = unet.config.sample_size
    s = s[0] if isinstance(s, (list, tuple)) else s
    return int(s) * vae_factor(vae)


def load_components(folder: str | Path) -> dict:
    """Load a model folder (local only) into a dict of fp32 eval-mode modules.

    Keys: vae, text_encoder, tokenizer (None for the domain CLIP), unet, controlnet_fg,
    controlnet_bg, fusion, scheduler, clip (the domain CLIP when present), background_bank
    (None when the folder has none), model_id, image_size. A missing or corrupt part raises
    ModelFolderError naming the file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(f"model folder {folder} does not exist", folder)
    mi = folder / "model_index.json"
    if not mi.exists():
        raise ModelFolderError(f"model folder {folder} is missing model_index.json", mi)
    try:
        index = json.loads(mi.read_text())
    except ValueError as e:
        raise ModelFolderError(f"model_index.json in {folder} is not valid JSON ({e})", mi) from e
    comps: dict[str, Any] = {}
    comps["vae"] = _load(AutoencoderKL, _check_module(folder, "vae"))
    comps["unet"] = _load(UNet2DConditionModel, _check_module(folder, "unet"))
    comps["controlnet_fg"] = _load(ControlNetModel, _check_module(folder, "controlnet_fg"))
    comps["controlnet_bg"] = _load(ControlNetModel, _check_module(folder, "controlnet_bg"))
    set_omega_processor(comps["controlnet_fg"])
    comps["fusion"] = _load(AFFFusion, _check_module(folder, "fusion"))
    te_cls = (index.get("text_encoder") or ["tiger.domain_clip", "DomainCLIP"])[1]
    te_dir = _check_module(folder, "text_encoder")
    if te_cls == "DomainCLIP":
        comps["text_encoder"] = _load(DomainCLIP, te_dir)
        comps["tokenizer"] = None
    else:
        from transformers import CLIPTextModel, CLIPTokenizer
        comps["text_encoder"] = _load(CLIPTextModel, te_dir)
        tok_dir = folder / "tokenizer"
        if not any((tok_dir / f).exists() for f in ("tokenizer.json", "vocab.json")):
            raise ModelFolderError(f"model folder {folder} is missing tokenizer/tokenizer.json (or vocab.json)",
                                   tok_dir / "tokenizer.json")
        comps["tokenizer"] = CLIPTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    if (folder / "clip").is_dir():
        comps["clip"] = _load(DomainCLIP, _check_module(folder, "clip"))
    else:
        comps["clip"] = comps["text_encoder"] if isinstance(comps["text_encoder"], DomainCLIP) else None
    sch = folder / "scheduler" / "scheduler_config.json"
    if not sch.exists():
        raise ModelFolderError(f"model folder {folder} is missing scheduler/scheduler_config.json", sch)
    try:
        comps["scheduler"] = DDIMScheduler.from_pretrained(str(folder / "scheduler"))
    except Exception as e:
        raise ModelFolderError(f"scheduler/scheduler_config.json in {folder} is unreadable ({e})", sch) from e
    if (folder / "background_bank").is_dir():
        from tiger.background_bank import BackgroundBank
        comps["background_bank"] = BackgroundBank(folder / "background_bank")
    else:
        comps["background_bank"] = None
    meta = index.get("tiger", {})
    comps["model_id"] = meta.get("model_id", folder.name)
    comps["image_size"] = int(meta.get("image_size") or _image_size(comps["unet"], comps["vae"]))
    return comps


def load_domain_clip(folder: str | Path) -> DomainCLIP | None:
    """The model folder's full domain CLIP (clip/, or text_encoder/ when that is the DomainCLIP)."""
    folder = Path(folder)
    for sub in ("clip", "text_encoder"):
        p = folder / sub / "config.json"
        if p.exists() and "DomainCLIP" in p.read_text():
            return _load(DomainCLIP, folder / sub)
    return None


def build_components(preset: str | dict = "micro", seed: int = 0) -> dict:
    """All parts of a randomly initialised model of the preset (the pipeline's component dict)."""
    p = resolve_preset(preset)
    torch.manual_seed(seed)
    vae = build_vae(p)
    unet = build_unet(p)
    te = build_text_encoder(p)
    cn_fg, cn_bg = build_controlnets(unet, p, vae=vae)
    return dict(vae=vae.eval(), unet=unet.eval(), text_encoder=te.eval(), tokenizer=build_tokenizer(p),
                controlnet_fg=cn_fg.eval(), controlnet_bg=cn_bg.eval(), fusion=build_fusion(cn_fg, p).eval(),
                scheduler=build_scheduler(), clip=te if isinstance(te, DomainCLIP) else None,
                background_bank=None, model_id=None, image_size=_image_size(unet, vae))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
