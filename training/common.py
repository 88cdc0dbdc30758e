"""Shared pieces of every training stage: budgets, the accelerate set-up, resumable state,
deterministic per-step randomness, in-memory data, EMA, and the loss log (CSV + PNG).

Why these exist rather than a generic trainer: the dataset is small (a few hundred 128 px
images), so it is loaded into tensors once (on the GPU when training there) and batches are
drawn by index, which is far faster than a DataLoader on 2 CPU cores. Every random draw of a
step (batch indices, crops, noise, timesteps, dropout) comes from a generator seeded by
(seed, step), so a run that is stopped and resumed from a checkpoint follows exactly the same
path as an uninterrupted one: resuming gives the same state, which the tests check.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import tiger  # noqa: F401  (offline settings before third-party imports)
import torch

from tiger.device import pick_device, pick_dtype


class TrainingInputError(ValueError):
    """Bad input to a training command (missing folder, empty split, bad budget), for people."""


# --------------------------------------------------------------------------- arguments

def add_common_args(parser: argparse.ArgumentParser, *, batch_size: int, lr: float,
                    max_steps: int = 1000, max_minutes: float = 10.0) -> argparse.ArgumentParser:
    """The arguments every stage shares, so the chain can forward them uniformly."""
    parser.add_argument("--data", required=True, help="canonical dataset folder (metadata.jsonl, images/, ...)")
    parser.add_argument("--out", required=True, help="stage folder: checkpoint/, model/, log.csv, loss.png, done.json")
    parser.add_argument("--preset", default="tiny", help="network preset of tiger.nets (tiny, micro, sd2)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA when present)")
    parser.add_argument("--max-steps", type=int, default=max_steps, help="stop after this many optimiser steps")
    parser.add_argument("--max-minutes", type=float, default=max_minutes, help="stop after this much training time (summed over resumes)")
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (per step)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of tiger.data.split (train/val/test by group)")
    parser.add_argument("--ckpt-minutes", type=float, default=3.0, help="save a resumable checkpoint this often")
    parser.add_argument("--log-every", type=int, default=10, help="write a CSV row every N steps")
    parser.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    parser.add_argument("--pause-after", type=int, default=0,
                        help="stop this run after N steps, unfinished (checkpoint saved; the next run resumes)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                        help="auto: tiger.device.pick_dtype (bf16 autocast only where it is fast)")
    return parser


@dataclass
class Budget:
    """Stop conditions; time is summed over resumed runs so a stage fits one session."""

    max_steps: int
    max_minutes: float

    def __post_init__(self) -> None:
        if self.max_steps < 0:
            raise TrainingInputError(f"--max-steps must be >= 0, got {self.max_steps}")
        if not (self.max_minutes >= 0):
            raise TrainingInputError(f"--max-minutes must be >= 0, got {self.max_minutes}")

    def exhausted(self, step: int, elapsed_s: float) -> bool:
        return step >= self.max_steps or elapsed_s >= self.max_minutes * 60.0


# --------------------------------------------------------------------------- state

@dataclass
class TrainState:
    """Step counter and training time, checkpointed with the models (accelerate custom object)."""

    step: int = 0
    elapsed_s: float = 0.0
    extra: dict = field(default_factory=dict)

    def state_dict(self) -> dict:
        return {"step": self.step, "elapsed_s": self.elapsed_s, "extra": json.dumps(self.extra)}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.elapsed_s = float(state["elapsed_s"])
        self.extra = json.loads(state.get("extra", "{}"))


class EMA:
    """Exponential moving average of a model's trainable weights (with the usual warm-up,
    decay = min(max_decay, 1 - (1 + step)^-power)), so short runs are not frozen at init."""

    def __init__(self, model: torch.nn.Module, max_decay: float = 0.999, power: float = 2 / 3):
        self.max_decay = max_decay
        self.power = power
        self.num_updates = 0
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()
                       if v.dtype.is_floating_point}

    def decay(self) -> float:
        return min(self.max_decay, 1.0 - (1.0 + self.num_updates) ** -self.power)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.num_updates += 1
        d = self.decay()
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].lerp_(v.detach().float(), 1.0 - d)

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        state = model.state_dict()
        for k, v in self.shadow.items():
            state[k].copy_(v.to(state[k].dtype))

    def state_dict(self) -> dict:
        return {"num_updates": self.num_updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.num_updates = int(state["num_updates"])
        for k, v in state["shadow"].items():
            self.shadow[k] = v.to(self.shadow[k].device).float()


# --------------------------------------------------------------------------- accelerate

def make_accelerator(device: str | None, out: Path, precision: str = "auto"):
    """An Accelerator on the requested device, mixed precision as `pick_dtype` says.

    bf16 autocast only where it is fast (CUDA with bf16, AMX CPUs); fp32 elsewhere. One process
    on a CPU; `accelerate launch` gives many GPUs without changing this code.
    """
    dev = pick_device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainingInputError("--device cuda was asked for but no CUDA GPU is visible")
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}.get(precision) or pick_dtype(dev)
    mixed = "bf16" if dtype == torch.bfloat16 else "no"
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # fixed shapes (crops excepted): pick the fastest kernels
        if dev.index is not None and "LOCAL_RANK" not in os.environ:
            torch.cuda.set_device(dev)
    try:
        if os.environ.get("TIGER_NO_ACCELERATE"):
            raise ImportError("TIGER_NO_ACCELERATE is set")
        from accelerate import Accelerator
        from accelerate.utils import ProjectConfiguration
    except ImportError as e:
        import warnings

        from training.single_device import SingleDeviceAccelerator

        warnings.warn(f"accelerate unavailable ({e}): training on one device without it")
        return SingleDeviceAccelerator(dev, mixed)
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        # one process: forget the settings of an earlier stage of this process (the chain and the
        # tests run several stages in one interpreter; accelerate's state is a singleton)
        try:
            from accelerate.state import AcceleratorState

            AcceleratorState._reset_state(True)
        except (ImportError, AttributeError, TypeError):
            pass
    acc = Accelerator(cpu=dev.type == "cpu", mixed_precision=mixed,
                      project_config=ProjectConfiguration(project_dir=str(out)))
    return acc


def step_generator(device: torch.device, seed: int, step: int, stream: int = 0) -> torch.Generator:
    """A generator for one step's random draws; `stream` separates independent draws."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + step * 7919 + stream * 104_729) % (2**63 - 1))
    return g


