"""What a training stage imports, gathered from the modules that hold each concept.

    errors.py       TrainingInputError
    budget.py       Budget, parse_minutes
    accelerator.py  make_accelerator, describe_device (one accelerate setting per process)
    stage_run.py    StageRun, TrainState, stage_is_done, trainable (folder, checkpoints, done.json)
    stage_cli.py    add_common_args, stage_main
    draws.py        step_generator, batch_indices, random_hflip, drop_texts (per seed, step, rank)
    tensor_data.py  TensorData, load_split (a split held in memory)
    ema.py          EMA
    loss_log.py     append_csv, read_csv, plot_losses

This module holds no code of its own: it keeps `from training.common import ...` working for
the stages and for code written before the split.
"""
from __future__ import annotations

from training.accelerator import describe_device, make_accelerator
from training.budget import Budget, parse_minutes
from training.draws import batch_indices, drop_texts, random_hflip, step_generator, step_seed
from training.ema import EMA
from training.errors import TrainingInputError
from training.loss_log import append_csv, plot_losses, read_csv
from training.stage_cli import add_common_args, stage_main
from training.stage_run import StageRun, TrainState, stage_is_done, trainable
from training.tensor_data import TensorData, load_split

__all__ = ["EMA", "Budget", "StageRun", "TensorData", "TrainState", "TrainingInputError", "add_common_args",
           "append_csv", "batch_indices", "describe_device", "drop_texts", "load_split", "make_accelerator",
           "parse_minutes", "plot_losses", "random_hflip", "read_csv", "stage_is_done", "stage_main",
           "step_generator", "step_seed", "trainable"]
