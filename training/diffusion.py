"""What the two diffusion stages (coarse and fine) share: loading the frozen parts, encoding the
training split once into latents and text states, and the v-prediction loss.

Why precompute: the VAE and text encoder are frozen in both stages, so encoding every image
(and its left-right mirror) and every distinct text once removes them from the step entirely;
a step is then only the UNet (and ControlNets). Latents keep the posterior mean and std, and a
fresh latent sample is drawn each step, so the UNet still sees the VAE's posterior noise.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm import tqdm

from training.errors import TrainingInputError
from training.tensor_data import TensorData
from training.views import apply_views, draw_views, view_of


@dataclass
class Frozen:
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scaling_factor: float


def load_frozen(preset: str, vae_dir: str | None, text_encoder_dir: str | None, device: torch.device) -> Frozen:
    """VAE and text encoder of the earlier stages (folders), or the preset's own (sd2)."""
    from diffusers import AutoencoderKL

    from tiger import nets
    from tiger.domain_clip import DomainCLIP

    p = nets.resolve_preset(preset)
    if vae_dir:
        if not (Path(vae_dir) / "config.json").exists():
            raise TrainingInputError(f"--vae {vae_dir} holds no trained VAE (no config.json); run training.train_vae first")
        vae = AutoencoderKL.from_pretrained(vae_dir, torch_dtype=torch.float32)
    elif p["kind"] == "folder":
        vae = nets.build_vae(p)
    else:
        raise TrainingInputError("--vae is required for the tiny/micro presets (the VAE stage's model/ folder)")
    tokenizer = None
    if text_encoder_dir:
        if not (Path(text_encoder_dir) / "config.json").exists():
            raise TrainingInputError(f"--text-encoder {text_encoder_dir} holds no trained domain CLIP (no config.json)")
        te = DomainCLIP.from_pretrained(text_encoder_dir, torch_dtype=torch.float32)
    elif p["kind"] == "folder":
        te = nets.build_text_encoder(p)
        tokenizer = nets.build_tokenizer(p)
    else:
        raise TrainingInputError("--text-encoder is required for the tiny/micro presets (the CLIP stage's model/ folder)")
    for m in (vae, te):
        m.to(device, torch.float32).eval().requires_grad_(False)
    return Frozen(vae, te, tokenizer, float(vae.config.scaling_factor))


