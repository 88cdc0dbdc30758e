"""The domain CLIP: an open_clip CLIP built from a small custom config and trained here on
ultrasound image-text pairs (no pretrained weights can be downloaded).

Its text tower is the `tiny` preset's text encoder (token states feed the UNet's and the
ControlNets' cross-attention), and its image tower gives the embeddings of the metrics
(FID/CMMD/density-coverage/CLIP score) and the chip-fidelity check. One `DomainCLIP` folder
(diffusers-style: config.json + safetensors) holds both towers, so the text tower is never
stored twice. Images are greyscale (Nx1xHxW in [-1, 1]) and are repeated to 3 channels.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from open_clip.tokenizer import SimpleTokenizer

# Small enough to train on a CPU; the vocabulary is open_clip's bundled BPE (works offline).
TINY_VISION = dict(layers=4, width=192, head_width=48, patch_size=16, image_size=128)
TINY_TEXT = dict(context_length=77, vocab_size=49408, width=128, heads=4, layers=4)
TINY_EMBED_DIM = 128

_TOKENIZER: SimpleTokenizer | None = None


def tokenizer(context_length: int = 77) -> SimpleTokenizer:
    """open_clip's BPE tokenizer (vocabulary ships inside the wheel)."""
    global _TOKENIZER
    if _TOKENIZER is None or _TOKENIZER.context_length != context_length:
        _TOKENIZER = SimpleTokenizer(context_length=context_length)
    return _TOKENIZER


def tokenize(texts: str | Sequence[str], context_length: int = 77) -> torch.LongTensor:
    """Token ids (N x context_length), truncated with the end-of-text token kept."""
    if isinstance(texts, str):
        texts = [texts]
    return tokenizer(context_length)(list(texts))


class DomainCLIP(ModelMixin, ConfigMixin):
    """open_clip CLIP with a diffusers-style config, so it saves/loads as config.json + safetensors."""

    config_name = "config.json"

    @register_to_config
    def __init__(self, embed_dim: int = TINY_EMBED_DIM, vision_cfg: dict | None = None,
                 text_cfg: dict | None = None, in_channels: int = 1):
        super().__init__()
        self.clip = CLIP(
            embed_dim=embed_dim,
            vision_cfg=CLIPVisionCfg(**(vision_cfg or TINY_VISION)),
            text_cfg=CLIPTextCfg(**(text_cfg or TINY_TEXT)),
        )

    @property
    def context_length(self) -> int:
        return self.clip.context_length

    @property
    def text_width(self) -> int:
        return self.clip.transformer.width

    @property
    def image_size(self) -> int:
        size = self.clip.visual.image_size
        return size[0] if isinstance(size, (tuple, list)) else int(size)

    def _prep_images(self, images: torch.Tensor) -> torch.Tensor:
        """Nx1xHxW in [-1, 1] -> Nx3xSxS at the tower's size (roughly unit scale)."""
        if images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear",
                                   align_corners=False, antialias=True)
        return images

    def encode_images(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        return self.clip.encode_image(self._prep_images(images), normalize=normalize)

    def encode_texts(self, token_ids: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        return self.clip.encode_text(token_ids, normalize=normalize)

    def token_states(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Per-token hidden states (N x L x width) of the text tower: the cross-attention context."""
        clip = self.clip
        cast = clip.transformer.get_cast_dtype()
        x = clip.token_embedding(token_ids).to(cast) + clip.positional_embedding.to(cast)
        x = clip.transformer(x, attn_mask=clip.attn_mask)
        return clip.ln_final(x)

    def forward(self, images: torch.Tensor, token_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image features, text features, logit scale) as open_clip's contrastive loss expects."""
        return (self.encode_images(images), self.encode_texts(token_ids), self.clip.logit_scale.exp())


def build_clip(embed_dim: int = TINY_EMBED_DIM, vision_cfg: dict | None = None,
               text_cfg: dict | None = None) -> DomainCLIP:
    return DomainCLIP(embed_dim=embed_dim, vision_cfg=vision_cfg, text_cfg=text_cfg)


def save_clip(model: DomainCLIP, folder: str | Path) -> None:
    model.save_pretrained(str(folder))


def load_clip(folder: str | Path) -> DomainCLIP:
    """Load from a local folder only; a missing folder or file raises FileNotFoundError naming it."""
    folder = Path(folder)
    for name in ("config.json",):
        if not (folder / name).exists():
            raise FileNotFoundError(f"domain CLIP folder {folder} has no {name}")
    model = DomainCLIP.from_pretrained(str(folder))
    return model.eval()


@torch.no_grad()
def encode_images(model: DomainCLIP, images: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Normalised image embeddings in batches (for metrics over many images)."""
    outs = []
    dev = next(model.parameters()).device
    for i in range(0, len(images), batch_size):
        outs.append(model.encode_images(images[i:i + batch_size].to(dev)).float().cpu())
    return torch.cat(outs) if outs else torch.empty(0, model.config.embed_dim)


@torch.no_grad()
def encode_texts(model: DomainCLIP, texts: Sequence[str]) -> torch.Tensor:
    dev = next(model.parameters()).device
    return model.encode_texts(tokenize(texts, model.context_length).to(dev)).float().cpu()
