"""Importers that write the canonical dataset folder (docs/CONTRACTS.md) from real sources.

`import_dataset(source, input_dir, out, size)` is the one entry point used by the CLI
(`python -m training.prepare`) and the tests; each source lives in its own module.
"""
from __future__ import annotations

import time
from pathlib import Path

from tiger.importers.common import PHASH_THRESHOLD, RawSample, write_canonical
from tiger.importers.report import IMPORTER_VERSION, ImportInputError, ImportReport, read_report

SOURCES = ("ddti", "busi", "generic")


def import_dataset(source: str, input_dir: str | Path, out: str | Path, size: int = 128,
                   limit: int | None = None, **options) -> ImportReport:
    """Import `input_dir` (a `source` dataset) into the canonical folder `out` at `size` px.

    `limit` keeps only the first N samples (quick fixtures). Raises ImportInputError when the
    input as a whole is unusable; per-file problems end up in the returned report.
    """
    from itertools import islice

    from tiger.importers import busi, ddti, generic

    readers = {"ddti": ddti.iter_ddti, "busi": busi.iter_busi, "generic": generic.iter_generic}
    if source not in readers:
        raise ImportInputError(f"Unknown source {source!r}; choose one of: {', '.join(SOURCES)}.")
    if not Path(input_dir).is_dir():
        raise ImportInputError(f"Input folder {input_dir} does not exist.")
    t0 = time.perf_counter()
    report = ImportReport(source=source, input=str(Path(input_dir).resolve()), size=size)
    samples = readers[source](input_dir, report, **options)
    if limit is not None:
        samples = islice(samples, limit)
    write_canonical(samples, out, size, report)
    report.seconds = round(time.perf_counter() - t0, 2)
    report.write(Path(out))
    return report


__all__ = ["IMPORTER_VERSION", "ImportInputError", "ImportReport", "PHASH_THRESHOLD", "RawSample",
           "SOURCES", "import_dataset", "read_report", "write_canonical"]
