"""A stage under `accelerate launch --num_processes 2` on the CPU trains on two batch streams.

(accelerate 1.15 starts one process for `--cpu --num_processes 2` unless an MPI hostfile is given,
so the two CPU processes come from `--multi_gpu` with the stage's `--device cpu`: gloo, no GPU.)

The bug this guards against: with batches drawn from (seed, step) alone, every process drew the
same batch, so N devices did the work of one, and the DDP-averaged gradient equalled the one-process
gradient exactly. Checked here on the domain-CLIP stage (micro preset, 3 steps, batches of 4):
- each process reports its draws in done.json, and rank r's digest is the digest of
  batch_indices(n, 4, step_generator(cpu, seed, step, rank=r)) recomputed here;
- rank 0 draws what a one-process run draws (one-process runs keep their seeds);
- the two-process model differs from the one-process model (it averaged two batches) and loads.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.servers import free_port
from training import train_clip
from training.draws import batch_indices, step_generator, step_seed
from training.tensor_data import load_split

ROOT = Path(__file__).resolve().parent.parent
STAGE = ["--preset", "micro", "--device", "cpu", "--precision", "fp32", "--max-steps", "3", "--batch-size", "4",
         "--log-every", "1", "--seed", "5"]


def _expected_digest(n: int, rank: int, steps: int = 3, batch: int = 4, seed: int = 5) -> str:
    sha = hashlib.sha256()
    for step in range(steps):
        idx = batch_indices(n, batch, step_generator("cpu", seed, step, 0, rank=rank))
        sha.update(idx.to(torch.int64).numpy().tobytes())
    return sha.hexdigest()[:16]


def test_rank_zero_keeps_the_one_process_seeds():
    """The formula every earlier run used, written out: rank 0 must not move (resumes, records)."""
    for seed, step, stream in [(0, 0, 0), (5, 17, 1), (123, 100_000, 3)]:
        assert step_seed(seed, step, stream) == (seed * 1_000_003 + step * 7919 + stream * 104_729) % (2**63 - 1)
    # torch seeds its CPU generator with the low 32 bits: ranks must differ there, over many steps
    low = {step_seed(0, step, stream, rank) % 2**32 for step in range(20_000) for stream in range(4) for rank in range(16)}
    assert len(low) == 20_000 * 4 * 16
    perms = {tuple(batch_indices(24, 4, step_generator("cpu", 0, 0, 0, rank=r)).tolist()) for r in range(8)}
    assert len(perms) == 8  # equal draws would mean a seed the ranks share


def test_two_processes_draw_different_batches(ddti_small, tmp_path):
    two = tmp_path / "two"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(free_port())]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    res = subprocess.run(launch + ["-m", "training.train_clip", "--data", str(ddti_small), "--out", str(two), *STAGE],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    done = json.loads((two / "done.json").read_text())
    n = len(load_split(ddti_small, "train"))
    assert done["num_processes"] == 2 and done["steps"] == 3 and done["finished"]
    draws = {d["rank"]: d for d in done["draws"]}
    assert sorted(draws) == [0, 1] and all(d["draws"] == 12 for d in draws.values())
    assert draws[0]["digest"] != draws[1]["digest"]
    assert [draws[r]["digest"] for r in (0, 1)] == [_expected_digest(n, 0), _expected_digest(n, 1)]

    one = tmp_path / "one"
    single = train_clip.train(train_clip.build_parser().parse_args(["--data", str(ddti_small), "--out", str(one), *STAGE]))
    assert single["num_processes"] == 1 and single["draws"] == [{**draws[0], "rank": 0}]

    w2, w1 = (load_file(str(next((p / "model").glob("*.safetensors")))) for p in (two, one))
    assert w2.keys() == w1.keys()
    assert any(not torch.equal(w2[k], w1[k]) for k in w1)  # the gradient averaged two different batches

    from tiger.domain_clip import encode_images, load_clip

    emb = encode_images(load_clip(two / "model"), load_split(ddti_small, "val").images[:4])
    assert emb.shape[0] == 4 and torch.isfinite(emb).all()
