"""A randomly initialised model folder, loaded as a pipeline: for development and tests."""
from __future__ import annotations

from pathlib import Path

from tiger import nets
from tiger.pipeline import TigerPipeline


def make_random_pipeline(folder: str | Path, preset: str | dict = "micro", seed: int = 0,
                         bank_source: str | Path | None = None, max_backgrounds: int | None = 32) -> TigerPipeline:
    """Write a randomly initialised model folder and load it: for development and tests.

    bank_source: a canonical dataset folder; its TRAINING split (tiger.data.split) fills the
    background bank (at most `max_backgrounds`, at the model's image size).
    """
    folder = Path(folder)
    comps = nets.build_components(preset, seed=seed)
    comps["model_id"] = f"random-{preset if isinstance(preset, str) else 'custom'}-seed{seed}"
    if bank_source is not None:
        from tiger.background_bank import BackgroundBank
        from tiger.data import load_metadata, split
        records = split(load_metadata(bank_source), seed=0)["train"]
        if max_backgrounds is not None:
            records = records[:max_backgrounds]
        comps["background_bank"] = BackgroundBank.build(bank_source, records, folder / "background_bank",
                                                        size=comps["image_size"])
    nets.save_components(comps, folder, fp16=True)
    return TigerPipeline.from_pretrained(folder)
