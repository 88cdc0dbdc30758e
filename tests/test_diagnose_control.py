"""training.diagnose_control tells a FG encoder that cannot see its mask from one that can
(on the random micro model and real DDTI validation images)."""
from __future__ import annotations

import torch

from tiger import nets
from training.diagnose_control import diagnose_components


def test_a_deaf_mask_encoder_is_reported_as_deaf(micro_model_dir, ddti_small):
    c = nets.load_components(micro_model_dir)
    emb = c["controlnet_fg"].controlnet_cond_embedding
    torch.manual_seed(0)
    with torch.no_grad():
        emb.conv_out.weight.normal_(0, 0.05)   # the mask reaches the ControlNet
        for zc in [*c["controlnet_fg"].controlnet_down_blocks, c["controlnet_fg"].controlnet_mid_block]:
            zc.weight.normal_(0, 0.5)           # and its residuals reach the UNet
    hearing = diagnose_components(c, ddti_small, n=4)
    with torch.no_grad():
        emb.conv_in.weight.zero_()              # the embedding is now a constant: the mask is lost
    deaf = diagnose_components(c, ddti_small, n=4)
    assert hearing["embedding"]["fg (mask)"]["change_over_zero_condition"] > 0.01
    assert deaf["embedding"]["fg (mask)"]["change_over_zero_condition"] == 0.0
    for t, row in deaf["v_error"].items():
        assert row["true mask"] == row["zero mask"] == row["shifted mask"], t
    assert any(row["true mask"] != row["shifted mask"] for row in hearing["v_error"].values())
