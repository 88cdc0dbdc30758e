"""UI latency at the default settings: first preview, first image and whole batch of 4.

Starts the real app (uvicorn, 127.0.0.1) on the shipped model (models/tiger-tiny-ddti, or
--model); when that folder is missing it falls back to the random micro model of the tests
and says so in the JSON. Two parts, each alternating its arms for >= 5 timed runs after a
warm-up (benchmarks/timing.py), reported as medians with their spread:

- direct (no UI, in a worker thread as the server runs it): one image; a batch of 4 as four
  one-image calls, as one batched call, and as the app runs it (image 1 alone, then the other 3
  batched); `batched_over_sequential` says whether batching pays on this machine;
- UI: a batch of 4 through gradio_client, alternating with the direct one-image run: time from
  the click to the first live preview, to the first image and to the whole batch.

Targets (issue 14): first image <= 2.0 s, first preview <= 0.5 s, batch <= 2.5x the first image.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tiger  # noqa: E402,F401  (offline settings first)
from benchmarks.timing import alternate, emit, ratio_of_medians, summary  # noqa: E402
from tiger import samplers  # noqa: E402
from tiger.paths import DEFAULT_MODEL  # noqa: E402

PTC = ["papillary", "solid", "hypoechoic", "heterogeneous", "microcalcification", "taller-than-wide",
       "irregular", "lobulated/irregular", "none", "unspecified", "transverse"]


def _model(arg: str | None) -> tuple[Path, str]:
    if arg:
        return Path(arg), "given"
    if (DEFAULT_MODEL / "model_index.json").exists():
        return DEFAULT_MODEL, "shipped"
    from tests.fixtures_server import micro_model

    return micro_model(), "random micro (shipped model missing)"


def in_worker(fn):
    """Run fn in a fresh thread, as the server does (a loaded machine's OpenMP team in the main
    thread measured 10-40x slower, which would flatter the UI)."""
    def run():
        t = threading.Thread(target=fn)
        t.start()
        t.join()
    return run


def ui_run(client, gen_args: list, marks: list[dict]) -> None:
    """One click through the API; records seconds to first preview, first image and the end."""
    t0 = time.perf_counter()
    job = client.submit(*gen_args, api_name="/generate")
    first_preview = first_image = None
    while not job.done():
        outs = job.outputs()
        if outs:
            gallery, _status, _zip, preview = outs[-1]
            now = time.perf_counter() - t0
            if first_preview is None and preview:
                first_preview = now
            if first_image is None and gallery:
                first_image = now
        time.sleep(0.01)
    job.result()
    total = time.perf_counter() - t0
    marks.append({"first_preview": first_preview if first_preview is not None else total,
                  "first_image": first_image if first_image is not None else total, "batch": total})


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=None)
    ap.add_argument("--steps", type=int, default=samplers.DEFAULT_STEPS)
    ap.add_argument("--sampler", default=samplers.DEFAULT_SAMPLER, choices=list(samplers.SAMPLERS))
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    from gradio_client import Client

    from tests.fixtures_server import start_app
    from ui.context import AppContext

    model_dir, kind = _model(args.model)
    ctx = AppContext(model_dir=model_dir)
    pipe = ctx.pipeline()
    bg = pipe.background_bank.ids()[0] if pipe.background_bank is not None else None
    kw = dict(chips={"subtype": "papillary"}, background_id=bg, num_inference_steps=args.steps,
              scheduler=args.sampler)
    n = args.batch
    direct = alternate({
        "one_image": in_worker(lambda: pipe(**kw, seed=0)),
        "batch_sequential": in_worker(lambda: [pipe(**kw, seed=s) for s in range(n)]),
        "batch_one_call": in_worker(lambda: pipe(**kw, seed=list(range(n)), num_images=n)),
        "batch_first_then_rest": in_worker(lambda: (pipe(**kw, seed=0),
                                                    pipe(**kw, seed=list(range(1, n)), num_images=n - 1))),
    }, runs=args.runs)

    running, server, thread = start_app(model_dir, Path(tempfile.mkdtemp(prefix="tiger-bench-")))
    try:
        client = Client(running.url, verbose=False)
        gen_args = [*PTC, "middle", "", "", 0, False, n, args.steps, 3.0, 1.0, 1.0, "both", args.sampler]
        marks: list[dict] = []
        ui = alternate({"ui_batch": lambda: ui_run(client, gen_args, marks),
                        "direct_one_image": in_worker(lambda: pipe(**kw, seed=0))}, runs=args.runs)
        marks = marks[1:]   # the warm-up click
    finally:
        server.should_exit = True
        thread.join(timeout=5)
    med = {k: round(statistics.median(m[k] for m in marks), 4) for k in ("first_preview", "first_image", "batch")}
    result = {
        "benchmark": "ui_latency", "model": kind, "model_dir": str(model_dir), "steps": args.steps,
        "sampler": args.sampler, "batch": n, "threads": ctx.threads,
        "direct": {k: summary(v) for k, v in direct.items()},
        "batched_over_sequential": ratio_of_medians(direct, "batch_one_call", "batch_sequential"),
        "first_then_rest_over_sequential": ratio_of_medians(direct, "batch_first_then_rest", "batch_sequential"),
        "ui_first_preview": summary([m["first_preview"] for m in marks]),
        "ui_first_image": summary([m["first_image"] for m in marks]),
        "ui_batch_total": summary([m["batch"] for m in marks]),
        "direct_one_image_alternating": summary(ui["direct_one_image"]),
        "first_image_over_direct": round(med["first_image"] / statistics.median(ui["direct_one_image"]), 4),
        "batch_over_first_image": round(med["batch"] / med["first_image"], 4),
        "goals": {"ui_first_image_s<=2.0": med["first_image"] <= 2.0, "ui_first_preview_s<=0.5": med["first_preview"] <= 0.5,
                  "batch<=2.5x_first": med["batch"] / med["first_image"] <= 2.5},
    }
    return emit(result)


if __name__ == "__main__":
    main()
