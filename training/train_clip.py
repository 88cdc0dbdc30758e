"""Train the domain CLIP on the training split's image-text pairs (open_clip's contrastive loss).

Why: no pretrained CLIP can be downloaded, and a generic one has never seen ultrasound. The
domain CLIP's text tower becomes the `tiny`/`micro` text encoder (its token states feed the
UNet's and ControlNets' cross-attention), and its image tower gives the embeddings of the
metrics. For `sd2` the text encoder is SD2's own (frozen); the domain CLIP is still trained
here (at the `tiny` size) for the metrics.

Many reports share a text, so a batch holds duplicate captions; they are treated as positives
of each other (soft targets over equal texts) instead of as false negatives.

    python -m training.train_clip --data data/ddti-128 --out runs/tiny/stages/clip --preset tiny --max-minutes 2
"""
from __future__ import annotations

import argparse

import tiger  # noqa: F401
import torch
import torch.nn.functional as F

from training.draws import random_hflip
from training.errors import TrainingInputError
from training.stage_cli import add_common_args, stage_main
from training.stage_run import StageRun
from training.tensor_data import load_split


def build_domain_clip(preset: str):
    """The preset's DomainCLIP (tiny/micro), or the default tiny one when the preset's text
    encoder is not a DomainCLIP (sd2)."""
    from tiger import nets
    from tiger.domain_clip import DomainCLIP, build_clip

    p = nets.resolve_preset(preset)
    if p["kind"] == "config":
        model = nets.build_text_encoder(p)
        if isinstance(model, DomainCLIP):
            return model
    return build_clip()


def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor,
                     token_ids: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE with equal captions as shared positives (open_clip's ClipLoss when
    all captions differ)."""
    logits = logit_scale * img.float() @ txt.float().T
    same = (token_ids[:, None, :] == token_ids[None, :, :]).all(-1).float()
    target = same / same.sum(1, keepdim=True)
    return 0.5 * (torch.sum(-target * F.log_softmax(logits, 1), 1).mean()
                  + torch.sum(-target * F.log_softmax(logits.T, 1), 1).mean())


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, batch_size=64, lr=5e-4, max_steps=10**9, max_minutes=3)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    return ap


def train(args: argparse.Namespace) -> dict:
    from tiger.domain_clip import tokenize

    run = StageRun.from_args(args, "clip")
    acc, dev = run.acc, run.device
    data = load_split(args.data, "train", args.split_seed, dev)
    torch.manual_seed(args.seed)
    model = build_domain_clip(args.preset).to(dev).train()
    tokens = tokenize(data.text, model.context_length).to(dev)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": other, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    model, opt = acc.prepare(model, opt)
    resumed = run.resume()
    raw = acc.unwrap_model(model)

    while run.keep_going():
        g = run.rng(0)
        idx = run.batch_indices(len(data), args.batch_size, g)
        (x,) = random_hflip(g, data.images[idx])
        tok = tokens[idx]
        with acc.autocast():
            img, txt, scale = model(x, tok)
            loss = contrastive_loss(img, txt, scale, tok)
        opt.zero_grad(set_to_none=True)
        acc.backward(loss)
        acc.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():  # open_clip clamps the temperature at 100
            raw.clip.logit_scale.clamp_(0, 4.6052)
        run.end_step({"loss": loss.item(), "logit_scale": scale.item()})

    raw.eval()
    info = {"resumed": resumed}
    if acc.is_main_process:
        val = load_split(args.data, "val", args.split_seed, dev)
        info["val_retrieval_top1"] = retrieval_top1(raw, val.images, tokenize(val.text, raw.context_length).to(dev))
        raw.save_pretrained(str(run.model_dir))
    return run.finish(info)


@torch.no_grad()
def retrieval_top1(model, images: torch.Tensor, token_ids: torch.Tensor) -> float:
    """Image -> text top-1 accuracy, a hit being any caption equal to the image's own."""
    img = model.encode_images(images).float()
    txt = model.encode_texts(token_ids).float()
    best = (img @ txt.T).argmax(1)
    hit = (token_ids[best] == token_ids).all(-1).float()
    return round(float(hit.mean()), 4)


def main(argv: list[str] | None = None) -> int:
    return stage_main(build_parser, train, argv)


if __name__ == "__main__":
    raise SystemExit(main())
