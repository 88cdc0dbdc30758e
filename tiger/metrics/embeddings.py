"""Image and text embeddings for the set metrics (FID, KID, CMMD, density/coverage, CLIP score).

Pretrained Inception or CLIP weights cannot be downloaded here, so the default embedder is the
project's domain CLIP (trained on ultrasound image-text pairs, shipped in the model folder).
A user with a local pretrained open_clip checkpoint can pass it instead. Absolute values of
embedding metrics depend entirely on the embedder, so every `Embedder` carries a `source`
string that every report prints next to the numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from tiger.metrics.errors import MetricInputError
from tiger.metrics.images import to_tensor


@dataclass
class Embedder:
    """A CLIP-like model with `encode_images` / `encode_texts`, plus a description of it."""

    model: torch.nn.Module
    source: str
    kind: str = "domain_clip"  # "domain_clip" | "open_clip"
    batch_size: int = 128
    _tokenizer: object = field(default=None, repr=False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def images(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 N x H x W -> L2-normalised float64 N x D."""
        if len(pixels) == 0:
            raise MetricInputError("cannot embed an empty image set")
        outs = []
        for i in range(0, len(pixels), self.batch_size):
            x = to_tensor(pixels[i:i + self.batch_size]).to(self.device)
            if self.kind == "open_clip":
                x = _open_clip_prep(x, self.model)
                feats = self.model.encode_image(x, normalize=True)
            else:
                feats = self.model.encode_images(x, normalize=True)
            outs.append(feats.float().cpu())
        return torch.cat(outs).double().numpy()

    @torch.no_grad()
    def texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> L2-normalised float64 N x D."""
        if len(texts) == 0:
            raise MetricInputError("cannot embed an empty list of texts")
        if self.kind == "open_clip":
            tokens = self._tokenizer(list(texts)).to(self.device)
            feats = self.model.encode_text(tokens, normalize=True)
        else:
            from tiger.domain_clip import tokenize

            tokens = tokenize(list(texts), self.model.context_length).to(self.device)
            feats = self.model.encode_texts(tokens, normalize=True)
        return feats.float().cpu().double().numpy()

    @torch.no_grad()
    def logit_scale(self) -> float:
        clip = self.model if self.kind == "open_clip" else self.model.clip
        return float(clip.logit_scale.exp().clamp(max=100.0))


def _open_clip_prep(x: torch.Tensor, model: torch.nn.Module) -> torch.Tensor:
    """[-1,1] greyscale -> the RGB normalisation open_clip's pretrained towers expect."""
    import torch.nn.functional as F

    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    x = (x.repeat(1, 3, 1, 1) + 1) / 2
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    mean = torch.tensor(getattr(model.visual, "image_mean", None) or (0.48145466, 0.4578275, 0.40821073))
    std = torch.tensor(getattr(model.visual, "image_std", None) or (0.26862954, 0.26130258, 0.27577711))
    return (x - mean.view(1, 3, 1, 1).to(x)) / std.view(1, 3, 1, 1).to(x)


def find_clip_folder(model_folder: str | Path) -> Path | None:
    """The domain CLIP inside a Tiger model folder: `clip/` (full CLIP) or `text_encoder/`."""
    model_folder = Path(model_folder)
    for sub in ("clip", "text_encoder", "."):
        cand = (model_folder / sub).resolve()
        if (cand / "config.json").exists() and any(cand.glob("*.safetensors")):
            try:
                import json

                cfg = json.loads((cand / "config.json").read_text())
            except (OSError, ValueError):
                continue
            if cfg.get("_class_name") == "DomainCLIP" or "vision_cfg" in cfg:
                return cand
    return None


def load_embedder(model_folder: str | Path | None = None, pretrained: str | Path | None = None,
                  arch: str = "ViT-B-32", allow_random: bool = False, seed: int = 0,
                  device: str | None = None) -> Embedder:
    """The embedder a report uses, and its description.

    - `pretrained`: a local open_clip checkpoint file (with `arch` its open_clip model name);
    - else the domain CLIP of `model_folder` (default: the shipped model `tiger.paths.DEFAULT_MODEL`);
    - else, only with `allow_random=True`, a randomly initialised domain CLIP (seeded): its
      numbers still rank sets (identical < shifted) but are not comparable to a trained one's.
    """
    from tiger.device import pick_device
    from tiger.paths import project_relative

    dev = pick_device(device)
    if pretrained is not None:
        path = Path(pretrained)
        if not path.is_file():
            raise MetricInputError(f"pretrained embedding file {path} does not exist")
        import open_clip

        if arch.endswith(".json"):  # a custom open_clip config file (name = file stem)
            open_clip.add_model_config(arch)
            arch = Path(arch).stem
        try:
            model = open_clip.create_model(arch, pretrained=str(path), device=dev).eval()
        except RuntimeError as e:
            raise MetricInputError(f"{path} does not fit open_clip architecture {arch}: {str(e)[:200]}") from e
        return Embedder(model, f"open_clip {arch} from local file {project_relative(path)}", kind="open_clip",
                        _tokenizer=open_clip.get_tokenizer(arch))
    from tiger import domain_clip
    from tiger.paths import DEFAULT_MODEL

    folder = Path(model_folder) if model_folder is not None else DEFAULT_MODEL
    found = find_clip_folder(folder) if folder.exists() else None
    if found is not None:
        model = domain_clip.load_clip(found).to(dev).eval()
        return Embedder(model, f"domain CLIP from {project_relative(found)}")
    if not allow_random:
        raise MetricInputError(
            f"no domain CLIP found in {folder} (looked for clip/ and text_encoder/ with config.json); "
            "pass a model folder, a pretrained file, or allow a random embedder")
    torch.manual_seed(seed)
    model = domain_clip.build_clip().to(dev).eval()
    return Embedder(model, f"domain CLIP, randomly initialised (seed {seed}); not trained")
