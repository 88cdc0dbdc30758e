"""Fine stage: the UNet frozen; the FG ControlNet (nodule mask + FG text, omega-weighted
cross-attention) and the BG ControlNet (Sobel map + BG text), both initialised from the coarse
UNet, and the AFF fusion of their residuals are trained through `tiger.nets.fused_forward`, the
same function the pipeline samples with.

Optimisers, as in the paper: the FG and BG ControlNets each have their OWN AdamW (paper,
Methods: "both FG-Encoder and BG-Encoder are equipped with individual optimizers (both
utilizing AdamW)"). The AFF fusion has a third AdamW of its own (the paper does not say where
its parameters go; a separate optimiser keeps the two encoders' states symmetric and lets the
fusion use its own learning rate). The loss is the one v-prediction loss of the fused output;
each optimiser steps on its own parameters from that shared gradient.

Departure, off by default: `--unet-lr` trains the UNet too, and `--mask-channel` gives it the mask
as a fifth input (tiger.models.mask_channel); the ablation table in the model card says why.
`--shifts` moves image, mask and Sobel map sideways together (training/views.py), so the nodule
is seen at the poles and not only in the middle of the frame where DDTI puts it.

Condition dropout: the full, FG and BG texts are each dropped to "" with `--text-dropout`,
and the mask / Sobel images are zeroed with `--cond-dropout`, so the model stays usable with
one encoder and under classifier-free guidance. `--plain-dropout` trains a share of each batch
on the no-control path (no ControlNet residuals, the mask channel zero) that control guidance
(the pipeline's beta, eq. 13) sets the controlled prediction against: as for classifier-free
guidance, the guided step is only as good as the estimate it extrapolates from, and a UNet
trained in the fine stage had never seen that path again.

    python -m training.train_fine --data data/ddti-128 --out runs/tiny/stages/fine --preset tiny \
        --vae runs/tiny/stages/vae/model --text-encoder runs/tiny/stages/clip/model \
        --unet runs/tiny/stages/coarse/model --max-minutes 6
"""
from __future__ import annotations

import argparse
from pathlib import Path

import tiger  # noqa: F401
import torch

from training.common import (stage_main, EMA, StageRun, TrainingInputError, add_common_args, drop_texts,
                             load_split, trainable)
from training.diffusion import (TIMESTEP_SAMPLING, TextBank, load_frozen, mask_weight, noisy_v_batch,
                                prepare_latents, weighted_mse)
from training.views import parse_shifts


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, batch_size=16, lr=1e-4, max_steps=10**9, max_minutes=8)
    ap.add_argument("--vae", default=None, help="trained VAE folder (tiny/micro)")
    ap.add_argument("--text-encoder", default=None, help="trained domain CLIP folder (tiny/micro)")
    ap.add_argument("--unet", required=True, help="coarse-stage UNet folder (frozen here)")
    ap.add_argument("--init", default=None,
                    help="continue from the controlnet_fg/, controlnet_bg/ and fusion/ of this model folder "
                         "(e.g. the shipped model) instead of copies of the coarse UNet")
    ap.add_argument("--fusion-lr", type=float, default=None, help="AFF learning rate (default: --lr x 10)")
    ap.add_argument("--control-lr", type=float, default=None,
                    help="learning rate of each ControlNet's condition embedding and zero convolutions, "
                         "without weight decay (default: --lr, with it)")
    ap.add_argument("--text-dropout", type=float, default=0.1)
    ap.add_argument("--cond-dropout", type=float, default=0.05)
    ap.add_argument("--plain-dropout", type=float, default=0.0,
                    help="share of each batch trained without any control (no residuals, mask channel zero): "
                         "the no-control estimate that control guidance beta extrapolates from")
    ap.add_argument("--min-snr-gamma", type=float, default=5.0)
    ap.add_argument("--timesteps", choices=TIMESTEP_SAMPLING, default="uniform",
                    help="training timestep draw; cubic favours the noisy steps where the nodule is placed")
    ap.add_argument("--mask-loss-weight", type=float, default=1.0,
                    help="loss weight inside the nodule mask relative to outside (1 = uniform)")
    ap.add_argument("--shifts", default="0",
                    help="sideways shifts in pixels, e.g. -40,-20,0,20,40: image, mask and Sobel map move together so "
                         "the nodule is seen away from the frame's middle (training/views.py); 0 = none")
    ap.add_argument("--mask-channel", action="store_true",
                    help="give the UNet the nodule mask as a fifth input channel (zero-initialised; a departure "
                         "from the paper, see tiger.models.mask_channel); needs --unet-lr")
    ap.add_argument("--unet-lr", type=float, default=None,
                    help="train the UNet too, with its own AdamW at this rate (default: frozen, as in the paper); "
                         "with --init, the folder's own unet/ is the starting point")
    ap.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--ema-decay", type=float, default=0.999)
    return ap


