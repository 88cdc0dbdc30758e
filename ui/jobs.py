"""Running generations for every page: the shared pipeline, per-session Stop, streaming results.

One module so that Synthesize, Reference and Teach share one concurrency group (the model is
one object in memory; two runs at once would only halve each other's speed on 2 cores) and
one set of Stop flags keyed by browser session.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

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
                 progress: Any = None) -> Iterator[tuple[list[gen.Result], str, Image.Image | None]]:
    """Run a request, yielding (results so far, status text, live preview or None) as they come.

    Why a worker thread: the previews are produced inside the pipeline's step callback, and a
    generator cannot yield from there; the worker runs `gen.run_batch` and posts images,
    previews and the end into a queue that this generator drains (so Gradio streams each one).
    Progress is reported per denoising step with an ETA from the measured step time. When the
    consumer goes away (Gradio cancelled the event) the run is stopped at its next step.
    """
    pipe = load_pipeline(ctx)
    stop = STOP_FLAGS.arm(session)
    results: list[gen.Result] = []
    groups = gen.batch_groups(len(req.seeds))
    group_of = {g[0]: k for k, g in enumerate(groups)}
    total = req.num_inference_steps * len(groups)
    events: queue.Queue = queue.Queue()
    t0 = time.perf_counter()

    def on_step(i: int, step: int, n: int) -> None:
        done = group_of.get(i, 0) * n + step
        eta = (time.perf_counter() - t0) / done * (total - done)
        if progress is not None:
            progress((done, total), desc=f"image {i + 1}/{len(req.seeds)}, step {step}/{n}, ETA {eta:.0f} s",
                     unit="steps")

    def work() -> None:
        try:
            for res in gen.run_batch(pipe, req, gen.new_output_dir(), on_step=on_step, stop=stop,
                                     on_preview=lambda i, step, im: events.put(("preview", (i, step, im)))):
                events.put(("result", res))
            events.put(("end", None))
        except BaseException as exc:  # re-raised in the consumer, where Gradio shows it
            events.put(("error", exc))

    worker = threading.Thread(target=work, name=f"tiger-generate-{session[:8]}", daemon=True)
    preview: Image.Image | None = None
    head = f"Generating {len(req.seeds)} image(s) at {req.num_inference_steps} steps ({req.scheduler})"
    try:
        yield results, head + "...", None
        worker.start()
        while True:
            kind, item = events.get()
            if kind == "end":
                break
            if kind == "error":
                raise item
            if kind == "preview":
                i, step, preview = item
                yield results, (f"{head}: image {i + 1}, preview at step {step}/{req.num_inference_steps}"
                                f" ({len(results)}/{len(req.seeds)} finished)"), preview
                continue
            results.append(item)
            yield results, (f"{len(results)}/{len(req.seeds)} done in {time.perf_counter() - t0:.1f} s "
                            f"(seeds {', '.join(str(r.record['seed']) for r in results)})"), preview
        if stop.is_set():
            yield results, f"Stopped by you after {len(results)} of {len(req.seeds)} image(s).", preview
    finally:
        stop.set()           # a consumer that left (cancel, closed tab) must not leave the model busy
        if worker.is_alive():
            worker.join()
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


