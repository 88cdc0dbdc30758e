"""Build every part of a preset from its config: VAE, UNet, text encoder, ControlNets, AFF, schedulers."""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, DDPMScheduler, UNet2DConditionModel

from tiger.domain_clip import DomainCLIP
from tiger.models.attention_processor import set_omega_processor
from tiger.models.fusion import AFFFusion
from tiger.models.presets import sd2_part, resolve_preset


def build_vae(preset: str | dict = "tiny") -> AutoencoderKL:
    """Randomly initialised VAE of the preset (`sd2`: loaded from the SD2 folder's vae/)."""
    p = resolve_preset(preset)
    if p["kind"] == "folder":
        return AutoencoderKL.from_pretrained(str(sd2_part(p, "vae")), local_files_only=True)
    return AutoencoderKL(**p["vae"])


def build_unet(preset: str | dict = "tiny") -> UNet2DConditionModel:
    """Randomly initialised base UNet (`sd2`: loaded from the SD2 folder's unet/)."""
    p = resolve_preset(preset)
    if p["kind"] == "folder":
        return UNet2DConditionModel.from_pretrained(str(sd2_part(p, "unet")), local_files_only=True)
    return UNet2DConditionModel(**p["unet"])


def build_text_encoder(preset: str | dict = "tiny") -> Any:
    """`tiny`/`micro`: a fresh DomainCLIP (its text tower is the encoder); `sd2`: CLIPTextModel."""
    p = resolve_preset(preset)
    if p["kind"] == "folder":
        from transformers import CLIPTextModel
        return CLIPTextModel.from_pretrained(str(sd2_part(p, "text_encoder")), local_files_only=True)
    return DomainCLIP(**p["clip"])


def build_tokenizer(preset: str | dict = "tiny") -> Any:
    """`sd2`: the folder's CLIPTokenizer; `tiny`/`micro`: None (open_clip's bundled BPE is used)."""
    p = resolve_preset(preset)
    if p["kind"] == "folder":
        from transformers import CLIPTokenizer
        return CLIPTokenizer.from_pretrained(str(sd2_part(p, "tokenizer")), local_files_only=True)
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


def image_size_of(unet: UNet2DConditionModel, vae: AutoencoderKL) -> int:
    s = unet.config.sample_size
    s = s[0] if isinstance(s, (list, tuple)) else s
    return int(s) * vae_factor(vae)


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
                background_bank=None, model_id=None, image_size=image_size_of(unet, vae))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
