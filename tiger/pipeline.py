"""TigerPipeline: text- and condition-guided synthesis of thyroid ultrasound images.

A diffusers `DiffusionPipeline` subclass so diffusers users feel at home (`register_modules`,
`progress_bar`, `callback_on_step_end`), but loading and saving go through
`tiger.nets.load_components/save_components`: the folder holds parts diffusers does not know
(AFF fusion, domain CLIP, background bank) and must never trigger a download.

One denoising step = one batched call of `tiger.nets.fused_forward` (the same function the
fine stage trains through): [unconditional, conditional] halves for classifier-free guidance,
plus the no-control conditional rows when control guidance beta != 1 (paper eq. 13), all in one
UNet pass. Text embeddings are computed once per call and cached by their text, so repeated
clicks with the same chips skip the text encoder.

Samplers: DDIM (the model's own scheduler) or diffusers' multistep solvers (`tiger.samplers`),
chosen per call (`scheduler="dpm++2m"`) or swapped in as in diffusers; the record names the one
used, and `replay` rebuilds it. The step callback also receives `pred_x0` (the predicted clean
latent) so a UI can show a live preview (`preview_image`).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput
from PIL import Image

from tiger import nets, samplers
from tiger.pipeline_inputs import (LIMITS, PipelineInputError, check_float, check_int, check_mask, load_grey,
                                  record_to_kwargs, seed_list)
from tiger.pngmeta import array_to_b64png
from tiger.preview import LatentPreviewer, predicted_clean

#: 2: "num_inference_steps" (as the call spells it) replaced "steps"; version-1 records still replay
RECORD_VERSION = 2
TEXT_CACHE_SIZE = 64


@dataclass
class TigerOutput(BaseOutput):
    """Generated images (PIL "L") and, per image, the full parameter record (see `__call__`).

    `cancelled` is True when a callback stopped the run; images and records are then empty.
    """

    images: list = field(default_factory=list)
    records: list = field(default_factory=list)
    cancelled: bool = False


# --------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------

class TigerPipeline(DiffusionPipeline):
    """VAE + domain-CLIP text encoder + base UNet + FG/BG ControlNets fused by AFF, DDIM sampling."""

    model_cpu_offload_seq = "text_encoder->controlnet_fg->controlnet_bg->unet->vae"

    def __init__(self, vae, text_encoder, unet, controlnet_fg, controlnet_bg, fusion, scheduler,
                 tokenizer=None, background_bank=None, model_id: str | None = None,
                 image_size: int | None = None, clip=None, control_guidance: float | None = None,
                 control_guidance_until: float | None = None):
        super().__init__()
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                              controlnet_fg=controlnet_fg, controlnet_bg=controlnet_bg, fusion=fusion,
                              scheduler=scheduler)
        self.background_bank = background_bank
        self.model_id = model_id or "unsaved"
        self.image_size = int(image_size or nets.image_size_of(unet, vae))
        #: default control guidance beta (model_index "tiger.control_guidance"; 1 = plain ControlNet)
        self.control_guidance = float(control_guidance if control_guidance is not None else 1.0)
        #: default share of the steps, from the first, that take beta (model_index
        #: "tiger.control_guidance_until"; 1 = every step)
        self.control_guidance_until = float(control_guidance_until if control_guidance_until is not None else 1.0)
        self.clip = clip
        self._interrupt = False
        #: the model folder's scheduler config: every sampler is built on it (betas, v-prediction)
        self.base_scheduler_config = dict(scheduler.config)
        self.previewer = LatentPreviewer()
        self._text_cache: OrderedDict = OrderedDict()

    # ---- folders --------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device | None = None, **_: Any) -> "TigerPipeline":
        """Load a local model folder (never downloads). Missing/corrupt parts raise ModelFolderError."""
        comps = nets.load_components(folder)
        pipe = cls(**comps)
        if device is not None:
            pipe.to(device)
        if pipe.device.type == "cpu":
            pipe.channels_last()
        return pipe

    def channels_last(self) -> "TigerPipeline":
        """Convolution weights in channels-last layout: oneDNN then skips a reorder per conv, which
        measured 16% faster per batch-4 call on this 2-core CPU (3.94 -> 3.31 s, 8 steps). Images
        match the NCHW layout to within 1 grey level (rounding), and are bit-exact run to run."""
        for m in (self.unet, self.controlnet_fg, self.controlnet_bg, self.vae, self.fusion):
            if m is not None:
                m.to(memory_format=torch.channels_last)
        return self

    def save_pretrained(self, folder: str | Path, fp16: bool = False, **_: Any) -> Path:
        """Write the model folder (fp32 by default, so a reload gives bit-identical images)."""
        comps = dict(vae=self.vae, text_encoder=self.text_encoder, tokenizer=self.tokenizer, unet=self.unet,
                     controlnet_fg=self.controlnet_fg, controlnet_bg=self.controlnet_bg, fusion=self.fusion,
                     scheduler=samplers.build("ddim", self.base_scheduler_config)
                     if type(self.scheduler).__name__ != "DDIMScheduler" else self.scheduler, clip=self.clip, background_bank=self.background_bank,
                     model_id=self.model_id, image_size=self.image_size, control_guidance=self.control_guidance,
                     control_guidance_until=self.control_guidance_until)
        return nets.save_components(comps, folder, fp16=fp16)

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    # ---- pieces of a call -----------------------------------------------------------------
    def _texts(self, chips, text_fg, text_bg) -> tuple[dict, str, str, str, bool, bool]:
        """(chips, FG text, BG text, full text, FG overridden, BG overridden). A given text equal to
        the one the chips build is no override (the UI shows and sends the built texts)."""
        from tiger import knowledge
        c = knowledge.validate_chips(chips) if chips else {}
        fg, bg = knowledge.build_prompts(c)
        fg_over = text_fg is not None and str(text_fg) != fg
        bg_over = text_bg is not None and str(text_bg) != bg
        fg, bg = (str(text_fg) if fg_over else fg), (str(text_bg) if bg_over else bg)
        return c, fg, bg, f"{fg}. {bg}", fg_over, bg_over

    def _background(self, background_id, sobel, chips, seed, need: bool):
        """(sobel uint8, gland extent or None, background id or None) for one image."""
        from tiger.conditions import estimate_gland_extent
        S = self.image_size
        if sobel is not None:
            sob = load_grey(sobel, S, "Sobel map")
            return sob, estimate_gland_extent(sob), None
        if self.background_bank is None or len(self.background_bank) == 0:
            if need:
                raise PipelineInputError("this model has no background bank: pass a Sobel map (sobel=...), a "
                                         "reference image, or use encoders='fg'")
            return np.zeros((S, S), np.uint8), None, None
        bid = background_id if background_id is not None else self.background_bank.pick(chips.get("plane"), seed)
        try:
            sob, gland = self.background_bank.get(bid, size=S)
        except ValueError as e:
            raise PipelineInputError(str(e)) from e
        return sob, gland, str(bid)

    def _placed_mask(self, chips: dict, gland, seed: int) -> np.ndarray:
        """Diversify mode without a drawn mask: the Synthesize canvas's default ellipse, sized by the
        size chip as a fraction of the gland (the canvas's unit, so both paths agree) and placed
        by the location chip at a seeded point of that third."""
        from tiger.conditions import default_mask, place_mask
        S = self.image_size
        size = chips.get("size") or "middle"
        m = default_mask((S, S), size if gland is None else "middle")  # "middle": the canvas's template
        if chips.get("aspect") == "taller-than-wide":
            m = np.ascontiguousarray(m.T)
        if gland is None:
            return m
        return place_mask(m, gland, location=chips.get("location"), size=size,
                          extension=chips.get("margin") == "extrathyroidal extension",
                          rng=np.random.default_rng(seed))

    def _text_states(self, text: str, reweight: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """[uncond, cond] states (and omega) of one text, cached by (encoder, text, reweight)."""
        key = (id(self.text_encoder), text, reweight)
        hit = self._text_cache.get(key)
        if hit is not None:
            self._text_cache.move_to_end(key)
            return hit
        out = nets.encode_prompts(self.text_encoder, ["", text], reweight=reweight, tokenizer=self.tokenizer)
        self._text_cache[key] = out
        while len(self._text_cache) > TEXT_CACHE_SIZE:
            self._text_cache.popitem(last=False)
        return out

    def _sampler(self, scheduler: str | None, scheduler_config: dict | None) -> Any:
        """A fresh scheduler for one call: the named sampler, or a copy of `self.scheduler`."""
        try:
            if scheduler is None:
                if scheduler_config:
                    return type(self.scheduler).from_config({**self.scheduler.config, **scheduler_config})
                return samplers.copy(self.scheduler)
            return samplers.build(scheduler, self.base_scheduler_config, scheduler_config)
        except samplers.SamplerError as e:
            raise PipelineInputError(str(e)) from e

    def preview_image(self, latent: torch.Tensor) -> Image.Image:
        """A cheap greyscale picture of one (C, h, w) latent: the fitted linear map, or a full
        decode while no fit exists yet (that decode provides the fit)."""
        if not self.previewer.fitted:
            return self._decode(latent[None])[0]
        return self.previewer.image(latent, self.image_size)

    @torch.no_grad()
    def _encode_image(self, grey: np.ndarray) -> torch.Tensor:
        x = torch.tensor(grey).float().div(127.5).sub(1.0)[None, None]
        x = x.repeat(1, self.vae.config.in_channels, 1, 1).to(self.device, self.vae.dtype)
        lat = self.vae.encode(x).latent_dist.mean
        return lat * self.vae.config.scaling_factor

    @torch.no_grad()
    def _decode(self, latents: torch.Tensor) -> list[Image.Image]:
        x = self.vae.decode(latents / self.vae.config.scaling_factor, return_dict=False)[0]
        x = x.float().clamp(-1, 1).mean(1)  # greyscale (SD2's VAE decodes 3 channels)
        self.previewer.update(latents, x)
        arr = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        return [Image.fromarray(a, mode="L") for a in arr]

    # ---- the call -------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, chips: dict | None = None, text_fg: str | None = None, text_bg: str | None = None,
                 mask: Any = None, sobel: Any = None, background_id: str | None = None,
                 encoders: str = "both", num_inference_steps: int = 25, guidance_scale: float = 4.0,
                 fg_scale: float = 1.0, bg_scale: float = 1.0, beta: float | None = None,
                 beta_until: float | None = None,
                 seed: int | Sequence[int] = 0, num_images: int = 1, reference_image: Any = None,
                 strength: float = 1.0, eta: float = 0.0,
                 callback_on_step_end: Callable[["TigerPipeline", int, Any, dict], dict | None] | None = None,
                 scheduler: str | None = None, scheduler_config: dict | None = None,
                 ) -> TigerOutput:
        """Generate `num_images` greyscale images.

        Args:
            chips: feature chips {group: value} (tiger.knowledge); validated (unknown or conflicting
                chips raise knowledge.ChipError) and turned into the FG/BG texts.
            text_fg / text_bg: override the texts built from the chips (Reference mode with edited text).
            mask: nodule mask (HxW, image size, white nodule); None in Diversify mode places an
                ellipse of the `size` chip at the `location` chip within the background's gland.
                Wrong size, empty or whole-image masks raise PipelineInputError.
            sobel: a BG condition (Sobel map) to use instead of a bank background.
            background_id: bank background to use; None picks one by seed (of the `plane` chip).
            encoders: "both" (FG+BG ControlNets fused by AFF), "fg", "bg", or "none" (base UNet only).
            num_inference_steps: sampler steps, 1..1000.
            guidance_scale: classifier-free guidance (<= 1 disables the unconditional half).
            fg_scale / bg_scale: ControlNet conditioning scales, 0..5.
            beta: control guidance (eq. 13): eps = eps_sd + beta (eps_fused - eps_sd); 1 costs
                nothing extra, other values add the no-control rows to the same UNet batch. None
                takes the model's `control_guidance` (the value its control evaluation chose).
            beta_until: share of the steps, from the first, that take beta (0..1); later steps use
                beta 1 and skip the no-control rows. The early, noisy steps lay out where the nodule
                is; the late ones draw speckle, where guidance pushed off the images' manifold
                (guidance in a limited interval). None takes the model's `control_guidance_until`.
            seed: an int (image i gets seed + i) or one seed per image; the per-image seed fixes
                its noise and (Diversify) its background pick and mask placement.
            num_images: 1..64.
            reference_image: Reference mode: a real image (PIL, array, path or bytes); its Sobel
                map is the BG condition and `mask` (required) its nodule mask.
            strength: Reference mode img2img strength in (0, 1]: 1 starts from noise, smaller keeps
                more of the reference. Ignored in Diversify mode.
            eta: DDIM eta (0 = deterministic DDIM); ignored by the multistep solvers.
            callback_on_step_end: `fn(pipe, step, t, {"latents": ..., "pred_x0": ...}) -> dict | None`
                after each step (`pred_x0`: the predicted clean latents, for `preview_image`). Returning {"latents": x} replaces the latents; returning {"stop": True} cancels the
                run before the next step (output.cancelled is True, no images).
            scheduler: a sampler name of `tiger.samplers.SAMPLERS` ("ddim", "dpm++2m", "unipc"),
                built on the model's scheduler config; None uses `self.scheduler` (swappable as in
                diffusers). scheduler_config: config entries to override (e.g. {"solver_order": 3}).

        Returns:
            TigerOutput(images, records): each record holds everything needed to reproduce its
            image (see `record_to_kwargs`); `tiger.pngmeta.write_png` embeds it in the PNG.
        """
        S = self.image_size
        steps = check_int("num_inference_steps", num_inference_steps, *LIMITS["num_inference_steps"])
        n = check_int("num_images", num_images, *LIMITS["num_images"])
        g_scale = check_float("guidance_scale", guidance_scale, *LIMITS["guidance_scale"])
        fg_s = check_float("fg_scale", fg_scale, *LIMITS["fg_scale"])
        bg_s = check_float("bg_scale", bg_scale, *LIMITS["bg_scale"])
        beta = check_float("beta", self.control_guidance if beta is None else beta, *LIMITS["beta"])
        beta_until = check_float("beta_until", self.control_guidance_until if beta_until is None else beta_until,
                                 *LIMITS["beta_until"])
        eta = check_float("eta", eta, *LIMITS["eta"])
        if encoders not in nets.ENCODERS:
            raise PipelineInputError(f"encoders must be one of {', '.join(nets.ENCODERS)}, got {encoders!r}")
        seeds = seed_list(seed, n)
        chips_v, t_fg, t_bg, t_full, fg_over, bg_over = self._texts(chips, text_fg, text_bg)
        mode = "reference" if reference_image is not None else "diversify"
        strength = check_float("strength", strength, *LIMITS["strength"]) if mode == "reference" else 1.0
        if mode == "reference" and strength <= 0:
            raise PipelineInputError("strength must be above 0 (0 would return the reference unchanged)")
        user_mask = check_mask(mask, S) if mask is not None else None
        need_bg = encoders in ("bg", "both")
        sched = self._sampler(scheduler, scheduler_config)
        sched_name, sched_diff = samplers.describe(sched, self.base_scheduler_config)

        # conditions per image
        ref = None
        masks, sobels, bg_ids, user_sobel = [], [], [], None
        if mode == "reference":
            ref = load_grey(reference_image, S, "reference image")
            if user_mask is None:
                raise PipelineInputError("Reference mode needs the nodule mask of the reference image (mask=...)")
            from tiger.conditions import sobel_map
            ref_sobel = load_grey(sobel, S, "Sobel map") if sobel is not None else sobel_map(ref)
            masks, sobels, bg_ids = [user_mask] * n, [ref_sobel] * n, [None] * n
        else:
            if sobel is not None:
                user_sobel = load_grey(sobel, S, "Sobel map")
            for s in seeds:
                sob, gland, bid = self._background(background_id, user_sobel, chips_v, s, need_bg)
                sobels.append(sob)
                bg_ids.append(bid)
                masks.append(user_mask if user_mask is not None else self._placed_mask(chips_v, gland, s))

        dev, dtype = self.device, self.unet.dtype
        # text states: once per call, [uncond, cond]
        full_s, _ = self._text_states(t_full, reweight=False)
        fg_s_, fg_om = self._text_states(t_fg, reweight=True)
        bg_s_, _ = self._text_states(t_bg, reweight=False)
        do_cfg = g_scale > 1.0
        plain = encoders != "none" and beta != 1.0 and beta_until > 0
        halves = [0, 1] if do_cfg else [1]

        def rows(x: torch.Tensor) -> torch.Tensor:  # [uncond x n, cond x n]
            return torch.cat([x[h:h + 1].expand(n, *x.shape[1:]) for h in halves]).to(dev, dtype)

        ctx_full = rows(full_s)
        ctx_full_plain = (torch.cat([ctx_full, full_s[1:2].expand(n, *full_s.shape[1:]).to(dev, dtype)])
                          if plain else ctx_full)
        ctx_fg, om_fg, ctx_bg = rows(fg_s_), rows(fg_om), rows(bg_s_)
        m_t = torch.from_numpy(np.stack(masks) > 127).float()[:, None]
        s_t = torch.from_numpy(np.stack(sobels)).float().div(255.0)[:, None]
        cond_fg = m_t.repeat(len(halves), 1, 1, 1).to(dev, dtype)
        cond_bg = s_t.repeat(len(halves), 1, 1, 1).to(dev, dtype)

        # noise and timesteps
        sched.set_timesteps(steps, device=dev)
        timesteps = sched.timesteps
        h = S // nets.vae_factor(self.vae)
        C = self.unet.config.out_channels  # latent channels (a mask-channel UNet takes one more in)
        noise = torch.cat([torch.randn((1, C, h, h), generator=torch.Generator("cpu").manual_seed(s)) for s in seeds])
        noise = noise.to(dev, dtype)
        if mode == "reference" and strength < 1.0:
            keep = max(1, min(int(round(steps * strength)), steps))
            timesteps = timesteps[steps - keep:]
            if hasattr(sched, "set_begin_index"):
                sched.set_begin_index(steps - keep)
            x0 = self._encode_image(ref).expand(n, -1, -1, -1)
            latents = sched.add_noise(x0, noise, timesteps[:1].repeat(n))
        else:
            latents = noise * sched.init_noise_sigma
        is_ddim = sched_name == "ddim"
        beta_steps = math.ceil(beta_until * len(timesteps) - 1e-9) if plain else 0
        gens = [torch.Generator("cpu").manual_seed(s + 7919) for s in seeds] if eta > 0 and is_ddim else None
        step_kw = {"eta": eta} if is_ddim else {}

        self._interrupt = False
        cancelled = False
        with self.progress_bar(total=len(timesteps)) as bar:
            for i, t in enumerate(timesteps):
                if self._interrupt:
                    cancelled = True
                    break
                lat_in = sched.scale_model_input(latents, t)
                guided = i < beta_steps
                batch = torch.cat([lat_in] * (len(halves) + (1 if guided else 0)))
                out = nets.fused_forward(self.unet, self.controlnet_fg, self.controlnet_bg, self.fusion, batch, t,
                                         ctx_full_plain if guided else ctx_full, ctx_fg, ctx_bg, om_fg, cond_fg,
                                         cond_bg, fg_s, bg_s, encoders, n_plain=n if guided else 0)
                parts = list(out.split(n))
                cond = parts[len(halves) - 1]
                if guided:
                    cond = parts[-1] + beta * (cond - parts[-1])
                pred = parts[0] + g_scale * (cond - parts[0]) if do_cfg else cond
                x_t = latents
                if gens is None:
                    latents = sched.step(pred, t, latents, return_dict=False, **step_kw)[0]
                else:
                    latents = torch.cat([sched.step(pred[k:k + 1], t, latents[k:k + 1], eta=eta, generator=gens[k],
                                                    return_dict=False)[0] for k in range(n)])
                if callback_on_step_end is not None:
                    res = callback_on_step_end(self, i, t, {"latents": latents,
                                                            "pred_x0": predicted_clean(sched, x_t, pred, t)}) or {}
                    if res.get("latents") is not None:
                        latents = res["latents"]
                    if res.get("stop"):
                        self._interrupt = True
                bar.update()
        if cancelled or self._interrupt:
            self._interrupt = False
            return TigerOutput(images=[], records=[], cancelled=True)
        images = self._decode(latents)

        ref_b64 = array_to_b64png(ref) if ref is not None else None
        sob_b64 = array_to_b64png(user_sobel) if user_sobel is not None else None
        records = []
        for k in range(n):
            records.append(dict(
                version=RECORD_VERSION, model_id=self.model_id, image_size=S, mode=mode,
                chips=chips_v, text_fg=t_fg, text_bg=t_bg, text_full=t_full,
                text_fg_override=fg_over, text_bg_override=bg_over,
                seed=seeds[k], batch_seeds=seeds, batch_index=k, num_inference_steps=steps, guidance_scale=g_scale, fg_scale=fg_s, bg_scale=bg_s,
                beta=beta, beta_until=beta_until if plain else 1.0, eta=eta, encoders=encoders, strength=strength,
                scheduler=sched_name, scheduler_config=sched_diff,
                background_id=bg_ids[k], sobel=sob_b64, mask=array_to_b64png(masks[k]),
                mask_drawn=user_mask is not None, reference_image=ref_b64,
            ))
        return TigerOutput(images=images, records=records)

    def warm_up(self, steps: int = 1) -> dict:
        """Run once at load so the first click pays no lazy initialisation, and pick this
        machine's fastest generation thread count on that same call (`tiger.device.tune_threads`)."""
        from tiger.device import tune_threads
        has_bank = self.background_bank is not None and len(self.background_bank) > 0
        kw = dict(encoders="both" if has_bank else "fg", num_inference_steps=steps, seed=0,
                  scheduler="ddim")
        self(**kw)
        return tune_threads(lambda: self(**kw))

    def replay(self, record: dict) -> TigerOutput:
        """Re-run one record (from `TigerOutput.records` or `pngmeta.read_record`) bit-exactly.

        CPU kernels round differently for different batch sizes (a pixel may differ by 1 grey
        level), so the record's whole batch is re-run and its image picked out.
        """
        out = self(**record_to_kwargs(record, exact=True))
        if out.cancelled:
            return out
        k = int(record.get("batch_index", 0)) if len(out.images) > 1 else 0
        return TigerOutput(images=[out.images[k]], records=[out.records[k]])


__all__ = ["TigerPipeline", "TigerOutput", "PipelineInputError", "record_to_kwargs"]
