"""All set metrics in one call, and the JSON/Markdown report that says how they were made.

A report is only useful if it can be read later without the code: it records the embedder,
the Inception-Score classifier, image counts, the size used, how many colour images were
converted, and the near-copy threshold next to the numbers.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from tiger.metrics.clip_score import clip_scores
from tiger.metrics.cmmd import cmmd
from tiger.metrics.errors import MetricInputError
from tiger.metrics.fid import fid, kid
from tiger.metrics.gradient import gradient_distance, set_gradient_similarity
from tiger.metrics.images import ImageSet, ImageSource, load_image_set
from tiger.metrics.inception_score import zero_shot_inception_score
from tiger.metrics.phash import phash_report
from tiger.metrics.prdc import prdc
from tiger.metrics.ssim import set_ssim

#: direction of each headline number, printed in the Markdown table
DIRECTIONS = {
    "ssim": "higher", "cmmd": "lower", "gs": "lower", "gs_liu": "higher", "density": "higher",
    "coverage": "higher", "precision": "higher", "recall": "higher", "fid": "lower", "kid": "lower",
    "inception_score": "higher", "phash_nearest": "context", "near_copy_share": "lower",
    "phash_within": "higher", "clip_score": "higher",
}


def _load(src: "ImageSource | ImageSet", size: int | None, name: str) -> ImageSet:
    return src if isinstance(src, ImageSet) else load_image_set(src, size=size, name=name)


def evaluate_sets(real: "ImageSource | ImageSet", generated: "ImageSource | ImageSet", embedder=None,
                  reference: "ImageSource | ImageSet | None" = None, texts: Sequence[str] | None = None,
                  size: int | None = 128, k: int = 5, timings: bool = False) -> dict:
    """Every metric of real vs generated.

    `reference` is the training set for the memorisation check (defaults to `real`); `texts`
    (one per generated image) enables the CLIP score; `embedder` defaults to the shipped domain
    CLIP (`tiger.metrics.embeddings.load_embedder()`).
    """
    if embedder is None:
        from tiger.metrics.embeddings import load_embedder

        embedder = load_embedder()
    r = _load(real, size, "real set")
    g = _load(generated, size, "generated set")
    ref = r if reference is None else _load(reference, size, "reference set")
    times: dict[str, float] = {}

    def timed(name, fn, *args, **kw):
        t = time.perf_counter()
        out = fn(*args, **kw)
        times[name] = time.perf_counter() - t
        return out

    er = timed("embed_real", embedder.images, r.pixels)
    eg = timed("embed_generated", embedder.images, g.pixels)
    m: dict[str, float] = {}
    m["ssim"] = timed("ssim", set_ssim, r.pixels, g.pixels)
    m["cmmd"] = timed("cmmd", cmmd, er, eg)
    m["gs"] = timed("gs", gradient_distance, r.pixels, g.pixels)
    m["gs_liu"] = timed("gs_liu", set_gradient_similarity, r.pixels, g.pixels)
    k = min(k, len(r) - 1, len(g) - 1)  # small sets: fewer neighbours (recorded in the report)
    if k < 1:
        raise MetricInputError("density/coverage need at least 2 real and 2 generated images")
    m.update(timed("prdc", prdc, er, eg, k=k))
    m["fid"] = timed("fid", fid, er, eg)
    m["kid"], m["kid_std"] = timed("kid", kid, er, eg)
    m["inception_score"], m["inception_score_std"], is_desc = timed("inception_score", zero_shot_inception_score, eg, embedder)
    m.update(timed("phash", phash_report, g.pixels, ref.pixels))
    if texts is not None:
        if len(texts) != len(g):
            raise MetricInputError(f"CLIP score needs one text per generated image: {len(g)} images, {len(texts)} texts")
        m["clip_score"] = timed("clip_score", lambda: float(clip_scores(eg, embedder.texts(list(texts))).mean()))
    bad = [key for key, v in m.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise MetricInputError(f"metrics {bad} are not finite for these inputs; check the image sets")
    out = {
        "metrics": m,
        "embedder": embedder.source,
        "inception_score_classifier": is_desc,
        "n_real": len(r), "n_generated": len(g), "n_reference": len(ref),
        "image_size": list(r.pixels.shape[1:]),
        "converted_to_grey": {"real": r.converted_to_grey, "generated": g.converted_to_grey},
        "density_coverage_k": k,
    }
    if timings:
        out["seconds"] = times
    return out


def to_markdown(result: dict, title: str = "Image-set metrics") -> str:
    """A human-readable table of `evaluate_sets` output, with what the numbers were made with."""
    lines = [f"# {title}", "",
             f"- real images: {result['n_real']}, generated: {result['n_generated']}, "
             f"reference (memorisation): {result['n_reference']}, size {result['image_size']}",
             f"- embeddings: {result['embedder']}",
             f"- Inception Score classifier: {result['inception_score_classifier']}",
             f"- density/coverage k = {result['density_coverage_k']}", "",
             "| metric | value | better |", "|---|---|---|"]
    for key, v in result["metrics"].items():
        lines.append(f"| {key} | {v:.4g} | {DIRECTIONS.get(key, '')} |")
    return "\n".join(lines) + "\n"


def write_report(result: dict, folder: str | Path, name: str = "metrics", title: str = "Image-set metrics") -> Path:
    """Write `<name>.json` and `<name>.md` into `folder`; returns the JSON path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=lambda o: o.tolist() if isinstance(o, np.ndarray) else str(o)))
    (folder / f"{name}.md").write_text(to_markdown(result, title))
    return path
