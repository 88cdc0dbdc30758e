"""The import report: what was imported, split, salvaged, skipped or refused, per file.

Why a report instead of exceptions: real datasets carry broken files (truncated JSON, corrupt
JPEGs, masks of the wrong size). One bad file must not stop an import of hundreds, and it
must not vanish silently either: every decision lands here, is written to `report.json`
beside the data and summarised on the console.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

IMPORTER_VERSION = 3  # bump when the canonical output of any importer changes


class ImportInputError(ValueError):
    """The input folder as a whole cannot be imported (missing, wrong layout)."""


@dataclass
class ImportReport:
    source: str
    input: str
    size: int
    importer_version: int = IMPORTER_VERSION
    files_seen: int = 0
    images_imported: int = 0
    samples_written: int = 0
    split_views: int = 0
    views_without_outline: list[str] = field(default_factory=list)
    salvaged_svg: list[dict] = field(default_factory=list)
    skipped_marks: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    nodules_cut: list[dict] = field(default_factory=list)
    labels: dict = field(default_factory=dict)
    label_sources: dict = field(default_factory=dict)
    planes: dict = field(default_factory=dict)
    groups: int = 0
    phash_threshold: int = 0
    seconds: float = 0.0
    complete: bool = False
    notes: list[str] = field(default_factory=list)

    def error(self, file: str | Path, message: str) -> None:
        """One file could not be used; the import goes on."""
        self.errors.append({"file": str(file), "error": message})

    def count_rows(self, rows: list[dict]) -> None:
        self.samples_written = len(rows)
        self.labels = dict(Counter(str(r["label"]) for r in rows))
        self.label_sources = dict(Counter(str(r["label_source"]) for r in rows))
        self.planes = dict(Counter(str(r["plane"]) for r in rows))
        self.groups = len({r["group"] for r in rows})

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def write(self, folder: Path) -> Path:
        path = Path(folder) / "report.json"
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    def summary(self) -> str:
        lines = [
            f"{self.source} import -> {self.samples_written} samples at {self.size}px "
            f"from {self.images_imported} images ({self.files_seen} files seen) in {self.seconds:.1f}s",
            f"  split dual views: {self.split_views}; views without outline: {len(self.views_without_outline)}",
            f"  salvaged svg: {len(self.salvaged_svg)}; skipped marks: {len(self.skipped_marks)}; "
            f"nodules cut by the square crop: {len(self.nodules_cut)}",
            f"  exact duplicates collapsed: {sum(len(d['merged']) for d in self.duplicates)} "
            f"({sum(1 for d in self.duplicates if d.get('conflicts'))} with conflicting metadata)",
            f"  leakage groups: {self.groups} (pHash hamming <= {self.phash_threshold}); labels: {self.labels}",
            f"  per-file errors: {len(self.errors)}",
        ]
        lines += [f"    {e['file']}: {e['error']}" for e in self.errors[:20]]
        if len(self.errors) > 20:
            lines.append(f"    ... {len(self.errors) - 20} more in report.json")
        return "\n".join(lines)


def read_report(folder: str | Path) -> dict | None:
    """The report of a canonical folder, or None when there is none (or it is unreadable)."""
    try:
        return json.loads((Path(folder) / "report.json").read_text())
    except (OSError, ValueError):
        return None
