"""The networks of the Tiger Model in one namespace: `from tiger import nets; nets.fused_forward(...)`.

The code lives in `tiger.models` (one module per concept; see its docstring). This module only
re-exports the public names, so that callers and model folders (whose model_index.json names
`tiger.nets.AFFFusion`) need one import path. Parts (DESIGN.md, "Model"):
- VAE: diffusers `AutoencoderKL` (greyscale, f=4 for `tiny`).
- Text encoder: the text tower of the domain CLIP (`tiger.domain_clip.DomainCLIP`) for
  `tiny`/`micro`; a transformers `CLIPTextModel` + `CLIPTokenizer` for `sd2`.
- Base UNet: `UNet2DConditionModel` (v-prediction), trained in the coarse stage on image + full text.
- FG / BG ControlNets: `ControlNetModel.from_unet`, one conditioning channel (mask / Sobel map).
  Each gets its OWN text states (MultiControlNetModel cannot do that).
- `AFFFusion`: AFF of the two ControlNets' residuals, zero-initialised to fg + bg.
- `OmegaAttnProcessor`: the FG ControlNet's omega-weighted cross-attention (paper eqs. 8-10).
"""
from __future__ import annotations

from tiger.models.attention_processor import OmegaAttnProcessor, set_omega_processor
from tiger.models.builders import (build_components, build_controlnets, build_fusion, build_noise_scheduler,
                                   build_scheduler, build_text_encoder, build_tokenizer, build_unet, build_vae,
                                   controlnet_residual_channels, count_parameters, image_size_of, vae_factor)
from tiger.models.errors import ModelFolderError, PresetError
from tiger.models.folder import (load_components, load_domain_clip, open_background_bank, read_model_info,
                                 save_components)
from tiger.models.forward import ENCODERS, control_residuals, fused_forward
from tiger.models.mask_channel import has_mask_channel, mask_at_latent, widen_for_mask
from tiger.models.fusion import AFFFusion, AFFModule
from tiger.models.presets import PRESETS, resolve_preset, sd2_preset
from tiger.models.prompts import OMEGA_A, OMEGA_B, encode_prompts, omega_of_delta

__all__ = [
    "AFFFusion", "AFFModule", "ENCODERS", "ModelFolderError", "OMEGA_A", "OMEGA_B", "OmegaAttnProcessor", "PRESETS",
    "PresetError", "build_components", "build_controlnets", "build_fusion", "build_noise_scheduler",
    "build_scheduler", "build_text_encoder", "build_tokenizer", "build_unet", "build_vae", "control_residuals",
    "controlnet_residual_channels", "count_parameters", "encode_prompts", "fused_forward", "has_mask_channel", "image_size_of",
    "load_components", "load_domain_clip", "mask_at_latent", "omega_of_delta", "open_background_bank", "read_model_info", "resolve_preset", "save_components",
    "set_omega_processor", "sd2_preset", "vae_factor", "widen_for_mask",
]
