"""Coarse stage: train the base UNet on image latents + the full text (v-prediction).

The VAE and text encoder are frozen (encoded once, see training/diffusion.py); the text is
dropped to "" for ~10% of samples so the same UNet also learns the unconditional prediction
that classifier-free guidance needs. An EMA of the UNet's weights is what gets saved (it gives
cleaner samples from short runs); the raw weights stay in the checkpoint.

    python -m training.train_coarse --data data/ddti-128 --out runs/tiny/stages/coarse --preset tiny \
        --vae runs/tiny/stages/vae/model --text-encoder runs/tiny/stages/clip/model --max-minutes 8
"""
from __future__ import annotations

import argparse

import tiger  # noqa: F401
import torch

from training.ema import EMA
from training.errors import TrainingInputError
from training.stage_cli import add_common_args, stage_main
from training.stage_run import StageRun, trainable
from training.tensor_data import load_split
from training.diffusion import (TextBank, load_frozen, noisy_v_batch, prepare_latents,
                                weighted_mse)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, batch_size=32, lr=3e-4, max_steps=10**9, max_minutes=10)
    ap.add_argument("--vae", default=None, help="trained VAE folder (tiny/micro)")
    ap.add_argument("--text-encoder", default=None, help="trained domain CLIP folder (tiny/micro)")
    ap.add_argument("--init-unet", default=None, help="continue from this UNet folder")
    ap.add_argument("--cfg-dropout", type=float, default=0.1, help="probability of an empty text")
    ap.add_argument("--min-snr-gamma", type=float, default=5.0, help="0 turns the weighting off")
    ap.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--ema-decay", type=float, default=0.999)
    return ap


def train(args: argparse.Namespace) -> dict:
    from diffusers import UNet2DConditionModel

    from tiger import nets

    run = StageRun.from_args(args, "coarse")
    acc, dev = run.acc, run.device
    frozen = load_frozen(args.preset, args.vae, args.text_encoder, dev)
    data = load_split(args.data, "train", args.split_seed, dev)
    lat = prepare_latents(frozen, data)
    bank = TextBank(frozen.text_encoder, data.text, frozen.tokenizer)
    text_ids = bank.ids(data.text)
    noise_sched = nets.build_noise_scheduler(nets.build_scheduler())

    torch.manual_seed(args.seed)
    unet = (UNet2DConditionModel.from_pretrained(args.init_unet) if args.init_unet else nets.build_unet(args.preset))
    unet.to(dev, torch.float32).train()
    if unet.config.cross_attention_dim != bank.states.shape[-1]:
        raise TrainingInputError(f"the UNet's cross-attention width {unet.config.cross_attention_dim} does not match "
                                 f"the text encoder's {bank.states.shape[-1]}: VAE/CLIP/UNet must come from one preset")
    opt = torch.optim.AdamW(trainable(unet.parameters()), lr=args.lr, weight_decay=1e-2)
    unet, opt = acc.prepare(unet, opt)
    ema = EMA(acc.unwrap_model(unet), args.ema_decay) if args.ema else None
    if ema is not None:
        acc.register_for_checkpointing(ema)
    resumed = run.resume()

    while run.keep_going():
        g = run.rng(0)
        idx = run.batch_indices(len(lat), args.batch_size, g)
        z0 = lat.sample(idx, lat.draw_views(len(idx), g), frozen.scaling_factor, g)
        keep = torch.rand(len(idx), generator=g, device=g.device) >= args.cfg_dropout
        ctx = bank.states[torch.where(keep, text_ids[idx], torch.zeros_like(idx))]
        zt, t, v, w = noisy_v_batch(noise_sched, z0, g, args.min_snr_gamma or None)
        with acc.autocast():
            pred = unet(zt, t, encoder_hidden_states=ctx, return_dict=False)[0]
            loss = weighted_mse(pred, v, w)
        opt.zero_grad(set_to_none=True)
        acc.backward(loss)
        acc.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        if ema is not None:
            ema.update(acc.unwrap_model(unet))
        run.end_step({"loss": loss.item()})

    info = {"resumed": resumed, "ema": bool(ema), "cfg_dropout": args.cfg_dropout,
            "scaling_factor": frozen.scaling_factor}
    if acc.is_main_process:
        raw = acc.unwrap_model(unet)
        if ema is not None:  # save the EMA weights, keep the raw ones in memory/checkpoint
            backup = {k: v.detach().clone() for k, v in raw.state_dict().items()}
            ema.copy_to(raw)
            raw.save_pretrained(str(run.model_dir))
            raw.load_state_dict(backup)
        else:
            raw.save_pretrained(str(run.model_dir))
    return run.finish(info)


def main(argv: list[str] | None = None) -> int:
    return stage_main(build_parser, train, argv)


if __name__ == "__main__":
    raise SystemExit(main())