def _keep(n: int, p: float, g: torch.Generator) -> torch.Tensor:
    return (torch.rand(n, generator=g, device=g.device) >= p).float().view(n, 1, 1, 1)


#: the parts of a diffusers ControlNet that read the condition image or start at zero
CONTROL_PARTS = ("controlnet_cond_embedding.", "controlnet_down_blocks.", "controlnet_mid_block.")


def controlnet_param_groups(cn: torch.nn.Module, lr: float, control_lr: float | None) -> list[dict]:
    """AdamW groups: the ControlNet's copied UNet blocks at `lr` with weight decay, and its
    condition embedding and zero convolutions at `control_lr` without it.

    Why: the zero convolutions start at 0 and the condition embedding is trained from scratch,
    so at the UNet-copy rate they grow slowly and weight decay pulls them back to 0; a frozen-at-
    zero path is exactly a ControlNet that ignores its condition (what training.diagnose_control
    measured for the shipped v2's mask encoder).
    """
    if control_lr is None:
        return [{"params": trainable(cn.parameters()), "lr": lr, "weight_decay": 1e-2}]
    ctrl, rest = [], []
    for name, p in cn.named_parameters():
        if p.requires_grad:
            (ctrl if name.startswith(CONTROL_PARTS) else rest).append(p)
    return [{"params": rest, "lr": lr, "weight_decay": 1e-2},
            {"params": ctrl, "lr": control_lr, "weight_decay": 0.0}]


def unet_param_groups(unet: torch.nn.Module, lr: float, control_lr: float | None) -> list[dict]:
    """AdamW groups of a UNet trained in the fine stage: the body at `lr` with weight decay, and
    conv_in (where the zero-initialised mask channel enters) at `control_lr` (else `lr`) without
    it, since decay would pull the new channel back to zero, as for the zero convolutions."""
    head = [p for n, p in unet.named_parameters() if n.startswith("conv_in.")]
    rest = [p for n, p in unet.named_parameters() if not n.startswith("conv_in.")]
    return [{"params": rest, "lr": lr, "weight_decay": 1e-2},
            {"params": head, "lr": control_lr or lr, "weight_decay": 0.0}]


def _fresh_fine_parts(unet, preset: str, vae) -> tuple:
    """ControlNets copied from the coarse UNet and an AFF fusion that starts as fg + bg."""
    from tiger import nets
    cn_fg, cn_bg = nets.build_controlnets(unet, preset, vae=vae)
    return cn_fg, cn_bg, nets.build_fusion(cn_fg, preset)


def _load_fine_parts(folder: Path) -> tuple:
    """The fine-stage parts of a finished model folder, in fp32, to train on from there."""
    from diffusers import ControlNetModel

    from tiger import nets
    parts = []
    for sub, cls in (("controlnet_fg", ControlNetModel), ("controlnet_bg", ControlNetModel), ("fusion", nets.AFFFusion)):
        if not (folder / sub / "config.json").exists():
            raise TrainingInputError(f"--init {folder} has no {sub}/config.json")
        parts.append(cls.from_pretrained(str(folder / sub), torch_dtype=torch.float32))
    return tuple(parts)


