"""Command line for study admins: `python -m turing_test.cli <command> --help`.

The first admin account is made here (there is no default password anywhere); studies can be
created from a manifest, a generated batch and folders, and results exported, without the UI.
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

import tiger  # noqa: F401  (offline settings)
from turing_test import manifest as mf
from turing_test.errors import TuringError
from turing_test.storage import open_store


def _password(args) -> str:
    if args.password_env:
        value = os.environ.get(args.password_env)
        if not value:
            raise TuringError(f"environment variable {args.password_env} is empty")
        return value
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise TuringError("the passwords differ")
    return first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m turing_test.cli", description=__doc__)
    parser.add_argument("--db", default=None, help="SQLAlchemy URL (default: $TIGER_DB_URL or SQLite in the data folder)")
    parser.add_argument("--data-dir", default=None)
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("create-admin", "create-reader"):
        p = sub.add_parser(name)
        p.add_argument("username")
        p.add_argument("--password-env", help="read the password from this environment variable (else stdin/prompt)")
        p.add_argument("--years", type=float, default=0)
        if name == "create-reader":
            p.add_argument("--role", choices=["junior", "senior", "admin"], default="junior")
    p = sub.add_parser("deactivate")
    p.add_argument("username")
    p = sub.add_parser("create-study")
    p.add_argument("name")
    p.add_argument("--manifest", help="CSV/JSON/JSONL manifest of cases")
    p.add_argument("--generated-batch", help="manifest exported by the Synthesize page")
    p.add_argument("--real-folder", action="append", default=[], help="folder of real images (repeatable)")
    p.add_argument("--synthetic-folder", action="append", default=[], help="METHOD=FOLDER of synthetic images")
    p.add_argument("--protocols", default="1,2,3")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cases-per-reader", type=int, default=None)
    p.add_argument("--allow-edits", action="store_true")
    p.add_argument("--serve-size", type=int, default=None,
                   help="side in pixels every case is served at (default: the synthetic cases' side)")
    p.add_argument("--strict-blinding", action="store_true",
                   help="refuse the study when served real and synthetic cases would still differ")
    p.add_argument("--readers", default="", help="comma-separated user names to enroll")
    p = sub.add_parser("enroll")
    p.add_argument("study_id", type=int)
    p.add_argument("readers", help="comma-separated user names")
    p = sub.add_parser("export")
    p.add_argument("study_id", type=int)
    p.add_argument("folder")
    p.add_argument("--admin", required=True, help="admin user name (exports are admin data)")
    args = parser.parse_args(argv)
    store = open_store(args.db, data_dir=args.data_dir)
    try:
        if args.cmd in ("create-admin", "create-reader"):
            role = "admin" if args.cmd == "create-admin" else args.role
            who = store.create_reader(args.username, _password(args), role=role, years_experience=args.years)
            print(json.dumps({"id": who.id, "username": who.username, "role": who.role}))
        elif args.cmd == "deactivate":
            store.set_reader_active(args.username, False)
            print(f"deactivated {args.username}")
        elif args.cmd == "create-study":
            specs = []
            if args.manifest:
                specs += mf.load_manifest(args.manifest)
            if args.generated_batch:
                specs += mf.cases_from_generated_batch(args.generated_batch)
            for folder in args.real_folder:
                specs += mf.cases_from_folder(folder, truth="real", method="real")
            for spec in args.synthetic_folder:
                method, _, folder = spec.partition("=")
                specs += mf.cases_from_folder(folder, truth="synthetic", method=method)
            design = {"cases_per_reader": args.cases_per_reader} if args.cases_per_reader else {}
            if args.serve_size:
                design["serve"] = {"size": args.serve_size}
            if args.strict_blinding:
                design["blinding"] = "strict"
            study_id = store.create_study(args.name, specs, protocols=[int(x) for x in args.protocols.split(",")],
                                          design=design, seed=args.seed, allow_edits=args.allow_edits,
                                          readers=[r for r in args.readers.split(",") if r], progress=True)
            blinding = store.blinding(study_id)
            for warning in blinding["warnings"]:
                print(f"warning: {warning}", file=sys.stderr)
            print(json.dumps({"study_id": study_id, "cases": len(specs), "serve": blinding["serve"]}))
        elif args.cmd == "enroll":
            print(json.dumps({"items_created": store.enroll(args.study_id, [r for r in args.readers.split(",") if r])}))
        elif args.cmd == "export":
            from turing_test.export import export_study
            from turing_test.stats import summarize

            rows = store.answer_rows(store.reader_by_username(args.admin), args.study_id)
            paths = export_study(rows, summarize(rows), args.folder)
            print(json.dumps({k: str(v) for k, v in paths.items()}))
    except TuringError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
