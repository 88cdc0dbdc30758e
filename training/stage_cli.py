"""The command line every training stage shares: its arguments and its main().

One set of arguments lets the chain (training/train_chain.py) forward budgets, seeds and
devices to every stage uniformly.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable


def add_common_args(parser: argparse.ArgumentParser, *, batch_size: int, lr: float,
                    max_steps: int = 1000, max_minutes: float = 10.0) -> argparse.ArgumentParser:
    """The arguments every stage shares, so the chain can forward them uniformly."""
    parser.add_argument("--data", required=True, help="canonical dataset folder (metadata.jsonl, images/, ...)")
    parser.add_argument("--out", required=True, help="stage folder: checkpoint/, model/, log.csv, loss.png, done.json")
    parser.add_argument("--preset", default="tiny", help="network preset of tiger.nets (tiny, micro, sd2)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA when present)")
    parser.add_argument("--max-steps", type=int, default=max_steps, help="stop after this many optimiser steps")
    parser.add_argument("--max-minutes", type=float, default=max_minutes, help="stop after this much training time (summed over resumes)")
    parser.add_argument("--batch-size", type=int, default=batch_size,
                        help="per process: under `accelerate launch --num_processes N` the effective batch is N times this")
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (per step and process)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of tiger.data.split (train/val/test by group)")
    parser.add_argument("--ckpt-minutes", type=float, default=3.0, help="save a resumable checkpoint this often")
    parser.add_argument("--log-every", type=int, default=10, help="write a CSV row every N steps")
    parser.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    parser.add_argument("--pause-after", type=int, default=0,
                        help="stop this run after N steps, unfinished (checkpoint saved; the next run resumes)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                        help="auto: tiger.device.pick_dtype (bf16 autocast only where it is fast)")
    return parser


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
