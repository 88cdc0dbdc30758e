"""Prepare a canonical dataset folder from DDTI, BUSI or a generic folder.

    python -m training.prepare --source ddti --input ../shared/data/ddti --out data/ddti-128
    python -m training.prepare --source busi --input ../shared/data/busi --out data/busi-128
    python -m training.prepare --source generic --input my_folder --out data/mine-128 --csv labels.csv

Prints the import summary (counts imported, split views, salvaged, skipped, per-file errors)
and writes it to <out>/report.json. Exit status 2 when the input as a whole is unusable.
"""
from __future__ import annotations

import argparse
import sys

import tiger  # noqa: F401  (offline settings first)
from tiger.importers import SOURCES, ImportInputError, import_dataset


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", choices=SOURCES, required=True)
    ap.add_argument("--input", required=True, help="the dataset folder as distributed")
    ap.add_argument("--out", required=True, help="canonical output folder (replaced)")
    ap.add_argument("--size", type=int, default=128, help="square output size in pixels (default 128)")
    ap.add_argument("--limit", type=int, default=None, help="keep only the first N samples")
    ap.add_argument("--csv", default=None, help="generic source: the CSV file (default: the only *.csv)")
    args = ap.parse_args(argv)
    options = {"csv": args.csv} if args.source == "generic" else {}
    try:
        report = import_dataset(args.source, args.input, args.out, size=args.size, limit=args.limit, **options)
    except ImportInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