def batch_indices(n: int, batch_size: int, g: torch.Generator) -> torch.Tensor:
    """Indices of one batch (with replacement across steps, without within a batch when possible)."""
    if n <= 0:
        raise TrainingInputError("the training split is empty")
    if batch_size <= n:
        return torch.randperm(n, generator=g, device=g.device)[:batch_size]
    return torch.randint(0, n, (batch_size,), generator=g, device=g.device)


class StageRun:
    """Owns a stage folder: checkpoint/ (accelerate state), log.csv, loss.png, done.json.

    Usage: `run = StageRun(out, args)`, prepare models/optimisers with `run.acc`, call
    `run.resume()`, then loop `while run.keep_going(): ... run.end_step(losses)`, and finally
    `run.finish(info)`.
    """

    @classmethod
    def from_args(cls, args: argparse.Namespace, stage: str) -> "StageRun":
        return cls(args.out, stage, Budget(args.max_steps, args.max_minutes), args.device, args.seed,
                   args.ckpt_minutes, args.log_every, args.no_resume, args.precision,
                   getattr(args, "pause_after", 0))

    def __init__(self, out: str | Path, stage: str, budget: Budget, device: str | None,
                 seed: int = 0, ckpt_minutes: float = 3.0, log_every: int = 10,
                 no_resume: bool = False, precision: str = "auto", pause_after: int = 0):
        self.out = Path(out)
        self.stage = stage
        self.budget = budget
        self.seed = seed
        self.ckpt_s = ckpt_minutes * 60.0
        self.log_every = max(1, log_every)
        self.pause_after = pause_after
        self._steps_this_run = 0
        self.out.mkdir(parents=True, exist_ok=True)
        if no_resume:
            for name in ("checkpoint", "log.csv", "done.json"):
                p = self.out / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
        self.acc = make_accelerator(device, self.out, precision)
        self.device = self.acc.device
        self.state = TrainState()
        self.acc.register_for_checkpointing(self.state)
        self._t0 = 0.0
        self._last_ckpt = 0.0
        self._pending: list[dict] = []
        self._acc_losses: dict[str, list[float]] = {}
        self.bar = None

    @property
    def checkpoint_dir(self) -> Path:
        return self.out / "checkpoint"

    @property
    def model_dir(self) -> Path:
        return self.out / "model"

    def resume(self) -> bool:
        """Load the checkpoint if there is one (after everything was prepared/registered)."""
        if (self.checkpoint_dir / "train_state.json").exists():
            self.acc.load_state(str(self.checkpoint_dir))
            return True
        return False

    def rng(self, stream: int = 0) -> torch.Generator:
        return step_generator(self.device, self.seed, self.state.step, stream)

    def keep_going(self) -> bool:
        from tqdm.auto import tqdm

        now = time.perf_counter()
        if self.bar is None:
            self._t0 = now
            self._elapsed0 = self.state.elapsed_s
            self._last_ckpt = now
            total = self.budget.max_steps if self.budget.max_steps <= 10**6 else None  # time-limited: no step total
            # a log file (not a terminal) gets one line every 30 s instead of thousands of updates
            self.bar = tqdm(total=total, initial=self.state.step if total is None else min(self.state.step, total), desc=self.stage,
                            disable=not self.acc.is_local_main_process, dynamic_ncols=True,
                            mininterval=0.5 if sys.stderr.isatty() else 30.0)
        self.state.elapsed_s = self._elapsed0 + (now - self._t0)
        if self.pause_after and self._steps_this_run >= self.pause_after:
            return False
        return not self.budget.exhausted(self.state.step, self.state.elapsed_s)

    def end_step(self, losses: dict[str, float]) -> None:
        """Count the step, average losses into the CSV every `log_every` steps, checkpoint on time."""
        self.state.step += 1
        self._steps_this_run += 1
        for k, v in losses.items():
            self._acc_losses.setdefault(k, []).append(float(v))
        self.bar.update(1)
        if self.state.step % self.log_every == 0:
            self._flush_losses()
        if time.perf_counter() - self._last_ckpt >= self.ckpt_s:
            self.save_checkpoint()

    def _flush_losses(self) -> None:
        if not self._acc_losses:
            return
        row = {"step": self.state.step, "elapsed_s": round(self.state.elapsed_s, 2)}
        row.update({k: sum(v) / len(v) for k, v in self._acc_losses.items()})
        self._acc_losses = {}
        self.bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k not in ("step", "elapsed_s")})
        if self.acc.is_main_process:
            append_csv(self.out / "log.csv", row)

    def save_checkpoint(self) -> None:
        self.acc.wait_for_everyone()
        tmp = self.out / "checkpoint.tmp"
        if self.acc.is_main_process and tmp.exists():
            shutil.rmtree(tmp)
        self.acc.save_state(str(tmp))
        if self.acc.is_main_process:
            (tmp / "train_state.json").write_text(json.dumps(self.state.state_dict()))
            if self.checkpoint_dir.exists():
                shutil.rmtree(self.checkpoint_dir)
            tmp.rename(self.checkpoint_dir)
        self.acc.wait_for_everyone()
        self._last_ckpt = time.perf_counter()

    def finish(self, info: dict | None = None) -> dict:
        """Checkpoint, plot, and write done.json (steps, wall clock, device, seeds); `finished`
        is false after a --pause-after stop, so the chain resumes the stage."""
        if self.bar is not None:
            self._flush_losses()
            self.bar.close()
        self.save_checkpoint()
        done = {
            "stage": self.stage,
            "steps": self.state.step,
            "train_seconds": round(self.state.elapsed_s, 1),
            "device": describe_device(self.device),
            "mixed_precision": self.acc.mixed_precision,
            "num_processes": self.acc.num_processes,
            "seed": self.seed,
            "budget": asdict(self.budget),
            "finished": self.budget.exhausted(self.state.step, self.state.elapsed_s),
        }
        done.update(info or {})
        if self.acc.is_main_process:
            plot_losses(self.out / "log.csv", self.out / "loss.png", title=self.stage)
            (self.out / "done.json").write_text(json.dumps(done, indent=2))
        return done


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def stage_is_done(out: str | Path, budget: Budget | None = None) -> bool:
    """True when the stage wrote its model and done.json (and, given a budget, had used it up:
    a larger budget than the finished run had makes the stage resume instead)."""
    p = Path(out) / "done.json"
    if not p.exists() or not (Path(out) / "model").exists():
        return False
    try:
        done = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if not done.get("finished"):
        return False
    return budget is None or budget.exhausted(int(done.get("steps", 0)), float(done.get("train_seconds", 0.0)))


