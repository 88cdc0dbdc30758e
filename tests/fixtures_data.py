"""Prepared real datasets for tests: DDTI and BUSI at 128 px, and a 24-sample DDTI subset.

Built once into `.cache/test-data/` and reused while their report says the import completed
with the current importer version from the same input folder (a DDTI import takes ~20 s and
BUSI ~15 s on 2 cores, so every test session after the first starts at once).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tiger.importers import IMPORTER_VERSION, import_dataset, read_report
from tiger.paths import CACHE_ROOT, SHARED_DATA

TEST_DATA = CACHE_ROOT / "test-data"


def _up_to_date(folder: Path, source_dir: Path) -> bool:
    rep = read_report(folder)
    return bool(rep and rep.get("complete") and rep.get("importer_version") == IMPORTER_VERSION
                and rep.get("input") == str(source_dir.resolve()) and (folder / "metadata.jsonl").is_file())


def prepared(source: str, name: str) -> Path:
    """The canonical folder of a shared dataset, imported once (or skip if the data is absent)."""
    src = SHARED_DATA / source
    if not src.is_dir():
        pytest.skip(f"real data folder {src} is absent")
    out = TEST_DATA / name
    if not _up_to_date(out, src):
        import_dataset(source, src, out, size=128)
    return out


@pytest.fixture(scope="session")
def ddti_canonical() -> Path:
    return prepared("ddti", "ddti-128")


@pytest.fixture(scope="session")
def busi_canonical() -> Path:
    return prepared("busi", "busi-128")


@pytest.fixture(scope="session")
def ddti_small(ddti_canonical: Path) -> Path:
    """~24 DDTI samples (12 benign, 12 malignant, whole groups) for quick training tests."""
    out = TEST_DATA / "ddti-small"
    stamp = out / "source-report.json"
    src_report = (ddti_canonical / "report.json").read_text()
    if stamp.is_file() and stamp.read_text() == src_report:
        return out
    rows = [json.loads(line) for line in open(ddti_canonical / "metadata.jsonl")]
    chosen: list[dict] = []
    for label in ("benign", "malignant"):
        taken = [r for r in rows if r["label"] == label][:12]
        chosen += taken
    if out.exists():
        shutil.rmtree(out)
    for sub in ("images", "masks", "sobel"):
        (out / sub).mkdir(parents=True)
    for r in chosen:
        for key in ("file_name", "mask", "condition_bg"):
            shutil.copy2(ddti_canonical / r[key], out / r[key])
    with open(out / "metadata.jsonl", "w") as f:
        for r in chosen:
            f.write(json.dumps(r) + "\n")
    rep = json.loads(src_report)
    rep.update(samples_written=len(chosen), notes=rep.get("notes", []) + ["subset of ddti-128 for quick tests"])
    (out / "report.json").write_text(json.dumps(rep, indent=1))
    stamp.write_text(src_report)
    return out
