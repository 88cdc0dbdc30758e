"""The run of one training stage: its folder, resumable state, per-process draws, and done.json.

A stage folder holds checkpoint/ (accelerate `save_state` + train_state.json), model/, log.csv,
loss.png and done.json. Under `accelerate launch --num_processes N` every process runs the
stage loop; the decisions that must agree (stop now, checkpoint now, the elapsed time) are
taken by process 0 and broadcast, since N clocks would otherwise stop the loop at different
steps and leave the others waiting in a gradient all-reduce forever.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import argparse

import torch

from training.accelerator import describe_device, make_accelerator
from training.budget import Budget
from training.draws import batch_indices, step_generator
from training.loss_log import append_csv, plot_losses


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


class DrawTally:
    """What one process drew in this run: how many samples, how many distinct, and a digest of
    the sequence, so done.json shows that N processes trained on N different batch streams."""

    def __init__(self) -> None:
        self.draws = 0
        self.seen: set[int] = set()
        self._sha = hashlib.sha256()

    def add(self, idx: torch.Tensor) -> None:
        ids = idx.detach().to("cpu", torch.int64)
        self.draws += ids.numel()
        self.seen.update(ids.tolist())
        self._sha.update(ids.numpy().tobytes())

    def summary(self, rank: int) -> dict:
        return {"rank": rank, "draws": self.draws, "distinct": len(self.seen), "digest": self._sha.hexdigest()[:16]}


class StageRun:
    """Owns a stage folder: checkpoint/ (accelerate state), log.csv, loss.png, done.json.

    Usage: `run = StageRun(out, args)`, prepare models/optimisers with `run.acc`, call
    `run.resume()`, then loop `while run.keep_going(): g = run.rng(0); idx = run.batch_indices(n,
    batch_size, g) ... run.end_step(losses)`, and finally `run.finish(info)`.
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
        self.acc = make_accelerator(device, self.out, precision)
        if no_resume and self.acc.is_main_process:
            for name in ("checkpoint", "log.csv", "done.json"):
                p = self.out / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
        self.out.mkdir(parents=True, exist_ok=True)
        self.acc.wait_for_everyone()
        self.device = self.acc.device
        self.rank = self.acc.process_index
        self.state = TrainState()
        self.acc.register_for_checkpointing(self.state)
        self.tally = DrawTally()
        self._t0 = 0.0
        self._last_ckpt = 0.0
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
        """This step's generator for this process (process r draws its own batch)."""
        return step_generator(self.device, self.seed, self.state.step, stream, rank=self.rank)

    def batch_indices(self, n: int, batch_size: int, g: torch.Generator) -> torch.Tensor:
        """One batch of this process (training/draws.py), counted in done.json's `draws`."""
        idx = batch_indices(n, batch_size, g)
        self.tally.add(idx)
        return idx

    def _from_main(self, *values: float) -> list[float]:
        """Process 0's values on every process (one process: the values themselves)."""
        if self.acc.num_processes == 1:
            return list(values)
        from accelerate.utils import broadcast

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        return broadcast(t, from_process=0).tolist()

    def keep_going(self) -> bool:
        """Whether to run another step; checkpoints first when `--ckpt-minutes` have passed."""
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
        elapsed, ckpt_due = self._from_main(self._elapsed0 + (now - self._t0), now - self._last_ckpt >= self.ckpt_s)
        self.state.elapsed_s = elapsed
        if self.pause_after and self._steps_this_run >= self.pause_after:
            return False
        if self.budget.exhausted(self.state.step, self.state.elapsed_s):
            return False  # finish() checkpoints
        if ckpt_due and self._steps_this_run:
            self.save_checkpoint()
        return True

    def end_step(self, losses: dict[str, float]) -> None:
        """Count the step and average losses into the CSV every `log_every` steps (process 0's)."""
        self.state.step += 1
        self._steps_this_run += 1
        for k, v in losses.items():
            self._acc_losses.setdefault(k, []).append(float(v))
        self.bar.update(1)
        if self.state.step % self.log_every == 0:
            self._flush_losses()

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
        self.acc.wait_for_everyone()
        self.acc.save_state(str(tmp))
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            (tmp / "train_state.json").write_text(json.dumps(self.state.state_dict()))
            if self.checkpoint_dir.exists():
                shutil.rmtree(self.checkpoint_dir)
            tmp.rename(self.checkpoint_dir)
        self.acc.wait_for_everyone()
        self._last_ckpt = time.perf_counter()

    def finish(self, info: dict | None = None) -> dict:
        """Checkpoint, plot, and write done.json (steps, wall clock, device, seeds, each process's
        draws); `finished` is false after a --pause-after stop, so the chain resumes the stage."""
        from accelerate.utils import gather_object

        if self.bar is not None:
            self._flush_losses()
            self.bar.close()
        self.save_checkpoint()
        done = {
            "stage": self.stage,
            "steps": self.state.step,
            "train_seconds": round(self.state.elapsed_s, 3),
            "device": describe_device(self.device),
            "mixed_precision": self.acc.mixed_precision,
            "num_processes": self.acc.num_processes,
            "draws": gather_object([self.tally.summary(self.rank)]),
            "seed": self.seed,
            "budget": asdict(self.budget),
            "finished": self.budget.exhausted(self.state.step, self.state.elapsed_s),
        }
        done.update(info or {})
        if self.acc.is_main_process:
            plot_losses(self.out / "log.csv", self.out / "loss.png", title=self.stage)
            (self.out / "done.json").write_text(json.dumps(done, indent=2))
        self.acc.wait_for_everyone()
        return done


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


def trainable(params: Iterable[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    """The parameters an optimiser gets (frozen ones left out)."""
    return [p for p in params if p.requires_grad]