# --------------------------------------------------------------------------- logging

def append_csv(path: Path, row: dict) -> None:
    """Append a row; the header grows if a later row brings new columns (e.g. the GAN losses)."""
    rows: list[dict] = []
    header: list[str] = []
    if path.exists():
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    new_cols = [k for k in row if k not in header]
    if new_cols or not path.exists():
        header += new_cols
        rows.append({k: row.get(k, "") for k in header})
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=header)
            w.writeheader()
            w.writerows(rows)
    else:
        with path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=header).writerow({k: row.get(k, "") for k in header})


def read_csv(path: Path) -> list[dict]:
    if not Path(path).exists():
        return []
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))


def plot_losses(csv_path: Path, png_path: Path, title: str = "") -> Path | None:
    """One panel per logged quantity against step; nothing is written for an empty log."""
    rows = read_csv(csv_path)
    if not rows:
        return None
    try:
        import matplotlib
    except ImportError:  # a bare GPU box without matplotlib: the CSV is still there
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [c for c in rows[0].keys() if c not in ("step", "elapsed_s")]
    n = max(1, len(cols))
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 2.8 * nrows), squeeze=False)
    for ax, col in zip(axes.flat, cols):
        pts = [(int(r["step"]), float(r[col])) for r in rows if r.get(col) not in (None, "")]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1)
        ax.set_title(col, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(cols):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)
    plt.close(fig)
    return png_path


