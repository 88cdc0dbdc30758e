"""Train the preset's VAE on the training split: L1 + L1 on the FFT amplitude spectrum + a tiny
KL, random crops early then whole images, and an optional spectral-norm patch discriminator.

Why this loss: plain L1 gives structure but smooths the speckle; the FFT-amplitude term asks for
the right amount of energy at every spatial frequency regardless of phase, which is what speckle
is (DESIGN.md: 28.8 dB with it). Crops early make steps cheap while the coarse structure is
learnt; whole images later teach the frame and the global layout. The critic (see
training/discriminator.py) trains alone first; its term enters the decoder's loss after a
warm-up AND only once its smoothed loss has left chance level (--disc-gate): a 3-minute CPU run
showed a critic still at loss 2.0 after its warm-up, and its (adaptively up-weighted) noise
then raised the L1 by 80%. At the end the latent scaling factor is
measured on the training split and written into the VAE config, so the diffusion stages see
unit-variance latents.

Decoder-only continuation (--train-part decoder --init <vae folder>): the encoder and the
quant conv stay frozen, so the latent space, and with it every diffusion stage already trained
on it, stays valid while the decoder learns to render more detail. The local high-frequency
term (--hf-weight) asks every 8x8 region for the energy of the Laplacian that the input has
there: speckle density differs by tissue, and the global FFT term spread hallucinated energy
over all frequencies, costing PSNR (25.6 dB with the critic). Measured on the CPU from the
first shipped VAE: 80 decoder steps with L1 + 0.02 x this term went from 25.6 dB / ratio 1.14
to 28.4 dB / 0.59.

    python -m training.train_vae --data data/ddti-128 --out runs/tiny/stages/vae --preset tiny --max-minutes 6
"""
from __future__ import annotations

import argparse

import tiger  # noqa: F401
import torch
import torch.nn.functional as F

from training.draws import random_hflip
from training.errors import TrainingInputError
from training.stage_cli import add_common_args, stage_main
from training.stage_run import StageRun, trainable
from training.tensor_data import load_split
from training.eval_vae import LAPLACIAN_KERNEL
from training.discriminator import PatchDiscriminator, adaptive_weight, gan_ramp, hinge_d_loss, hinge_g_loss


def fft_amplitude_l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L1 between the orthonormal 2-D FFT amplitudes (fp32: no bf16 FFT)."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        fx = torch.fft.rfft2(x.float(), norm="ortho").abs()
        fy = torch.fft.rfft2(y.float(), norm="ortho").abs()
        return (fx - fy).abs().mean()


