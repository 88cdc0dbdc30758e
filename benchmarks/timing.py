"""Alternating timed runs: the one way every benchmark here measures, so its ratios hold.

Why: on a 2-core machine shared with training jobs, the speed of the machine drifts by 2-3x
within minutes; timing arm A five times and then arm B five times measures the drift, not the
arms. Here the arms take turns (A B A B ...) after a warm-up of each, and the report gives each
arm's median and spread (min, max, interquartile range) and the ratio of medians, which a single
slow run cannot move much.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Callable, Mapping

MIN_RUNS = 5


def summary(times: list[float]) -> dict:
    """Median, min, max and interquartile range of a list of seconds (4 significant digits)."""
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return {"median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4),
            "max_s": round(max(times), 4), "iqr_s": round(q[2] - q[0], 4), "runs": len(times),
            "all_s": [round(t, 4) for t in times]}


def alternate(arms: Mapping[str, Callable[[], object]], runs: int = MIN_RUNS, warmup: int = 1,
              progress: bool = True) -> dict[str, list[float]]:
    """Run each arm `warmup` times, then `runs` rounds of A, B, ... each timed; seconds per arm."""
    if runs < MIN_RUNS:
        raise ValueError(f"at least {MIN_RUNS} timed runs per arm, got {runs}")
    for fn in arms.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in arms}
    for r in range(runs):
        for name, fn in arms.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
        if progress:
            print(f"  round {r + 1}/{runs}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()),
                  file=sys.stderr)
    return times


def ratio_of_medians(times: Mapping[str, list[float]], num: str, den: str) -> float:
    return round(statistics.median(times[num]) / statistics.median(times[den]), 4)


def emit(result: dict) -> dict:
    """Print the benchmark's result as one JSON line on stdout (what `make bench` collects)."""
    print(json.dumps(result, separators=(",", ":"), default=str), flush=True)
    return result
