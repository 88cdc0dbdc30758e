"""Views of a training image for the diffusion stages: a left-right mirror and a sideways shift.

Why shifts: DDTI nodules sit mostly in the middle of the frame, so a model trained on the
images as they are learns "the nodule is in the middle" at least as well as "the nodule is
where the mask is" (the v4 probe put it in the requested third for 83% of middle placements
and for none at either pole). Shifting image, mask and Sobel map together by the same number
of pixels keeps every pair consistent while moving the nodule along the gland's long axis
(horizontal in DDTI's frames), so the mask becomes the only reliable cue to where it is.
The border that a shift uncovers is filled by reflection (no black band for the model to
learn, and the mask reflects with the image, so a nodule that is mirrored in stays outlined).

A view is an index v into `2 * len(shifts)`: shift `shifts[v // 2]`, then mirrored when v is
odd. Latents of every view are encoded once (training.diffusion.encode_latents), so a view is
exact rather than approximated in latent space; `apply_views` gives the image-space tensors
(masks, Sobel maps) the same view.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from training.errors import TrainingInputError


def parse_shifts(text: str | Sequence[int], width: int | None = None) -> tuple[int, ...]:
    """`"-32,0,32"` -> (-32, 0, 32); 0 always included (the unshifted image stays a view)."""
    try:
        vals = [int(v) for v in (text.split(",") if isinstance(text, str) else text) if str(v).strip() != ""]
    except ValueError as e:
        raise TrainingInputError(f"--shifts takes whole pixel counts separated by commas, e.g. -32,0,32 ({e})") from None
    if width is not None and any(abs(v) >= width for v in vals):
        raise TrainingInputError(f"--shifts must be smaller than the image width ({width} px); got {vals}")
    return tuple(sorted(set(vals) | {0}))


def shift_x(x: torch.Tensor, dx: int) -> torch.Tensor:
    """Move the content of N x C x H x W tensors `dx` pixels to the right (left if negative),
    filling the uncovered columns by reflection."""
    if dx == 0:
        return x
    w = x.shape[-1]
    if dx > 0:
        return F.pad(x, (dx, 0, 0, 0), mode="reflect")[..., :w]
    return F.pad(x, (0, -dx, 0, 0), mode="reflect")[..., -dx:]


def view_of(x: torch.Tensor, v: int, shifts: Sequence[int]) -> torch.Tensor:
    """One view of a whole batch (shift first, then the mirror), as the latents were encoded."""
    y = shift_x(x, shifts[v // 2])
    return y.flip(-1) if v % 2 else y


def apply_views(x: torch.Tensor, views: torch.Tensor, shifts: Sequence[int]) -> torch.Tensor:
    """Give sample i of `x` the view `views[i]` (one call per distinct view, at most 2*len(shifts))."""
    out = torch.empty_like(x)
    for v in views.unique().tolist():
        sel = views == v
        out[sel] = view_of(x[sel], int(v), shifts)
    return out


def draw_views(n: int, g: torch.Generator, n_shifts: int = 1) -> torch.Tensor:
    """A view per sample: mirror with probability 1/2 and a shift drawn uniformly.
    With one shift it draws exactly what the stages drew before shifts existed (a coin per sample),
    so runs without `--shifts` repeat their earlier random path."""
    flip = (torch.rand(n, generator=g, device=g.device) < 0.5).long()
    if n_shifts == 1:
        return flip
    return 2 * torch.randint(0, n_shifts, (n,), generator=g, device=g.device) + flip
