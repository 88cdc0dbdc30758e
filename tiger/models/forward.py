"""The one forward pass that training and inference share.

Why one function: the fine stage trains exactly the path that the pipeline samples from. The
paper's reference code diverged here (AFF modules re-created untrained every step, omega never
applied, two UNet passes per step), so `fused_forward` is the single implementation that both
`training/` and `tiger.pipeline` call."""
from __future__ import annotations


import torch
from diffusers import ControlNetModel, UNet2DConditionModel

from tiger.models.fusion import AFFFusion
from tiger.models.mask_channel import has_mask_channel, mask_at_latent


ENCODERS = ("fg", "bg", "both", "none")


def control_residuals(cn_fg: ControlNetModel | None, cn_bg: ControlNetModel | None, fusion: AFFFusion | None,
                      latents: torch.Tensor, t: torch.Tensor, ctx_fg: torch.Tensor | None, ctx_bg: torch.Tensor | None,
                      omega_fg: torch.Tensor | None, cond_fg: torch.Tensor | None, cond_bg: torch.Tensor | None,
                      fg_scale: float = 1.0, bg_scale: float = 1.0, encoders: str = "both",
                      ) -> tuple[list[torch.Tensor], torch.Tensor] | None:
    """The 12 down + 1 mid residuals for the UNet: FG and/or BG ControlNet, fused by AFF when both.

    Returns None for encoders="none". With one encoder its residuals go to the UNet unfused
    (the AFF modules were trained on pairs; feeding them a zero partner is off-distribution).
    """
    if encoders not in ENCODERS:
        raise ValueError(f"encoders must be one of {ENCODERS}, got {encoders!r}")
    if encoders == "none":
        return None
    outs = {}
    if encoders in ("fg", "both"):
        down, mid = cn_fg(latents, t, encoder_hidden_states=ctx_fg, controlnet_cond=cond_fg,
                          conditioning_scale=fg_scale, cross_attention_kwargs={"omega": omega_fg},
                          return_dict=False)
        outs["fg"] = list(down) + [mid]
    if encoders in ("bg", "both"):
        down, mid = cn_bg(latents, t, encoder_hidden_states=ctx_bg, controlnet_cond=cond_bg,
                          conditioning_scale=bg_scale, return_dict=False)
        outs["bg"] = list(down) + [mid]
    res = fusion(outs["fg"], outs["bg"]) if encoders == "both" else outs[encoders]
    return res[:-1], res[-1]


def fused_forward(unet: UNet2DConditionModel, cn_fg: ControlNetModel | None, cn_bg: ControlNetModel | None,
                  fusion: AFFFusion | None, latents: torch.Tensor, t: torch.Tensor | int,
                  ctx_full: torch.Tensor, ctx_fg: torch.Tensor | None, ctx_bg: torch.Tensor | None,
                  omega_fg: torch.Tensor | None, cond_fg: torch.Tensor | None, cond_bg: torch.Tensor | None,
                  fg_scale: float = 1.0, bg_scale: float = 1.0, encoders: str = "both",
                  n_plain: int = 0) -> torch.Tensor:
    """One denoising prediction of the Tiger Model (v-prediction), used by the pipeline AND the
    fine-stage training loss, so the path that is trained is the path that is sampled.

    Args:
        unet: the (frozen in the fine stage) base UNet.
        cn_fg, cn_bg: FG (mask) and BG (Sobel) ControlNets; may be None when `encoders` excludes them.
        fusion: AFFFusion, used when encoders == "both".
        latents: B x 4 x h x w noisy latents (already scaled by the scheduler's input scaling).
        t: timestep, an int or a tensor of B values (one per row).
        ctx_full: B x L x D text states of the FULL prompt for the UNet's own cross-attention.
        ctx_fg / ctx_bg: (B - n_plain) x L x D states of the FG / BG texts for each ControlNet.
        omega_fg: (B - n_plain) x L per-token omega of the FG text (`encode_prompts(reweight=True)`).
        cond_fg / cond_bg: (B - n_plain) x 1 x H x W mask in {0,1} / Sobel map in [0,1], image size.
            A UNet with a mask input channel (`tiger.models.mask_channel`) also gets cond_fg,
            area-averaged to latent size, on the controlled rows.
        fg_scale / bg_scale: ControlNet conditioning scales.
        encoders: "both" (AFF-fused), "fg", "bg" or "none" (the plain coarse-stage UNet).
        n_plain: the LAST n_plain rows of `latents`/`ctx_full` get no control residuals. The
            pipeline uses this for control guidance (eq. 13, beta != 1): the no-control
            prediction rides in the same UNet batch instead of a second pass.

    Returns:
        B x 4 x h x w model output (v).
    """
    B = latents.shape[0]
    n_ctrl = B - n_plain
    t_all = torch.as_tensor(t, device=latents.device)
    if t_all.ndim == 0:
        t_all = t_all.expand(B)
    unet_in = latents
    if has_mask_channel(unet):
        unet_in = torch.cat([latents, mask_at_latent(cond_fg, latents, n_ctrl, encoders in ("fg", "both"))], dim=1)
    res = None
    if n_ctrl > 0:
        res = control_residuals(cn_fg, cn_bg, fusion, latents[:n_ctrl], t_all[:n_ctrl], ctx_fg, ctx_bg, omega_fg,
                                cond_fg, cond_bg, fg_scale, bg_scale, encoders)
    if res is None:
        return unet(unet_in, t_all, encoder_hidden_states=ctx_full, return_dict=False)[0]
    down, mid = res
    if n_plain:
        pad = lambda r: torch.cat([r, r.new_zeros((n_plain,) + r.shape[1:])])  # noqa: E731
        down, mid = [pad(r) for r in down], pad(mid)
    return unet(unet_in, t_all, encoder_hidden_states=ctx_full, down_block_additional_residuals=down,
                mid_block_additional_residual=mid, return_dict=False)[0]
