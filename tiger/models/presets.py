"""Network presets (tiny, micro, sd2): the sizes of every part, by name."""
from __future__ import annotations

import copy
import os
from pathlib import Path


from tiger.models.errors import ModelFolderError, PresetError


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


def sd2_part(p: dict, sub: str) -> Path:
    src = p.get("source")
    if not src:
        raise PresetError("the sd2 preset needs a local Stable Diffusion 2 folder: pass "
                          "sd2_preset(folder) or set TIGER_SD2_DIR (nothing is downloaded)")
    path = Path(src) / sub
    if not path.is_dir():
        raise ModelFolderError(f"Stable Diffusion 2 folder {src} has no {sub}/ folder", path)
    return path
