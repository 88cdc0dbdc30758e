"""Model fixtures: a random micro model folder (with a small real background bank) and the
shipped tiny model when it exists.

The micro model is built once per session (about a second): tests exercise the real code paths
(VAE, domain-CLIP text tower, UNet, ControlNets, AFF, DDIM) with minimal widths.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tiger.paths import DEFAULT_MODEL, SHARED_DATA

N_BACKGROUNDS = 6


def _raw_ddti_records(n: int) -> list[dict]:
    """Rows for BackgroundBank.build straight from the distributed DDTI images (when the
    canonical-dataset fixture is not available): the Sobel map and gland are computed."""
    images = sorted((SHARED_DATA / "ddti" / "images").glob("*.jpg"))[:n]
    if not images:
        pytest.skip(f"no DDTI images under {SHARED_DATA / 'ddti' / 'images'}")
    return [{"id": p.stem, "file_name": f"images/{p.name}", "plane": None} for p in images]


@pytest.fixture(scope="session")
def micro_model_dir(request, tmp_path_factory) -> Path:
    """A randomly initialised `micro` model folder with a background bank of real DDTI Sobel maps."""
    from tiger.background_bank import BackgroundBank
    from tiger.random_model import make_random_pipeline

    folder = tmp_path_factory.mktemp("models") / "tiger-micro-random"
    try:
        ddti_small = request.getfixturevalue("ddti_small")
    except pytest.FixtureLookupError:
        ddti_small = None
    if ddti_small is not None:
        make_random_pipeline(folder, "micro", seed=0, bank_source=ddti_small, max_backgrounds=N_BACKGROUNDS)
    else:
        make_random_pipeline(folder, "micro", seed=0)
        BackgroundBank.build(SHARED_DATA / "ddti", _raw_ddti_records(N_BACKGROUNDS), folder / "background_bank", size=128)
    return folder


@pytest.fixture(scope="session")
def micro_pipe(micro_model_dir):
    from tiger.pipeline import TigerPipeline
    pipe = TigerPipeline.from_pretrained(micro_model_dir)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def shipped_model_dir() -> Path:
    """The shipped tiny model (models/tiger-tiny-ddti or $TIGER_MODEL_DIR)."""
    if not (DEFAULT_MODEL / "model_index.json").exists():
        pytest.skip(f"no shipped model at {DEFAULT_MODEL} (train it with the training programs)")
    return DEFAULT_MODEL