@torch.no_grad()
def encode_latents(vae, images: torch.Tensor, batch_size: int = 64,
                   shifts: Sequence[int] = (0,)) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of every view of the images: V x N x C x h x w each, V = 2 * len(shifts)
    (view 2s plain, 2s + 1 mirrored, both shifted by shifts[s]; training/views.py), so flips and
    shifts are exact rather than approximated in latent space."""
    means, stds = [], []
    for v in tqdm(range(2 * len(shifts)), desc="encoding views", unit="view", disable=len(shifts) == 1):
        m, s = [], []
        for i in range(0, len(images), batch_size):
            post = vae.encode(view_of(images[i:i + batch_size], v, shifts)).latent_dist
            m.append(post.mean.float())
            s.append(post.std.float())
        means.append(torch.cat(m))
        stds.append(torch.cat(s))
    return torch.stack(means), torch.stack(stds)


class TextBank:
    """Token states of every distinct text (plus "" for guidance dropout), computed once."""

    def __init__(self, text_encoder: Any, texts: Sequence[str], tokenizer: Any = None, batch_size: int = 64):
        from tiger import nets

        self.vocab = [""] + sorted(set(texts) - {""})
        self.index = {t: i for i, t in enumerate(self.vocab)}
        states = []
        with torch.no_grad():
            for i in range(0, len(self.vocab), batch_size):
                s, _ = nets.encode_prompts(text_encoder, self.vocab[i:i + batch_size], reweight=False, tokenizer=tokenizer)
                states.append(s.float())
        self.states = torch.cat(states)

    def ids(self, texts: Sequence[str]) -> torch.Tensor:
        return torch.tensor([self.index.get(t, 0) for t in texts], device=self.states.device)

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        missing = [t for t in texts if t not in self.index]
        if missing:
            raise KeyError(f"text not in the bank: {missing[0]!r}")
        return self.states[self.ids(texts)]


@dataclass
class LatentData:
    """The training split as the diffusion stages see it (all on the training device), every view
    (mirror x shift, training/views.py) encoded once."""

    mean: torch.Tensor  # V x N x C x h x w
    std: torch.Tensor
    data: TensorData
    shifts: tuple[int, ...] = (0,)

    def __len__(self) -> int:
        return self.mean.shape[1]

    def draw_views(self, n: int, g: torch.Generator) -> torch.Tensor:
        return draw_views(n, g, len(self.shifts))

    def sample(self, idx: torch.Tensor, views: torch.Tensor, scaling: float, g: torch.Generator) -> torch.Tensor:
        """Scaled latent samples of the batch, sample i in view `views[i]`."""
        v = views.long()
        m = self.mean[v, idx]
        s = self.std[v, idx]
        return (m + s * torch.randn(m.shape, generator=g, device=g.device, dtype=m.dtype)) * scaling

    def view(self, x: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """Image-space tensors of the batch (masks, Sobel maps) in the same views as `sample`."""
        return apply_views(x, views, self.shifts)


def prepare_latents(frozen: Frozen, data: TensorData, shifts: Sequence[int] = (0,)) -> LatentData:
    shifts = tuple(shifts)
    mean, std = encode_latents(frozen.vae, data.images, shifts=shifts)
    return LatentData(mean, std, data, shifts)


#: how training timesteps are drawn: uniform, or "cubic" (t = (1 - u^3) T, T2I-Adapter, Mou et al. 2023)
TIMESTEP_SAMPLING = ("uniform", "cubic")


def draw_timesteps(n: int, T: int, g: torch.Generator, sampling: str = "uniform") -> torch.Tensor:
    """n training timesteps in [0, T). "cubic" puts 69% of them in the noisiest third (uniform: 33%).

    Why: where the nodule goes is decided in the first, noisiest sampling steps; at low noise the
    nodule can be read off z_t itself, so a uniform draw spends most of a spatial encoder's
    gradient where its condition carries no information (T2I-Adapter's reason for the same draw).
    """
    if sampling not in TIMESTEP_SAMPLING:
        raise ValueError(f"timestep sampling must be one of {TIMESTEP_SAMPLING}, not {sampling!r}")
    if sampling == "uniform":
        return torch.randint(0, T, (n,), generator=g, device=g.device)
    u = torch.rand(n, generator=g, device=g.device)
    return ((1.0 - u.pow(3)) * T).long().clamp(0, T - 1)


def noisy_v_batch(noise_scheduler, z0: torch.Tensor, g: torch.Generator,
                  min_snr_gamma: float | None = 5.0,
                  sampling: str = "uniform") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z_t, t, v target, per-sample loss weight) for timesteps drawn by `draw_timesteps`.

    The weight is min-SNR-gamma for v-prediction, min(SNR, gamma) / (SNR + 1) (Hang et al. 2023):
    it stops the many near-noise-free timesteps from dominating and speeds convergence."""
    n = z0.shape[0]
    T = noise_scheduler.config.num_train_timesteps
    t = draw_timesteps(n, T, g, sampling)
    noise = torch.randn(z0.shape, generator=g, device=g.device, dtype=z0.dtype)
    zt = noise_scheduler.add_noise(z0, noise, t)
    v = noise_scheduler.get_velocity(z0, noise, t)
    if min_snr_gamma:
        ac = noise_scheduler.alphas_cumprod.to(z0.device)[t]
        snr = ac / (1 - ac)
        w = torch.clamp(snr, max=min_snr_gamma) / (snr + 1)
    else:
        w = torch.ones(n, device=z0.device)
    return zt, t, v, w


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                 spatial: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample weighted MSE; `spatial` (N x 1 x h x w) weights latent pixels within a sample
    (normalised to mean 1 per sample, so it shifts attention without changing the loss scale)."""
    err = (pred.float() - target.float()).pow(2)
    if spatial is not None:
        sp = spatial.float()
        err = err * (sp / sp.flatten(1).mean(1).clamp_min(1e-6).view(-1, 1, 1, 1))
    per = err.flatten(1).mean(1)
    return (per * weight).mean()


def mask_weight(mask: torch.Tensor, latent_hw: tuple[int, int], inside: float) -> torch.Tensor | None:
    """Latent-resolution loss weight 1 + (inside - 1) * mask (max-pooled, so a thin nodule still
    counts), or None when `inside` is 1. Why: the nodule is a small part of the image, so a
    uniform loss lets the FG encoder learn little; weighting it up makes the mask matter."""
    if inside == 1.0:
        return None
    m = torch.nn.functional.adaptive_max_pool2d(mask.float(), latent_hw)
    return 1.0 + (inside - 1.0) * m
