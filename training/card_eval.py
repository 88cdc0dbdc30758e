"""The model card's evaluation of a trained Tiger model against the test split it never saw:
every number of `eval.json` (see `training.model_card` for what is measured and how to run it)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tiger import knowledge
from tiger.data import load_metadata, read_grey, record_chips, split
from tiger.device import pick_device
from training.card_realism import nearest_neighbour_distance, real_vs_synthetic_accuracy
from training.card_samples import (chip_fidelity, generate_for_records, placement_grid, reference_ssim,
                                   sample_grids)


def evaluate(model: Path, data: Path, out: Path, n: int, steps: int, seed: int, split_seed: int,
             device: str | None, control_seeds: int = 3, control_chip_seeds: int = 4) -> dict:
    from tiger.metrics.embeddings import load_embedder
    from tiger.metrics.report import evaluate_sets
    from tiger.pipeline import TigerPipeline
    from tiger.segment import default_segmenter
    from training import eval_control

    t0 = time.time()
    dev = pick_device(device)
    pipe = TigerPipeline.from_pretrained(model, device=dev)
    pipe.set_progress_bar_config(disable=True)
    embedder = load_embedder(model, device=str(dev))
    records = load_metadata(data)
    parts = split(records, seed=split_seed)
    rng = np.random.default_rng(seed)
    test = [parts["test"][i] for i in rng.permutation(len(parts["test"]))[:n]]
    size = pipe.image_size
    real_test = np.stack([read_grey(data / r["file_name"], size) for r in test])
    train_px = np.stack([read_grey(data / r["file_name"], size) for r in parts["train"]])

    gen_coarse = generate_for_records(pipe, test, data, "none", steps, seed, "(a) coarse text-only")
    gen_tiger = generate_for_records(pipe, test, data, "both", steps, seed, "(b) Tiger FG+BG")
    texts = [knowledge.full_prompt(record_chips(r)) for r in test]
    m_coarse = evaluate_sets(real_test, gen_coarse, embedder=embedder, reference=train_px, texts=texts, size=None)
    m_tiger = evaluate_sets(real_test, gen_tiger, embedder=embedder, reference=train_px, texts=texts, size=None)
    ref = reference_ssim(pipe, test[: min(len(test), 32)], data, steps, strength=0.6, seed=seed)
    judge = real_vs_synthetic_accuracy(real_test, gen_tiger, seed=seed, device=str(dev))
    nn_gen = nearest_neighbour_distance(gen_tiger, train_px)
    nn_real = nearest_neighbour_distance(real_test, train_px)
    fidelity = chip_fidelity(pipe, embedder, dict(knowledge.SUBTYPE_PROFILES["papillary"], plane="transverse"),
                             steps, seeds=list(range(seed, seed + 8)), real_records=parts["test"], data=data)
    grids = sample_grids(pipe, out, steps, seed, test, data)
    seg = default_segmenter(model)
    if seg is not None:
        grids["placement"] = placement_grid(pipe, seg, out, steps, seed)
    control = (eval_control.evaluate_splits(pipe, seg, data, ("val", "test"), split_seed, control_seeds,
                                            control_chip_seeds) if seg is not None and control_seeds > 0 else None)
    result = {
        "model": str(model), "data": str(data), "split_seed": split_seed, "seed": seed,
        "n_test_images": len(test), "n_train_images": len(train_px), "steps": steps,
        "embedder": embedder.source, "device": str(dev),
        "coarse_text_only": m_coarse["metrics"], "tiger_fg_bg": m_tiger["metrics"],
        "reference_mode": ref, "real_vs_synthetic_judge": judge,
        "nearest_neighbour_rms": {"generated_mean": float(nn_gen.mean()), "real_test_mean": float(nn_real.mean()),
                                  "generated_min": float(nn_gen.min()), "real_test_min": float(nn_real.min())},
        "chip_fidelity": fidelity, "control": control, "grids": grids, "seconds": round(time.time() - t0, 1),
    }
    return result