# --------------------------------------------------------------------------- data

@dataclass
class TensorData:
    """A split held in memory: images/masks/sobel as N x 1 x H x W tensors plus the texts."""

    images: torch.Tensor
    masks: torch.Tensor
    sobel: torch.Tensor
    text: list[str]
    text_fg: list[str]
    text_bg: list[str]
    ids: list[str]
    records: list[dict]

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device: torch.device) -> "TensorData":
        return TensorData(self.images.to(device), self.masks.to(device), self.sobel.to(device),
                          self.text, self.text_fg, self.text_bg, self.ids, self.records)


def load_split(data: str | Path, split_name: str = "train", split_seed: int = 0,
               device: torch.device | str = "cpu") -> TensorData:
    """Read one split of a canonical dataset into tensors once (no DataLoader)."""
    from tiger.data import TigerDataset, load_metadata, split

    folder = Path(data)
    if not (folder / "metadata.jsonl").exists():
        raise TrainingInputError(f"{folder} is not a canonical dataset folder (no metadata.jsonl); "
                                 "prepare it first (training.prepare / tiger.importers)")
    records = load_metadata(folder)
    parts = split(records, seed=split_seed)
    if split_name not in parts:
        raise TrainingInputError(f"unknown split {split_name!r}; have {sorted(parts)}")
    recs = parts[split_name]
    if not recs:
        raise TrainingInputError(f"the {split_name} split of {folder} is empty ({len(records)} records in all)")
    ds = TigerDataset(folder, records=recs, augment=False)
    items = [ds[i] for i in range(len(ds))]
    stack = lambda key: torch.stack([torch.as_tensor(it[key]).float() for it in items])  # noqa: E731
    return TensorData(stack("image"), stack("mask"), stack("sobel"),
                      [it["text"] for it in items], [it["text_fg"] for it in items],
                      [it["text_bg"] for it in items], [str(it["id"]) for it in items],
                      recs).to(device)


def random_hflip(g: torch.Generator, *tensors: torch.Tensor) -> list[torch.Tensor]:
    """Flip the same samples left-right in every tensor (ultrasound is not handed left/right)."""
    n = tensors[0].shape[0]
    flip = torch.rand(n, generator=g, device=g.device) < 0.5
    flip = flip.view(n, *([1] * (tensors[0].dim() - 1)))
    return [torch.where(flip, t.flip(-1), t) for t in tensors]


def drop_texts(texts: Sequence[str], p: float, g: torch.Generator) -> list[str]:
    """Replace each text with "" with probability p (classifier-free guidance dropout)."""
    keep = (torch.rand(len(texts), generator=g, device=g.device) >= p).tolist()
    return [t if k else "" for t, k in zip(texts, keep)]


def parse_minutes(spec: str | None) -> dict[str, float]:
    """"clip=2,vae=6" -> {"clip": 2.0, "vae": 6.0}; a clear message on anything else."""
    out: dict[str, float] = {}
    if not spec:
        return out
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise TrainingInputError(f"bad budget {part!r}: write stage=number, e.g. vae=6")
        k, v = part.split("=", 1)
        try:
            out[k.strip()] = float(v)
        except ValueError:
            raise TrainingInputError(f"bad budget {part!r}: {v!r} is not a number") from None
    return out


def write_json(path: str | Path, obj: dict) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, default=str))


def trainable(params: Iterable[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    return [p for p in params if p.requires_grad]


def stage_main(build_parser: Callable[[], argparse.ArgumentParser], train: Callable[[argparse.Namespace], object],
               argv: list[str] | None = None) -> int:
    """The command-line body every stage shares: parse, train, print the result; bad input -> exit 2
    with the message (TrainingInputError, DatasetFormatError, PresetError are ValueErrors)."""
    args = build_parser().parse_args(argv)
    try:
        done = train(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(done)
    return 0
