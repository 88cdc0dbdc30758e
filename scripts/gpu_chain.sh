#!/usr/bin/env bash
# Runs the training chain on a borrowed GPU machine (the device tool): installs the carried
# wheels, trains with per-stage minutes ($1), and packs the finished stage models (no optimiser
# checkpoints) plus logs into $OUT in parts small enough to come back.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -m training.train_chain --data data/ddti-128 --out runs/tiny --preset tiny --device cuda \
  --minutes "$1" --ckpt-minutes 2 --log-every 20 2>&1 | grep -v "it/s\]$" | tail -n 150
rc=${PIPESTATUS[0]}
tar cf - runs/tiny runs/tiny-work/*/model runs/tiny-work/*/done.json runs/tiny-work/*/*.csv runs/tiny-work/*/*.png runs/tiny-work/*/*.json 2>/dev/null \
  | split -b 15M - "$OUT/run.tar.part-"
ls -la "$OUT"; exit $rc
