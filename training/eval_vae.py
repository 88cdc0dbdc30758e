"""Reconstruction quality of a trained VAE on the validation split, printed as JSON.

Two numbers, because either alone misleads (DESIGN.md): PSNR rewards smooth reconstructions,
and the variance of the Laplacian (a sharpness measure) rewards any high frequency, streaks
included. A good ultrasound autoencoder keeps PSNR high AND brings the Laplacian-variance ratio
(reconstruction / input) near 1, i.e. keeps the speckle.

    python -m training.eval_vae --vae runs/tiny/vae --data data/ddti-128 [--split val]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import tiger  # noqa: F401
import torch
import torch.nn.functional as F

LAPLACIAN_KERNEL = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of tensors in [-1, 1], computed on the [0, 1] scale."""
    mse = ((x.float() - y.float()) / 2).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(1.0 / mse)


def laplacian_variance(x: torch.Tensor) -> torch.Tensor:
    """Per-image variance of the Laplacian (N x 1 x H x W in [-1, 1] -> N)."""
    k = LAPLACIAN_KERNEL.to(x.device, torch.float32).view(1, 1, 3, 3)
    lap = F.conv2d(((x.float() + 1) / 2), k)
    return lap.flatten(1).var(1)


@torch.no_grad()
def reconstruct(vae, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Deterministic reconstruction (posterior mean), in batches, clamped to [-1, 1]."""
    dev = next(vae.parameters()).device
    dtype = next(vae.parameters()).dtype
    outs = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(dev, dtype)
        z = vae.encode(x).latent_dist.mode()
        outs.append(vae.decode(z).sample.float().clamp(-1, 1).cpu())
    return torch.cat(outs)


@torch.no_grad()
def evaluate_vae(vae, images: torch.Tensor, batch_size: int = 32) -> dict:
    """PSNR and Laplacian-variance ratio of reconstructions of `images` (N x 1 x H x W)."""
    if len(images) == 0:
        raise ValueError("no images to evaluate the VAE on")
    was_training = vae.training
    vae.eval()
    rec = reconstruct(vae, images, batch_size)
    vae.train(was_training)
    images = images.float().cpu()
    p = psnr(rec, images)
    lv_in = laplacian_variance(images)
    lv_rec = laplacian_variance(rec)
    return {
        "images": int(len(images)),
        "psnr_db": round(float(p.mean()), 3),
        "psnr_db_std": round(float(p.std()) if len(p) > 1 else 0.0, 3),
        "laplacian_var_ratio": round(float((lv_rec / lv_in.clamp_min(1e-12)).mean()), 4),
        "laplacian_var_ratio_of_means": round(float(lv_rec.mean() / lv_in.mean().clamp_min(1e-12)), 4),
    }


def reconstruction_grid(vae, images: torch.Tensor, path: str | Path, n: int = 6, scale: int = 2) -> Path:
    """PNG with inputs (top row) above their reconstructions (bottom row): speckle kept or
    smoothed, streaks or grid artefacts, are seen at a glance where the two numbers cannot show them."""
    from PIL import Image

    x = images[:n].float()
    rows = [x, reconstruct(vae, x)]
    grid = torch.cat([torch.cat(list(r[:, 0]), 1) for r in rows], 0)
    img = Image.fromarray(((grid.clamp(-1, 1) + 1) * 127.5).round().byte().numpy())
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def main(argv: list[str] | None = None) -> int:
    from diffusers import AutoencoderKL

    from training.errors import TrainingInputError
    from training.tensor_data import load_split

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vae", required=True, help="a VAE folder (config.json + safetensors): a stage's model/ or a model folder's vae/")
    ap.add_argument("--data", required=True, help="canonical dataset folder")
    ap.add_argument("--split", default="val", choices=("train", "val", "test"))
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--grid", default=None, help="also write inputs above reconstructions to this PNG")
    args = ap.parse_args(argv)
    try:
        folder = Path(args.vae)
        if (folder / "vae" / "config.json").exists():
            folder = folder / "vae"
        if not (folder / "config.json").exists():
            raise TrainingInputError(f"{args.vae} holds no VAE (no config.json)")
        from tiger.device import pick_device

        dev = pick_device(args.device)
        vae = AutoencoderKL.from_pretrained(str(folder)).to(dev, torch.float32)
        data = load_split(args.data, args.split, args.split_seed)
        result = evaluate_vae(vae, data.images)
        result.update({"split": args.split, "split_seed": args.split_seed, "vae": str(folder)})
        if args.grid:
            result["grid"] = str(reconstruction_grid(vae, data.images, args.grid))
    except (TrainingInputError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
