"""Training views (training/views.py): a sideways shift moves image, mask and Sobel map together,
latents are encoded per view exactly, and without shifts the stages draw what they drew before.

How each could fail: a shift that moved the mask but not the image (or by a different amount)
would teach the model a nodule beside its outline; a latent view encoded in another order
(mirror before shift) would not match the mask's view; a changed coin draw would change every
earlier run's random path.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from training.diffusion import encode_latents
from training.errors import TrainingInputError
from training.tensor_data import load_split
from training.views import apply_views, draw_views, parse_shifts, shift_x, view_of


def test_shift_moves_nodule_and_outline_together(ddti_small):
    d = load_split(ddti_small, "train")
    has = [i for i in range(len(d)) if d.masks[i].sum() > 0][:4]
    img, mask = d.images[has], d.masks[has]
    for dx in (-32, 17, 40):
        si, sm = shift_x(img, dx), shift_x(mask, dx)
        assert si.shape == img.shape and sm.shape == mask.shape
        for k in range(len(has)):
            xs0 = torch.nonzero(mask[k, 0] > 0.5)[:, 1].float()
            xs1 = torch.nonzero(sm[k, 0] > 0.5)[:, 1].float()
            # the outline moves by dx (reflection can add a mirrored part only at the far edge)
            inside = (xs0 + dx >= 0) & (xs0 + dx < img.shape[-1])
            assert set((xs0[inside] + dx).long().tolist()) <= set(xs1.long().tolist())
        # the pixels under the moved outline are the pixels that were under the old one
        w = img.shape[-1]
        lo, hi = max(0, dx), min(w, w + dx)
        assert torch.equal(si[..., lo:hi], img[..., lo - dx:hi - dx])
        assert torch.equal(sm[..., lo:hi], mask[..., lo - dx:hi - dx])
        # the uncovered band is filled by reflection, not left black
        band = si[..., :dx] if dx > 0 else si[..., dx:]
        assert torch.equal(band, (img[..., 1:dx + 1].flip(-1) if dx > 0 else img[..., dx - 1:-1].flip(-1)))


def test_latents_of_every_view_match_the_view_of_the_images(ddti_small):
    from tiger import nets

    torch.manual_seed(0)
    vae = nets.build_vae("micro").eval()
    x = load_split(ddti_small, "train").images[:3]
    shifts = (-16, 0, 24)
    mean, std = encode_latents(vae, x, shifts=shifts)
    assert mean.shape[0] == 6 and std.shape == mean.shape
    with torch.no_grad():
        for v in range(6):
            want = vae.encode(view_of(x, v, shifts)).latent_dist.mean
            assert torch.allclose(mean[v], want, atol=1e-5), v
        # without shifts: view 0 is the image, view 1 its mirror (the layout the stages always had)
        m0, _ = encode_latents(vae, x)
        assert m0.shape[0] == 2
        assert torch.allclose(m0[1], vae.encode(x.flip(-1)).latent_dist.mean, atol=1e-5)
    # apply_views gives each sample its own view
    views = torch.tensor([5, 2, 1])
    got = apply_views(x, views, shifts)
    for i, v in enumerate(views.tolist()):
        assert torch.equal(got[i], view_of(x[i:i + 1], v, shifts)[0])


def test_views_without_shifts_are_the_old_coin_and_shifts_are_drawn_uniformly():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(draw_views(64, g1), (torch.rand(64, generator=g2) < 0.5).long())
    v = draw_views(7000, torch.Generator().manual_seed(1), n_shifts=7)
    counts = np.bincount(v.numpy(), minlength=14)
    assert counts.min() > 350 and v.max() == 13  # every (shift, mirror) pair about 1/14 of the time


def test_bad_shifts_are_explained():
    assert parse_shifts("-40,20") == (-40, 0, 20)
    assert parse_shifts("0") == (0,)
    with pytest.raises(TrainingInputError, match="whole pixel counts"):
        parse_shifts("left")
    with pytest.raises(TrainingInputError, match="smaller than the image width"):
        parse_shifts("200", width=128)


def test_nodule_positions_count_every_outlined_nodule_once(ddti_small):
    from training.nodule_positions import nodule_positions

    out = nodule_positions(str(ddti_small))
    d = load_split(ddti_small, "train")
    assert out["nodules"] == sum(int(d.masks[i].sum() > 0) for i in range(len(d))) > 0
    assert sum(out["thirds"].values()) == out["nodules"]
    q = out["centroid_x_over_width_q05_q25_q50_q75_q95"]
    assert q == sorted(q) and 0.0 <= q[0] <= q[-1] <= 1.0
