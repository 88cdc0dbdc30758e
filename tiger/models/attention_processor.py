"""`OmegaAttnProcessor`: the FG ControlNet's cross-attention, softmax(omega_j * QK^T / sqrt(d)) V
with a per-key-token omega (paper eqs. 8-10)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from diffusers import ControlNetModel


class OmegaAttnProcessor:
    """Cross-attention with a per-key-token weight: softmax(omega_j * Q K^T / sqrt(d)) V.

    Scaling the logits of key token j by omega_j equals scaling key vector k_j by omega_j
    (q . (omega_j k_j) = omega_j q . k_j), so the weight is applied to the keys and the fused
    `scaled_dot_product_attention` kernel still runs. `omega` (B x L, one value per key token)
    arrives through `cross_attention_kwargs={"omega": omega}`; self-attention ignores it.
    """

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 omega: torch.Tensor | None = None, **_: Any) -> torch.Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        cross = encoder_hidden_states is not None
        batch, seq = (hidden_states if not cross else encoder_hidden_states).shape[:2]
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, seq, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if not cross:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        if getattr(attn, "norm_q", None) is not None:
            query = attn.norm_q(query)
        if getattr(attn, "norm_k", None) is not None:
            key = attn.norm_k(key)
        if cross and omega is not None:
            if omega.shape != (batch, key.shape[2]):
                raise ValueError(f"omega must be (batch, tokens) = {(batch, key.shape[2])}, got {tuple(omega.shape)}")
            key = key * omega.to(key.dtype)[:, None, :, None]
        hidden_states = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def set_omega_processor(controlnet: ControlNetModel) -> None:
    """Install OmegaAttnProcessor on every attention of the (FG) ControlNet.

    Processors are not saved with the weights, so loaders call this again after loading.
    """
    controlnet.set_attn_processor(OmegaAttnProcessor())