def train(args: argparse.Namespace) -> dict:
    from diffusers import UNet2DConditionModel

    from tiger import nets

    run = StageRun.from_args(args, "fine")
    acc, dev = run.acc, run.device
    if not (Path(args.unet) / "config.json").exists():
        raise TrainingInputError(f"--unet {args.unet} holds no UNet (no config.json); run training.train_coarse first")
    frozen = load_frozen(args.preset, args.vae, args.text_encoder, dev)
    data = load_split(args.data, "train", args.split_seed, dev)
    lat = prepare_latents(frozen, data, parse_shifts(args.shifts, data.images.shape[-1]))
    bank = TextBank(frozen.text_encoder, data.text + data.text_bg, frozen.tokenizer)
    full_ids, bg_ids = bank.ids(data.text), bank.ids(data.text_bg)
    noise_sched = nets.build_noise_scheduler(nets.build_scheduler())

    if args.mask_channel and not args.unet_lr:
        raise TrainingInputError("--mask-channel adds UNet weights that must be trained: give --unet-lr")
    unet_dir = Path(args.init) / "unet" if args.init and args.unet_lr and (Path(args.init) / "unet").exists() else Path(args.unet)
    unet = UNet2DConditionModel.from_pretrained(str(unet_dir), torch_dtype=torch.float32)
    if args.mask_channel:
        unet = nets.widen_for_mask(unet)
    unet.to(dev)
    if args.unet_lr:
        unet.train()
    else:
        unet.eval().requires_grad_(False)
    torch.manual_seed(args.seed)
    cn_fg, cn_bg, fusion = (_load_fine_parts(Path(args.init)) if args.init
                            else _fresh_fine_parts(unet, args.preset, frozen.vae))
    for m in (cn_fg, cn_bg, fusion):
        m.to(dev, torch.float32).train()
    opt_fg = torch.optim.AdamW(controlnet_param_groups(cn_fg, args.lr, args.control_lr))
    opt_bg = torch.optim.AdamW(controlnet_param_groups(cn_bg, args.lr, args.control_lr))
    opt_aff = torch.optim.AdamW(trainable(fusion.parameters()), lr=args.fusion_lr or args.lr * 10, weight_decay=0.0)
    cn_fg, cn_bg, fusion, opt_fg, opt_bg, opt_aff = acc.prepare(cn_fg, cn_bg, fusion, opt_fg, opt_bg, opt_aff)
    trained = [("fg", cn_fg), ("bg", cn_bg), ("fusion", fusion)]
    opts = [opt_fg, opt_bg, opt_aff]
    if args.unet_lr:
        opt_unet = torch.optim.AdamW(unet_param_groups(unet, args.unet_lr, args.control_lr))
        unet, opt_unet = acc.prepare(unet, opt_unet)
        trained.append(("unet", unet))
        opts.append(opt_unet)
    emas = {}
    if args.ema:
        for name, m in trained:
            emas[name] = EMA(acc.unwrap_model(m), args.ema_decay)
            acc.register_for_checkpointing(emas[name])
    resumed = run.resume()
    nets.set_omega_processor(acc.unwrap_model(cn_fg))
    params = [p for _, m in trained for p in m.parameters()]

    while run.keep_going():
        g = run.rng(0)
        idx = run.batch_indices(len(lat), args.batch_size, g)
        n = len(idx)
        views = lat.draw_views(n, g)
        z0 = lat.sample(idx, views, frozen.scaling_factor, g)
        mask_full = lat.view(data.masks[idx], views)
        mask = mask_full * _keep(n, args.cond_dropout, g)
        sobel = lat.view(data.sobel[idx], views) * _keep(n, args.cond_dropout, g)
        il = idx.tolist()
        fg_texts = drop_texts([data.text_fg[i] for i in il], args.text_dropout, g)
        zero = torch.zeros_like(idx)
        ctx_full = bank.states[torch.where(_keep(n, args.text_dropout, g).view(n).bool(), full_ids[idx], zero)]
        ctx_bg = bank.states[torch.where(_keep(n, args.text_dropout, g).view(n).bool(), bg_ids[idx], zero)]
        with torch.no_grad():
            ctx_fg, omega_fg = nets.encode_prompts(frozen.text_encoder, fg_texts, reweight=True, tokenizer=frozen.tokenizer)
        zt, t, v, w = noisy_v_batch(noise_sched, z0, g, args.min_snr_gamma or None, args.timesteps)
        # the batch is a random draw, so its last rows are as random as any: they go without control
        n_plain = int((torch.rand(n, generator=g, device=g.device) < args.plain_dropout).sum()) if args.plain_dropout else 0
        c = n - n_plain
        with acc.autocast():
            pred = nets.fused_forward(unet, cn_fg, cn_bg, fusion, zt, t, ctx_full, ctx_fg[:c].float(), ctx_bg[:c],
                                      omega_fg[:c].float(), mask[:c], sobel[:c], n_plain=n_plain)
            loss = weighted_mse(pred, v, w, mask_weight(mask_full, tuple(z0.shape[-2:]), args.mask_loss_weight))
        for o in opts:
            o.zero_grad(set_to_none=True)
        acc.backward(loss)
        acc.clip_grad_norm_(params, 1.0)
        for o in opts:
            o.step()
        for name, m in trained:
            if name in emas:
                emas[name].update(acc.unwrap_model(m))
        run.end_step({"loss": loss.item()})

    info = {"resumed": resumed, "init": args.init, "ema": bool(emas),
            "optimizers": f"AdamW x{len(opts)} (FG ControlNet, BG ControlNet, AFF fusion" + (", UNet)" if args.unet_lr else ")"),
            "unet_lr": args.unet_lr, "mask_channel": bool(args.mask_channel),
            "text_dropout": args.text_dropout, "cond_dropout": args.cond_dropout, "plain_dropout": args.plain_dropout,
            "mask_loss_weight": args.mask_loss_weight, "control_lr": args.control_lr,
            "timesteps": args.timesteps, "shifts": list(lat.shifts)}
    if acc.is_main_process:
        for name, m in trained:
            raw = acc.unwrap_model(m)
            backup = {k: v.detach().clone() for k, v in raw.state_dict().items()}
            if name in emas:
                emas[name].copy_to(raw)
            raw.save_pretrained(str(run.model_dir / {"fg": "controlnet_fg", "bg": "controlnet_bg"}.get(name, name)))
            raw.load_state_dict(backup)
    return run.finish(info)


def main(argv: list[str] | None = None) -> int:
    return stage_main(build_parser, train, argv)


if __name__ == "__main__":
    raise SystemExit(main())
