"""Train the downstream ResNet classifier (benign vs malignant) on real and synthetic images.

The paper's protocol at this scale: a torchvision ResNet trained from scratch (no weights can be
downloaded; resnet18 by default, resnet50 selectable) on grouped splits of a canonical dataset,
in one of four arms that differ only in the training set:
  a  real only
  b  real + classic augmentation (flip, crop, rotation, noise) applied on the fly
  c  real + coarse text-only synthetic images (a manifest folder from training/augment.py)
  d  real + Tiger synthetic images (a manifest folder from training/augment.py)
Everything else (split, seeds, schedule, validation-chosen checkpoint) is identical, so the
arms can be compared pairwise on one test set. Images are loaded into one tensor at start:
the data are a few hundred 128 px images and a DataLoader is slower on 2 CPU cores.

Usage:
  python training/train_classifier.py --data data/ddti --arm d --synthetic runs/aug-tiger \
      --out runs/clf-d --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tiger  # noqa: F401,E402  (offline settings first)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from tqdm import tqdm  # noqa: E402

from tiger.device import pick_device  # noqa: E402
from tiger.metrics.classification import youden_threshold  # noqa: E402
from tiger.metrics.errors import MetricInputError  # noqa: E402

ARMS = {"a": "real only", "b": "real + classic augmentation", "c": "real + coarse text-only synthetic",
        "d": "real + Tiger synthetic"}
LABELS = {"benign": 0, "malignant": 1, 0: 0, 1: 1}


class ClassifierInputError(MetricInputError):
    """Bad input to the classifier (no labelled images, one-class split, missing manifest)."""


@dataclass
class ClassifierConfig:
    arch: str = "resnet18"
    image_size: int = 128
    epochs: int = 15
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    split_seed: int = 0
    device: str | None = None
    extra: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- data

def label_of(value) -> int | None:
    """0 benign, 1 malignant, None for unlabelled (skipped)."""
    if isinstance(value, str):
        value = value.strip().lower()
    return LABELS.get(value)


def _load_pixels(paths: Sequence[Path], size: int) -> torch.Tensor:
    arr = [np.asarray(Image.open(p).convert("L").resize((size, size), Image.BICUBIC)) for p in paths]
    return torch.from_numpy(np.stack(arr)).float().div(127.5).sub(1).unsqueeze(1)


def image_path(folder: Path, row: dict) -> Path:
    """A canonical row's image: `file_name` relative to the folder, else images/<id>.png."""
    for cand in (folder / str(row.get("file_name", "")), folder / "images" / f"{row.get('id')}.png"):
        if cand.is_file():
            return cand
    raise ClassifierInputError(f"image of record {row.get('id')!r} not found in {folder}")


@dataclass
class Split:
    """Tensors of one split: images N x 1 x S x S in [-1, 1], labels N (float 0/1), ids, groups."""

    images: torch.Tensor
    labels: torch.Tensor
    ids: list[str]
    groups: list[str]

    def __len__(self) -> int:
        return len(self.ids)


def _labelled(records: list[dict]) -> list[dict]:
    return [r for r in records if label_of(r.get("label")) is not None]


def load_real_splits(data: str | Path, size: int, split_seed: int = 0) -> dict[str, Split]:
    """Grouped train/val/test splits (tiger.data.split by leakage group), labelled rows only.

    All rows are split first and unlabelled rows dropped afterwards, so the split is exactly the
    one the rest of the project uses (e.g. the background bank takes only training images).
    """
    from tiger.data import load_metadata, split

    folder = Path(data)
    records = load_metadata(folder)
    if not _labelled(records):
        raise ClassifierInputError(f"{folder} holds no rows labelled benign or malignant")
    parts = split(records, seed=split_seed)
    out = {}
    for name in ("train", "val", "test"):
        rows = _labelled(parts.get(name, []))
        if not rows:
            raise ClassifierInputError(f"the {name} split of {folder} has no labelled images (split seed {split_seed})")
        out[name] = Split(_load_pixels([image_path(folder, r) for r in rows], size),
                          torch.tensor([float(label_of(r["label"])) for r in rows]),
                          [str(r["id"]) for r in rows], [str(r.get("group", r["id"])) for r in rows])
    train_groups = set(out["train"].groups)
    for name in ("val", "test"):
        leak = train_groups & set(out[name].groups)
        if leak:
            raise ClassifierInputError(f"split leaks groups {sorted(leak)[:3]} between train and {name}")
    return out


def load_synthetic(folder: str | Path, size: int, limit: int | None = None) -> Split:
    """Labelled images of an augment.py output folder (manifest.jsonl rows: file, label, ...)."""
    folder = Path(folder)
    manifest = folder / "manifest.jsonl"
    if not manifest.is_file():
        raise ClassifierInputError(f"synthetic folder {folder} has no manifest.jsonl (write it with training/augment.py)")
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if label_of(r.get("label")) is not None and (folder / r["file"]).is_file()][:limit]
    if not rows:
        raise ClassifierInputError(f"{manifest} lists no labelled images that exist")
    return Split(_load_pixels([folder / r["file"] for r in rows], size),
                 torch.tensor([float(label_of(r["label"])) for r in rows]),
                 [str(r["file"]) for r in rows], ["synthetic"] * len(rows))


# ----------------------------------------------------------------------------- model

def build_resnet(arch: str = "resnet18") -> torch.nn.Module:
    """A torchvision ResNet from scratch with a 1-channel stem and one logit (malignant)."""
    import torchvision

    if arch not in ("resnet18", "resnet34", "resnet50"):
        raise ClassifierInputError(f"unknown architecture {arch!r}; choose resnet18, resnet34 or resnet50")
    net = getattr(torchvision.models, arch)(weights=None, num_classes=1)
    net.conv1 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return net


