"""Running generations for every page: the shared pipeline, per-session Stop, streaming results.

One module so that Synthesize, Reference and Teach share one concurrency group (the model is
one object in memory; two runs at once would only halve each other's speed on 2 cores) and
one set of Stop flags keyed by browser session.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ui import backgrounds as bgs
from ui import generate as gen
from ui.context import AppContext

STOP_FLAGS = gen.StopFlags()
GENERATE_QUEUE = "tiger-generate"   # one concurrency group: all pages share the one model


def require_model(ctx: AppContext) -> None:
    """Raise ModelMissing (naming the folder and the fix) before any other check of a run."""
    present, text = bgs.model_status(ctx.model_dir)
    if not present:
        raise bgs.ModelMissing(text.replace("**", "").replace("`", ""))


def load_pipeline(ctx: AppContext) -> Any:
    """The shared pipeline, or a ModelMissing message naming the folder."""
    require_model(ctx)
    try:
        return ctx.pipeline()
    except (FileNotFoundError, ValueError) as exc:
        raise bgs.ModelMissing(f"The model at {ctx.model_dir} cannot be loaded: {exc}") from exc


def stream_batch(ctx: AppContext, req: gen.GenerationRequest, session: str,
                 progress: Any = None) -> Any:
    """Run a request, yielding (results so far, status text) after each image.

    Progress is reported per denoising step with an ETA from the measured step time.
    """
    pipe = load_pipeline(ctx)
    stop = STOP_FLAGS.arm(session)
    results: list[gen.Result] = []
    total = req.steps * len(req.seeds)
    t0 = time.perf_counter()

    def on_step(i: int, step: int, n: int) -> None:
        done = i * n + step
        eta = (time.perf_counter() - t0) / done * (total - done)
        if progress is not None:
            progress((done, total), desc=f"image {i + 1}/{len(req.seeds)}, step {step}/{n}, ETA {eta:.0f} s",
                     unit="steps")

    try:
        yield results, f"Generating {len(req.seeds)} image(s) at {req.steps} steps..."
        for res in gen.run_batch(pipe, req, gen.new_output_dir(), on_step=on_step, stop=stop):
            results.append(res)
            yield results, (f"{len(results)}/{len(req.seeds)} done in {time.perf_counter() - t0:.1f} s "
                            f"(seeds {', '.join(str(r.record['seed']) for r in results)})")
        if stop.is_set():
            yield results, f"Stopped by you after {len(results)} of {len(req.seeds)} image(s)."
    finally:
        STOP_FLAGS.release(session)


def stop(session: str) -> str:
    """Ask the run of this browser session (only) to stop at its next denoising step."""
    return ("Stopping after the current step..." if STOP_FLAGS.stop(session)
            else "Nothing is running for you right now.")


def gallery_value(results: list[gen.Result]) -> list[tuple[str, str]]:
    return [(str(r.path), r.caption()) for r in results]


def results_state(results: list[gen.Result]) -> list[dict[str, Any]]:
    return [{"path": str(r.path), "record": r.record} for r in results]


def zip_batch(results: list[dict[str, Any]]) -> str:
    res = [gen.Result(Path(r["path"]), r["record"]) for r in results or []]
    out = gen.new_output_dir() / "tiger_batch.zip"
    return str(gen.zip_results(res, out))


