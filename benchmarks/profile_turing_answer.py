"""Where the time of one reader's GET next + POST answer goes, without HTTP (issue 17).

Runs the store calls a request makes (token lookup, next_item, token lookup, submit) for one
reader on a fresh SQLite study under cProfile and prints ms per cycle, SQL statements per cycle,
the time in sqlite3 commit (the fsync of synchronous=FULL) and the top functions by own time.

    .venv/bin/python benchmarks/profile_turing_answer.py --cycles 40
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import tiger  # noqa: E402,F401
from fixtures_turing import make_case_folder  # noqa: E402

from turing_test.manifest import load_manifest  # noqa: E402
from turing_test.simulate import _payload, setup_study  # noqa: E402
from turing_test.storage import open_store  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=40, help="GET next + POST answer cycles to profile")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tiger_profile_turing_"))
    store = open_store(None, data_dir=work / "data")
    sid, creds = setup_study(store, load_manifest(make_case_folder(work / "cases", 10, 10)), 1, "profile password")
    token, _ = store.login(*creds[0])
    rng = random.Random(0)
    done = 0
    profile = cProfile.Profile()
    t = time.perf_counter()
    profile.enable()
    while done < args.cycles:
        item = store.next_item(store.reader_for_token(token), sid)
        if item is None:
            break
        store.submit(store.reader_for_token(token), sid, item["item_id"], _payload(item, rng))
        done += 1
    profile.disable()
    wall = time.perf_counter() - t
    stats = pstats.Stats(profile)
    by_name = {f"{fn[0]}:{fn[2]}": v for fn, v in stats.stats.items()}
    execs = sum(v[0] for k, v in by_name.items() if k.endswith("'execute' of 'sqlite3.Cursor' objects>"))
    commit_s = sum(v[2] for k, v in by_name.items() if k.endswith("'commit' of 'sqlite3.Connection' objects>"))
    print(f"cycles {done}: {wall / done * 1000:.1f} ms per cycle (profiled), {execs / done:.1f} SQL statements "
          f"per cycle, sqlite3 commit {commit_s / done * 1000:.2f} ms per cycle")
    stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
