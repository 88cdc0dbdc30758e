"""Speed of the metrics: 1,000 real vs 1,000 generated 128 px images (goal: all under a minute).

Real = DDTI images (flipped/shifted copies to reach 1,000), generated = a blurred, brightened
variant of other copies. Prints JSON: seconds per metric, the total against the 60 s goal, and
ratios against baselines measured in the same run on this machine:
- SSIM: scikit-image `structural_similarity` in a Python loop (timed on a sample of the pairs,
  scaled to the number of pairs `set_ssim` scores);
- FID: scipy.linalg.sqrtm on the same embeddings instead of the eigen-decomposition;
- matmul GFLOP/s of this machine (tiger.device.matmul_gflops), so runs on different machines
  can be compared.

  .venv/bin/python benchmarks/bench_metrics.py [--n 1000] [--model models/tiger-tiny-ddti]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tiger  # noqa: F401,E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from tqdm import tqdm  # noqa: E402


def image_sets(n: int, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    from scipy.ndimage import gaussian_filter

    from tiger.paths import SHARED_DATA

    files = sorted((SHARED_DATA / "ddti" / "images").glob("*.jpg"))
    if not files:
        raise SystemExit(f"no DDTI images under {SHARED_DATA}")
    base = np.stack([np.asarray(Image.open(f).convert("L").resize((size, size), Image.BICUBIC))
                     for f in tqdm(files, desc="load DDTI")])
    rng = np.random.default_rng(0)

    def variants(k: int) -> np.ndarray:
        idx = rng.integers(0, len(base), k)
        out = base[idx].copy()
        flip = rng.random(k) < 0.5
        out[flip] = out[flip, :, ::-1]
        return np.stack([np.roll(im, tuple(rng.integers(-6, 7, 2)), axis=(0, 1)) for im in out])

    real = variants(n)
    gen = np.clip(gaussian_filter(variants(n).astype(np.float32), (0, 1, 1)) * 0.9 + 15, 0, 255).astype(np.uint8)
    return real, gen


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--model", default=None, help="model folder with the domain CLIP (default: shipped, else random tiny)")
    ap.add_argument("--baseline-pairs", type=int, default=200)
    a = ap.parse_args()

    import scipy.linalg
    from skimage.metrics import structural_similarity

    from tiger.device import matmul_gflops
    from tiger.metrics import evaluate_sets, load_embedder
    from tiger.metrics.fid import fid
    from tiger.metrics.ssim import nearest_real

    real, gen = image_sets(a.n)
    emb = load_embedder(a.model, allow_random=True)
    t = time.perf_counter()
    res = evaluate_sets(real, gen, embedder=emb, timings=True)
    total = time.perf_counter() - t

    # baseline 1: scikit-image SSIM loop over a sample of the pairs set_ssim scores
    idx = nearest_real(real, gen)
    pairs = [(real[j], g) for g, row in zip(gen, idx) for j in row]
    sample = pairs[:a.baseline_pairs]
    t = time.perf_counter()
    for x, y in tqdm(sample, desc="skimage SSIM baseline"):
        structural_similarity(x, y, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    skimage_s = (time.perf_counter() - t) / len(sample) * len(pairs)

    # baseline 2: FID with scipy.linalg.sqrtm on the same embeddings
    er, eg = emb.images(real), emb.images(gen)
    t = time.perf_counter()
    ours_fid = fid(er, eg)
    ours_fid_s = time.perf_counter() - t
    t = time.perf_counter()
    c1, c2 = np.cov(er, rowvar=False), np.cov(eg, rowvar=False)
    ref_fid = float(((er.mean(0) - eg.mean(0)) ** 2).sum() + np.trace(c1 + c2 - 2 * scipy.linalg.sqrtm(c1 @ c2).real))
    sqrtm_s = time.perf_counter() - t

    sec = res["seconds"]
    print(json.dumps({
        "n_real": a.n, "n_generated": a.n, "image_size": 128, "embedder": emb.source,
        "seconds": {k: round(v, 3) for k, v in sec.items()}, "total_seconds": round(total, 2),
        "goal_seconds": 60, "within_goal": total < 60,
        "ssim": {"ours_s": round(sec["ssim"], 3), "skimage_loop_s_estimated": round(skimage_s, 2),
                 "speedup_vs_skimage": round(skimage_s / sec["ssim"], 2), "pairs": len(pairs)},
        "fid": {"ours_s": round(ours_fid_s, 4), "scipy_sqrtm_s": round(sqrtm_s, 4),
                "speedup_vs_sqrtm": round(sqrtm_s / max(ours_fid_s, 1e-9), 2),
                "abs_difference": abs(ours_fid - ref_fid)},
        "machine_matmul_gflops": round(matmul_gflops(), 1),
        "metrics": {k: round(v, 5) for k, v in res["metrics"].items()},
    }, separators=(",", ":")))


if __name__ == "__main__":
    main()
