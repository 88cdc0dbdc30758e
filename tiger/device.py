"""Device and precision chosen at run time.

bf16 is a trap on CPUs without AVX512-BF16/AMX: a bf16 matmul there ran 150x slower than fp32,
so the CPU defaults to fp32 and bf16 is used only where it was measured to be fast.
"""
from __future__ import annotations

import functools
import os
import time

import torch


def pick_device(prefer: str | None = None) -> torch.device:
    """`prefer` ("cpu", "cuda", "cuda:1") wins; else CUDA when present, else CPU."""
    if prefer:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.lru_cache(maxsize=None)
def cpu_bf16_is_fast() -> bool:
    """True when a bf16 matmul on this CPU is at least as fast as fp32 (AMX / AVX512-BF16)."""
    cap = torch.backends.cpu.get_cpu_capability()
    if "AVX512" not in cap.upper():
        return False
    a = torch.randn(512, 512)

    def _time(dtype: torch.dtype) -> float:
        x = a.to(dtype)
        x @ x
        t = time.perf_counter()
        for _ in range(5):
            x @ x
        return time.perf_counter() - t

    # bf16 must be clearly faster (AMX / AVX512-BF16), not a tie within timing noise
    return _time(torch.bfloat16) < 0.8 * _time(torch.float32)


def pick_dtype(device: torch.device | str, mixed: bool = True) -> torch.dtype:
    """Precision for autocast: bf16 on CUDA with bf16 support or a fast-bf16 CPU, else fp32."""
    device = torch.device(device)
    if not mixed:
        return torch.float32
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if device.type == "cpu" and cpu_bf16_is_fast():
        return torch.bfloat16
    return torch.float32


@functools.lru_cache(maxsize=None)
def matmul_gflops(n: int = 1024, repeats: int = 5) -> float:
    """Measured fp32 matmul throughput of this machine (GFLOP/s), for benchmark ratios."""
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    dt = time.perf_counter() - t
    return 2 * n**3 * repeats / dt / 1e9


def count_flops(fn) -> float:
    """FLOPs of one call of `fn` (torch's FlopCounterMode), for benchmark throughput shares."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return float(fc.get_total_flops())


def cpu_count() -> int:
    """Cores this process may use (the affinity mask, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def tune_threads(fn, candidates: tuple[int, ...] | None = None, repeats: int = 1) -> dict:
    """Set torch's intra-op thread count to the fastest for `fn` on this machine, now.

    Why measured, not assumed: on 2 cores shared with a training job, one thread ran a
    denoising step ~1.5x faster than two (the OpenMP team spin-waits for a busy core), while an
    idle machine prefers all cores. `TIGER_THREADS` overrides the measurement. Returns
    {"threads": chosen, "seconds": {count: best time}}.
    """
    if os.environ.get("TIGER_THREADS"):
        n = max(1, int(os.environ["TIGER_THREADS"]))
        torch.set_num_threads(n)
        return {"threads": n, "seconds": {}, "source": "TIGER_THREADS"}
    if torch.cuda.is_available():
        return {"threads": torch.get_num_threads(), "seconds": {}, "source": "cuda"}
    cands = candidates or tuple(sorted({1, cpu_count()}))
    best: dict[int, float] = {}
    for n in cands:
        torch.set_num_threads(n)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        best[n] = min(times)
    chosen = min(best, key=best.get)
    torch.set_num_threads(chosen)
    return {"threads": chosen, "seconds": {k: round(v, 4) for k, v in best.items()}, "source": "measured"}