def classic_augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Arm (b): random horizontal flip, crop-and-resize (80-100%), rotation (+-10 deg), Gaussian noise."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(-1), x)
    scale = 0.8 + 0.2 * torch.rand(n, generator=gen)
    angle = (torch.rand(n, generator=gen) - 0.5) * (2 * np.pi * 10 / 180)
    shift = (torch.rand(n, 2, generator=gen) - 0.5) * 2 * (1 - scale).unsqueeze(1)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    noise = torch.randn(x.shape, generator=gen) * (0.05 * torch.rand(n, 1, 1, 1, generator=gen))
    return (x + noise).clamp(-1, 1)


@torch.no_grad()
def predict(net: torch.nn.Module, images: torch.Tensor, device: torch.device, batch: int = 64) -> np.ndarray:
    net.eval()
    out = [torch.sigmoid(net(images[i:i + batch].to(device)).float()).cpu().view(-1) for i in range(0, len(images), batch)]
    return torch.cat(out).numpy().astype(np.float64)


def _val_auroc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else -float(np.mean((p - y) ** 2))


def train_one(splits: dict[str, Split], arm: str, seed: int, cfg: ClassifierConfig,
              synthetic: Split | None = None, progress: bool = True) -> dict:
    """Train one arm with one seed; returns test/val probabilities, the val-chosen threshold and history."""
    if arm not in ARMS:
        raise ClassifierInputError(f"unknown arm {arm!r}; choose one of {', '.join(ARMS)}")
    if arm in "cd" and synthetic is None:
        raise ClassifierInputError(f"arm {arm} ({ARMS[arm]}) needs a synthetic image folder")
    device = pick_device(cfg.device)
    train = splits["train"]
    x, y = train.images, train.labels
    if arm in "cd":
        x, y = torch.cat([x, synthetic.images]), torch.cat([y, synthetic.labels])
    if len(torch.unique(y)) < 2:
        raise ClassifierInputError("the training set holds one class only; a classifier cannot be trained")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = build_resnet(cfg.arch).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    pos = float(y.sum())
    pos_weight = torch.tensor([(len(y) - pos) / max(pos, 1.0)], device=device)  # balance the rare class
    steps_per_epoch = max(1, int(np.ceil(len(x) / cfg.batch_size)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
    yv = splits["val"].labels.numpy()
    best, best_state, history = -np.inf, None, []
    bar = tqdm(range(cfg.epochs), desc=f"arm {arm} seed {seed}", disable=not progress, leave=False)
    for epoch in bar:
        net.train()
        order = torch.randperm(len(x), generator=gen)
        losses = []
        for i in range(0, len(x), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            if len(idx) < 2:
                continue  # BatchNorm cannot train on a batch of one
            xb = x[idx]
            if arm == "b":
                xb = classic_augment(xb, gen)
            logits = net(xb.to(device)).view(-1)
            loss = F.binary_cross_entropy_with_logits(logits, y[idx].to(device), pos_weight=pos_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        pv = predict(net, splits["val"].images, device)
        score = _val_auroc(yv, pv)
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else None, "val_score": score})
        bar.set_postfix(loss=history[-1]["loss"], val=round(score, 3))
        if score > best:
            best, best_state = score, {k: v.detach().clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    pv = predict(net, splits["val"].images, device)
    try:
        threshold = youden_threshold(yv, pv)
    except MetricInputError:
        threshold = 0.5  # a one-class validation split: documented fallback, recorded below
    return {"arm": arm, "seed": seed, "test_prob": predict(net, splits["test"].images, device).tolist(),
            "val_prob": pv.tolist(), "threshold": threshold,
            "threshold_source": "youden on validation" if len(np.unique(yv)) == 2 else "0.5 (one-class validation)",
            "n_train_real": len(train), "n_train_synthetic": 0 if arm in "ab" else len(synthetic),
            "history": history, "state": net.state_dict()}


# ----------------------------------------------------------------------------- CLI

def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="canonical dataset folder")
    ap.add_argument("--arm", choices=list(ARMS), default="a")
    ap.add_argument("--synthetic", default=None, help="augment.py output folder (arms c and d)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--arch", default="resnet18", choices=["resnet18", "resnet34", "resnet50"])
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--device", default=None)
    args = ap.parse_args(argv)
    cfg = ClassifierConfig(arch=args.arch, image_size=args.image_size, epochs=args.epochs,
                           batch_size=args.batch_size, lr=args.lr, split_seed=args.split_seed, device=args.device)
    try:
        splits = load_real_splits(args.data, cfg.image_size, cfg.split_seed)
        synth = load_synthetic(args.synthetic, cfg.image_size) if args.arm in "cd" else None
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        from tiger.metrics.classification import binary_report

        summary = []
        for seed in tqdm(args.seeds, desc="seeds"):
            res = train_one(splits, args.arm, seed, cfg, synth)
            torch.save(res.pop("state"), out / f"resnet-{args.arm}-seed{seed}.pt")
            res["test_metrics"] = binary_report(splits["test"].labels.numpy(), res["test_prob"], res["threshold"])
            summary.append(res)
        (out / "result.json").write_text(json.dumps({"config": asdict(cfg), "arm": args.arm, "arm_name": ARMS[args.arm],
                                                     "test_ids": splits["test"].ids, "runs": summary}, indent=2))
        for r in summary:
            m = r["test_metrics"]
            print(f"arm {args.arm} seed {r['seed']}: AUROC {m['auroc']:.3f} {m['auroc_ci95']}, "
                  f"sens {m['sensitivity']:.2f}, spec {m['specificity']:.2f}, Brier {m['brier']:.3f}")
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