def random_crops(images: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """One random size x size crop per image (positions drawn from the step's generator)."""
    n, _, h, w = images.shape
    if size >= min(h, w):
        return images
    ys = torch.randint(0, h - size + 1, (n,), generator=g, device=g.device).tolist()
    xs = torch.randint(0, w - size + 1, (n,), generator=g, device=g.device).tolist()
    return torch.stack([images[i, :, y:y + size, x:x + size] for i, (y, x) in enumerate(zip(ys, xs))])


def local_hf_energy(x: torch.Tensor, cell: int = 8) -> torch.Tensor:
    """Mean squared Laplacian per cell x cell region (images in [-1, 1] -> N x C x H/cell x W/cell)."""
    k = LAPLACIAN_KERNEL.to(x.device, torch.float32).view(1, 1, 3, 3).repeat(x.shape[1], 1, 1, 1)
    lap = F.conv2d((x.float() + 1) / 2, k, groups=x.shape[1])
    return F.avg_pool2d(lap.pow(2), cell)


def local_hf_l1(rec: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """L1 between local high-frequency energy maps, relative to the batch's mean input energy."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        ex, er = local_hf_energy(x), local_hf_energy(rec)
        return (er - ex).abs().mean() / ex.mean().clamp_min(1e-8)


def vae_losses(vae, x: torch.Tensor, fft_weight: float, kl_weight: float, sample_g: torch.Generator | None = None,
               hf_weight: float = 0.0):
    """(total reconstruction loss, reconstruction, parts) for one batch."""
    post = vae.encode(x).latent_dist
    z = post.sample(generator=sample_g) if sample_g is not None else post.mode()
    rec = vae.decode(z).sample
    l1 = (rec.float() - x.float()).abs().mean()
    ff = fft_amplitude_l1(rec, x)
    kl = post.kl().float().mean() / (x.shape[-1] * x.shape[-2])
    total = l1 + fft_weight * ff + kl_weight * kl
    parts = {"l1": l1.item(), "fft": ff.item(), "kl": kl.item()}
    if hf_weight:
        hf = local_hf_l1(rec, x)
        total = total + hf_weight * hf
        parts["hf"] = hf.item()
    return total, rec, parts


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, batch_size=16, lr=2e-4, max_steps=10**9, max_minutes=15)
    ap.add_argument("--fft-weight", type=float, default=1.0)
    ap.add_argument("--kl-weight", type=float, default=1e-5, help="on KL summed over latents / pixels")
    ap.add_argument("--crop", type=int, default=64, help="crop size of the early phase (0: whole images throughout)")
    ap.add_argument("--crop-until", type=float, default=0.3, help="fraction of the budget trained on crops")
    ap.add_argument("--disc", action=argparse.BooleanOptionalAction, default=True, help="patch discriminator")
    ap.add_argument("--disc-start", type=float, default=0.5, help="fraction of the budget when the critic starts")
    ap.add_argument("--disc-warmup", type=float, default=0.1, help="critic-only fraction, then ramp of the same length")
    ap.add_argument("--disc-weight", type=float, default=0.5)
    ap.add_argument("--disc-lr", type=float, default=4e-4)
    ap.add_argument("--disc-gate", type=float, default=1.8,
                    help="the adversarial term enters only once the critic's smoothed loss fell below this "
                         "(2.0 = chance): a critic that has learnt nothing must not steer the decoder")
    ap.add_argument("--max-adaptive-weight", type=float, default=10.0)
    ap.add_argument("--hf-weight", type=float, default=0.0, help="local high-frequency (Laplacian energy) term")
    ap.add_argument("--init", default=None, help="start from this VAE folder instead of the preset's fresh VAE")
    ap.add_argument("--train-part", default="all", choices=("all", "decoder"),
                    help="decoder: freeze encoder and quant conv (keeps the latent space of trained diffusion stages)")
    return ap


def train(args: argparse.Namespace) -> dict:
    from diffusers import AutoencoderKL

    from tiger import nets
    from training.eval_vae import evaluate_vae

    run = StageRun.from_args(args, "vae")
    acc, dev = run.acc, run.device
    data = load_split(args.data, "train", args.split_seed, dev)
    torch.manual_seed(args.seed)
    vae = (AutoencoderKL.from_pretrained(args.init, torch_dtype=torch.float32) if args.init
           else nets.build_vae(args.preset))
    vae.to(dev, torch.float32).train()
    if args.train_part == "decoder":
        if not args.init:
            raise TrainingInputError("--train-part decoder needs --init: a fresh encoder must be trained too")
        vae.encoder.requires_grad_(False)
        if vae.quant_conv is not None:
            vae.quant_conv.requires_grad_(False)
    opt = torch.optim.AdamW(trainable(vae.parameters()), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    disc = PatchDiscriminator(in_channels=data.images.shape[1]).to(dev)
    opt_d = torch.optim.Adam(disc.parameters(), lr=args.disc_lr, betas=(0.5, 0.9))
    vae, opt, disc, opt_d = acc.prepare(vae, opt, disc, opt_d)
    resumed = run.resume()
    raw = acc.unwrap_model(vae)
    last_layer = raw.decoder.conv_out.weight

    while run.keep_going():
        progress = max(run.state.step / max(1, args.max_steps), run.state.elapsed_s / max(1e-9, args.max_minutes * 60))
        g = run.rng(0)
        idx = run.batch_indices(len(data), args.batch_size, g)
        (x,) = random_hflip(g, data.images[idx])
        if args.crop and progress < args.crop_until:
            x = random_crops(x, args.crop, g)
        train_d, g_weight = gan_ramp(progress, args.disc_start, args.disc_warmup) if args.disc else (False, 0.0)
        gate = run.state.extra.setdefault("gate_open", False)
        g_weight = g_weight if gate else 0.0
        with acc.autocast():
            rec_loss, rec, parts = vae_losses(vae, x, args.fft_weight, args.kl_weight, run.rng(1),
                                               args.hf_weight)
            loss = rec_loss
            if g_weight > 0:
                g_loss = hinge_g_loss(disc(rec))
                lam = adaptive_weight(rec_loss, g_loss, last_layer, args.max_adaptive_weight)
                loss = rec_loss + args.disc_weight * g_weight * lam * g_loss
                parts.update({"g_loss": g_loss.item(), "adaptive_w": lam.item()})
        opt.zero_grad(set_to_none=True)
        acc.backward(loss)
        acc.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if train_d:
            with acc.autocast():
                lr_ = disc(x)
                lf = disc(rec.detach())
                d_loss = hinge_d_loss(lr_, lf)
            opt_d.zero_grad(set_to_none=True)
            acc.backward(d_loss)
            opt_d.step()
            ema_d = 0.95 * run.state.extra.get("d_loss_ema", 2.0) + 0.05 * d_loss.item()
            run.state.extra["d_loss_ema"] = ema_d
            if ema_d < args.disc_gate:
                run.state.extra["gate_open"] = True
            parts.update({"d_loss_ema": ema_d, "d_loss": d_loss.item(), "d_real": lr_.mean().item(), "d_fake": lf.mean().item(),
                          "d_acc": 0.5 * ((lr_ > 0).float().mean() + (lf < 0).float().mean()).item()})
        parts["loss"] = loss.item()
        run.end_step(parts)

    raw = acc.unwrap_model(vae)
    raw.eval()
    info = {"resumed": resumed, "init": args.init, "train_part": args.train_part, "hf_weight": args.hf_weight}
    if acc.is_main_process:
        if args.train_part == "all":  # a frozen encoder keeps its latents, hence their scale
            raw.register_to_config(scaling_factor=latent_scaling_factor(raw, data.images))
        val = load_split(args.data, "val", args.split_seed, dev)
        info["val"] = evaluate_vae(raw, val.images)
        info["scaling_factor"] = raw.config.scaling_factor
        raw.save_pretrained(str(run.model_dir))
    return run.finish(info)


@torch.no_grad()
def latent_scaling_factor(vae, images: torch.Tensor, batch_size: int = 64) -> float:
    """1 / std of sampled latents over the training images (Rombach et al.'s recipe)."""
    zs = []
    g = torch.Generator(device=images.device).manual_seed(0)
    for i in range(0, len(images), batch_size):
        zs.append(vae.encode(images[i:i + batch_size]).latent_dist.sample(generator=g).float())
    std = torch.cat(zs).std().item()
    return float(1.0 / max(std, 1e-6))


def main(argv: list[str] | None = None) -> int:
    return stage_main(build_parser, train, argv)


if __name__ == "__main__":
    raise SystemExit(main())
