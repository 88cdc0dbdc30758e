"""Prompts -> token states and the per-token omega of the FG text (paper eq. 9)."""
from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import torch

from tiger.domain_clip import DomainCLIP


#: omega = a + b / (1 + exp(b * delta)), paper eq. 9 (a = 0.6, b = 5).
OMEGA_A = 0.6
OMEGA_B = 5.0


def omega_of_delta(delta: torch.Tensor | float) -> torch.Tensor:
    """omega = a + b / (1 + exp(b * delta)) (eq. 9): 3.1 at delta 0, ~0.633 at delta 1."""
    d = torch.as_tensor(delta, dtype=torch.float32)
    return OMEGA_A + OMEGA_B / (1 + torch.exp(OMEGA_B * d))


class _Tok:
    """Uniform view of the two tokenizers: open_clip's BPE (tiny) and transformers' CLIPTokenizer (sd2)."""

    def __init__(self, text_encoder: Any, tokenizer: Any | None):
        if isinstance(text_encoder, DomainCLIP):
            from tiger.domain_clip import tokenizer as oc_tok
            t = oc_tok(text_encoder.context_length)
            self.length = text_encoder.context_length
            self.bos, self.eos, self.pad = t.sot_token_id, t.eot_token_id, 0
            self.encode = t.encode
        else:
            if tokenizer is None:
                raise ValueError("a transformers text encoder needs its tokenizer (components['tokenizer'])")
            # an unset model_max_length is 1e30: the position table is the real limit
            self.length = min(int(min(tokenizer.model_max_length, 10**6)),
                              int(text_encoder.config.max_position_embeddings))
            self.bos, self.eos = tokenizer.bos_token_id, tokenizer.eos_token_id
            self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos
            self.encode = lambda s: tokenizer(s, add_special_tokens=False).input_ids

    def ids(self, pieces: Sequence[str]) -> tuple[list[int], list[int]]:
        """Token ids of the pieces (each tokenised alone, so every token knows its piece) and,
        per token, the index of its piece (-1 for start/end/padding)."""
        ids, owner = [self.bos], [-1]
        for k, piece in enumerate(pieces):
            toks = self.encode(piece) if piece.strip() else []
            ids += toks
            owner += [k] * len(toks)
        ids, owner = ids[: self.length - 1] + [self.eos], owner[: self.length - 1] + [-1]
        pad = self.length - len(ids)
        return ids + [self.pad] * pad, owner + [-1] * pad


def _text_states(text_encoder: Any, ids: torch.Tensor) -> torch.Tensor:
    if isinstance(text_encoder, DomainCLIP):
        return text_encoder.token_states(ids)
    return text_encoder(ids)[0]


def _term_pieces(text: str, reweight: bool) -> list[tuple[str, str]]:
    if not reweight:
        return [(text, "common")]
    from tiger.knowledge import term_classes
    return list(term_classes(text))


def encode_prompts(text_encoder: Any, texts: Sequence[str], *, reweight: bool,
                   tokenizer: Any | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token states (B x L x width) for cross-attention and per-token omega (B x L).

    reweight=True (FG encoder): each text is cut into classed pieces by
    `tiger.knowledge.term_classes`; delta_j = 0 for particular terms (omega 3.1), the token's
    frequency in this batch (occurrences / all term tokens of the batch, paper eq. 10) for joint
    terms, 1 for common terms and everything else (start/end/padding; omega ~0.633).
    reweight=False (BG encoder, coarse UNet): omega = 1 everywhere.
    Pieces are tokenised one by one, so token ids are the same in training and at inference.
    """
    if isinstance(texts, str):
        texts = [texts]
    tok = _Tok(text_encoder, tokenizer)
    all_ids, deltas = [], []
    classed = [_term_pieces(t, reweight) for t in texts]
    rows = []
    for pieces in classed:
        ids, owner = tok.ids([p for p, _ in pieces])
        rows.append((ids, owner, [pieces[o][1] if o >= 0 else "other" for o in owner]))
    counts: Counter = Counter()
    total = 0
    for ids, owner, _cls in rows:
        for i, o in zip(ids, owner):
            if o >= 0:
                counts[i] += 1
                total += 1
    for ids, _owner, cls in rows:
        d = []
        for i, c in zip(ids, cls):
            if c == "particular":
                d.append(0.0)
            elif c == "joint":
                d.append(counts[i] / max(total, 1))
            else:
                d.append(1.0)
        all_ids.append(ids)
        deltas.append(d)
    dev = next(text_encoder.parameters()).device
    ids_t = torch.tensor(all_ids, dtype=torch.long, device=dev)
    states = _text_states(text_encoder, ids_t)
    if reweight:
        omega = omega_of_delta(torch.tensor(deltas)).to(dev)
    else:
        omega = torch.ones(ids_t.shape, device=dev)
    return states, omega.to(states.dtype)
