"""Generation speed: TigerPipeline vs diffusers' stock StableDiffusionControlNetPipeline +
MultiControlNetModel over the SAME VAE / UNet / ControlNets, seeds, steps and size.

Why this baseline: it is what a user would pick instead of TigerPipeline. It does less (one
text embedding for both ControlNets, no omega re-weighting, no AFF fusion); the goal is a
ratio of medians TigerPipeline / stock <= 0.9. Both run in this process on the same sampler and
steps (the app's default, `tiger.samplers`), alternating for >= 5 timed runs after a warm-up
(benchmarks/timing.py); the FLOP count of one call of each comes from torch's FlopCounterMode and
is set against this machine's measured fp32 matmul throughput (tiger.device.matmul_gflops),
measured in the same run.

Prints one JSON line. The shipped model by default (random weights of --preset when it is missing).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tiger  # noqa: E402,F401  (offline settings first)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from tiger import nets  # noqa: E402
from tiger.models.mask_channel import with_input_channels  # noqa: E402
from tiger.device import count_flops, matmul_gflops, pick_device  # noqa: E402
from tiger.pipeline import TigerPipeline  # noqa: E402
from tiger import samplers  # noqa: E402
from tiger.paths import DEFAULT_MODEL  # noqa: E402
from benchmarks.timing import alternate, emit, ratio_of_medians, summary  # noqa: E402

CHIPS = {"malignancy": "malignant", "subtype": "medullary", "composition": "solid", "echogenicity": "hypoechoic",
         "location": "middle", "size": "middle", "plane": "transverse"}


def reset_peak() -> None:
    """Reset the process's peak RSS (Linux: writing 5 to clear_refs) or CUDA's peak counter."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def conditions(size: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A nodule mask and a Sobel-like map (from a real DDTI image when the data is here)."""
    from tiger.conditions import default_mask, sobel_map
    from tiger.paths import SHARED_DATA
    from PIL import Image
    imgs = sorted((SHARED_DATA / "ddti" / "images").glob("*.jpg"))
    if imgs:
        grey = np.asarray(Image.open(imgs[0]).convert("L").resize((size, size)))
    else:
        grey = (np.random.default_rng(0).random((size, size)) * 255).astype(np.uint8)
    return default_mask((size, size), "middle"), sobel_map(grey)


def stock_pipeline(pipe: TigerPipeline):
    from diffusers import StableDiffusionControlNetPipeline
    from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel
    stock = StableDiffusionControlNetPipeline(
        vae=pipe.vae, text_encoder=None, tokenizer=None, unet=with_input_channels(pipe.unet, pipe.unet.config.out_channels),
        controlnet=MultiControlNetModel([pipe.controlnet_fg, pipe.controlnet_bg]), scheduler=pipe.scheduler,
        safety_checker=None, feature_extractor=None, image_encoder=None, requires_safety_checker=False)
    stock.set_progress_bar_config(disable=True)
    return stock  # the stock pipeline feeds latents only: a mask-channel UNet goes in without its mask column


def run_tiger(pipe, mask, sob, args):
    return pipe(chips=CHIPS, mask=mask, sobel=sob, num_inference_steps=args.steps, num_images=args.images,
                seed=args.seed, guidance_scale=args.guidance, scheduler=args.sampler).images


def run_stock(stock, pipe, mask, sob, args):
    """The stock pipeline: one prompt embedding (full text) for both ControlNets, as MultiControlNet allows."""
    from tiger import knowledge
    text = knowledge.full_prompt(CHIPS)
    states, _ = nets.encode_prompts(pipe.text_encoder, ["", text], reweight=False, tokenizer=pipe.tokenizer)
    n, S = args.images, pipe.image_size
    m = torch.from_numpy(mask > 127).float()[None, None].expand(n, 1, S, S)
    s = torch.from_numpy(sob).float().div(255)[None, None].expand(n, 1, S, S)
    gens = [torch.Generator("cpu").manual_seed(args.seed + i) for i in range(n)]
    out = stock(prompt_embeds=states[1:2].expand(n, -1, -1), negative_prompt_embeds=states[0:1].expand(n, -1, -1),
                image=[m, s], height=S, width=S, num_inference_steps=args.steps, guidance_scale=args.guidance,
                generator=gens, output_type="np", num_images_per_prompt=1)
    return out.images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL if (DEFAULT_MODEL / "model_index.json").exists()
                    else None, help="a model folder (default: the shipped model, else random --preset weights)")
    ap.add_argument("--preset", default="tiny", help="tiny | micro (random weights)")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--steps", type=int, default=samplers.DEFAULT_STEPS)
    ap.add_argument("--sampler", default=samplers.DEFAULT_SAMPLER, choices=list(samplers.SAMPLERS))
    ap.add_argument("--runs", type=int, default=5, help="timed runs per arm (alternating), at least 5")
    ap.add_argument("--guidance", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    dev = pick_device()
    if args.model:
        pipe = TigerPipeline.from_pretrained(args.model, device=dev)
    else:
        pipe = TigerPipeline(**nets.build_components(args.preset, seed=0)).to(dev)
    pipe.set_progress_bar_config(disable=True)
    threads = pipe.warm_up()     # the app's own thread choice for this machine
    pipe.scheduler = samplers.build(args.sampler, pipe.base_scheduler_config)   # the stock arm's sampler
    stock = stock_pipeline(pipe)
    mask, sob = conditions(pipe.image_size, args.images)

    runners = {"tiger": lambda: run_tiger(pipe, mask, sob, args), "stock": lambda: run_stock(stock, pipe, mask, sob, args)}
    peaks = {}

    def peaked(k, fn):
        def run():
            reset_peak()
            fn()
            peaks[k] = max(peaks.get(k, 0.0), peak_mb())
        return run

    with torch.no_grad():
        times = alternate({k: peaked(k, fn) for k, fn in runners.items()}, runs=args.runs)
        flops = {k: count_flops(fn) for k, fn in runners.items()}
    gflops_machine = matmul_gflops()
    med = {k: float(np.median(v)) for k, v in times.items()}
    ratio = ratio_of_medians(times, "tiger", "stock")
    share = {k: round(flops[k] / med[k] / 1e9 / gflops_machine, 4) for k in flops}
    emit({
        "benchmark": "generate", "device": str(dev), "model": str(args.model) if args.model else f"random-{args.preset}",
        "image_size": pipe.image_size, "images": args.images, "steps": args.steps, "sampler": args.sampler,
        "guidance_scale": args.guidance, "threads": threads,
        "tiger": summary(times["tiger"]), "stock": summary(times["stock"]),
        "tiger_s_per_image": round(med["tiger"] / args.images, 4), "stock_s_per_image": round(med["stock"] / args.images, 4),
        "ratio_tiger_over_stock": ratio,
        "peak_mb": peaks, "peak_memory_kind": "cuda allocated" if dev.type == "cuda" else "process peak RSS",
        "gflop_per_call": {k: round(v / 1e9, 3) for k, v in flops.items()},
        "achieved_gflops": {k: round(flops[k] / med[k] / 1e9, 3) for k in flops},
        "machine_matmul_gflops": round(gflops_machine, 2),
        "share_of_matmul_peak": share,
        "goal": "ratio_tiger_over_stock <= 0.9; share_of_matmul_peak >= 0.4",
        "meets_goal": bool(ratio <= 0.9), "meets_share_goal": bool(share["tiger"] >= 0.4),
    })


if __name__ == "__main__":
    main()
