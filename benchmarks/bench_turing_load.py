"""Load benchmark of the Turing-test HTTP API: N simulated readers answer concurrently on loopback.

Prints one JSON object: answers/s, p50/p99 latency of answer POSTs, and the exactly-once check
(acknowledged answers == rows stored, no id twice, every double click refused). The baseline,
measured in the same run, is one reader alone on the same server: `ratio_throughput_vs_single`
says how much concurrency buys, `ratio_p99_vs_single` what it costs in tail latency.

The two arms alternate on the same server: a warm-up round (one solo phase, one load phase, not
counted), then `--repeats` rounds of solo then load, each reader answering `--answers` new
questions per round. Each figure is the median over the rounds with its spread (min, max), and
the ratios are ratios of medians, so one noisy round on a shared machine does not decide them.

Where the time goes: each phase also reports the CPU time the server process and this client
process spent per answer (one GET next + one POST answer, plus the double clicks). By default the readers
click with no pause, a closed loop at saturation: once the CPUs are busy, the mean time per
answer is readers x (server + client CPU per answer) / cores (Little's law), and
`cpu_bound_ms_per_answer` is that figure. Latency below it needs less CPU per request, not
less waiting on locks. `--think-s` gives each reader a mean viewing time per image instead (a
reader study as it is taken), which measures the latency a reader feels at that load.

    .venv/bin/python benchmarks/bench_turing_load.py --readers 50 --answers 12 [--think-s 2]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile

from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tiger  # noqa: E402,F401
from tqdm import tqdm  # noqa: E402

from turing_test.manifest import load_manifest  # noqa: E402
from turing_test.simulate import answer_all, login_all, percentile, setup_study  # noqa: E402
from turing_test.storage import default_url, open_store  # noqa: E402
from tests.servers import free_port, spawn_api_server  # noqa: E402

PASSWORD = "benchmark password"


def _cpu_s(proc: psutil.Process | None = None) -> float:
    """User + system CPU seconds of a process (this one when None), all its threads, plus its
    live child processes (uvicorn's workers when the server runs several)."""
    proc = proc or psutil.Process()
    total = 0.0
    for p in [proc] + (proc.children(recursive=True) if proc.pid != os.getpid() else []):
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def _measured(fn, server: psutil.Process):
    """Run fn(); return its result with the server's and this client's CPU seconds during it."""
    s0, c0 = _cpu_s(server), _cpu_s()
    out = fn()
    return out, _cpu_s(server) - s0, _cpu_s() - c0


def _stats(runs, wall: float, server_cpu_s: float, client_cpu_s: float, readers: int) -> dict:
    lat = [x for r in runs for x in r.latencies_s]
    acked = [a for r in runs for a in r.acknowledged]
    n = max(1, len(acked))
    per = (server_cpu_s + client_cpu_s) / n
    return {"answers": len(acked), "wall_s": round(wall, 3), "answers_per_s": round(len(acked) / wall, 2),
            "server_cpu_ms_per_answer": round(1000 * server_cpu_s / n, 2),
            "client_cpu_ms_per_answer": round(1000 * client_cpu_s / n, 2),
            "cpu_bound_ms_per_answer": round(1000 * readers * per / (os.cpu_count() or 1), 1),
            "p50_ms": round(percentile(lat, 50) * 1000, 1), "p99_ms": round(percentile(lat, 99) * 1000, 1),
            "errors": [e for r in runs for e in r.errors][:5], "acknowledged_ids": acked,
            "duplicates_refused": sum(r.duplicates_refused for r in runs)}


def _summary(rounds: list[dict]) -> dict:
    """Median of each figure over the timed rounds, with its spread as [min, max]."""
    keys = ("answers_per_s", "p50_ms", "p99_ms", "server_cpu_ms_per_answer", "client_cpu_ms_per_answer",
            "cpu_bound_ms_per_answer")
    out: dict = {}
    for k in keys:
        vals = sorted(r[k] for r in rounds)
        out[k] = round(float(statistics.median(vals)), 2)
        out[k + "_spread"] = [vals[0], vals[-1]]
    out["answers"] = sum(r["answers"] for r in rounds)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--answers", type=int, default=12, help="answers per reader per round")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds after the warm-up round")
    parser.add_argument("--double-submit-rate", type=float, default=0.2)
    parser.add_argument("--think-s", type=float, default=0.0,
                        help="mean seconds each reader looks at an image before answering (0: click at once)")
    parser.add_argument("--http", default="auto", choices=("auto", "h11", "httptools"),
                        help="uvicorn's HTTP parser (auto: httptools when installed)")
    parser.add_argument("--workers", type=int, default=1,
                        help="uvicorn worker processes of the API server (they share the study database)")
    parser.add_argument("--db", default=None, help="SQLAlchemy URL (default: a fresh SQLite file)")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from fixtures_turing import make_case_folder

    work = Path(tempfile.mkdtemp(prefix="tiger_bench_turing_"))
    rounds = args.repeats + 1
    n_cases = max(10, -(-args.answers * rounds // 4))  # each real + synthetic pair makes 4 questions
    manifest = make_case_folder(work / "cases", n_real=n_cases, n_synthetic=n_cases)
    data = work / "data"
    url = args.db or default_url(data)
    store = open_store(url, data_dir=data)
    specs = load_manifest(manifest)
    with tqdm(total=2, desc="creating readers and studies (argon2)", unit="study") as bar:
        sid, creds = setup_study(store, specs, args.readers, PASSWORD, name="load")
        bar.update()
        base_sid, base_creds = setup_study(store, specs, 1, PASSWORD, name="baseline", prefix="solo")
        bar.update()
    port = free_port()
    extra = (("--http", args.http) if args.http != "auto" else ()) + (
        ("--workers", str(args.workers)) if args.workers > 1 else ())
    proc = spawn_api_server(port, {"TIGER_DB_URL": url, "TIGER_DATA_DIR": str(data)}, log_path=work / "server.log",
                            **({"uvicorn_args": extra} if extra else {}))
    try:
        base = f"http://127.0.0.1:{port}"
        server = psutil.Process(proc.pid)
        solo_http, load_http = login_all(base, base_creds), login_all(base, creds)  # argon2 outside the measure
        solo_rounds, load_rounds = [], []
        for _ in tqdm(range(rounds), desc="rounds (solo, then load; the first is a warm-up)", unit="round"):
            (solo_runs, solo_wall), solo_srv, solo_cli = _measured(
                lambda: answer_all(base, solo_http, base_creds, base_sid, max_answers=args.answers,
                                   double_submit_rate=0), server)
            solo_rounds.append(_stats(solo_runs, solo_wall, solo_srv, solo_cli, 1))
            (runs, wall), load_srv, load_cli = _measured(
                lambda: answer_all(base, load_http, creds, sid, max_answers=args.answers,
                                   double_submit_rate=args.double_submit_rate, think_s=args.think_s), server)
            load_rounds.append(_stats(runs, wall, load_srv, load_cli, args.readers))
    finally:
        proc.kill()
        proc.wait()
    acked = [a for r in load_rounds for a in r.pop("acknowledged_ids")]
    for r in solo_rounds:
        r.pop("acknowledged_ids")
    errors = [e for r in load_rounds + solo_rounds for e in r["errors"]]
    stored = store.count_answers(sid)
    exactly_once = stored == len(acked) == len(set(acked)) == args.readers * args.answers * rounds and not errors
    solo, load = _summary(solo_rounds[1:]), _summary(load_rounds[1:])
    if args.think_s > 0:  # the bound holds for a closed loop at saturation only
        load.pop("cpu_bound_ms_per_answer")
    result = {
        "benchmark": "turing_load", "database": store.engine.dialect.name, "http": args.http, "workers": args.workers,
        "readers": args.readers,
        "answers_per_reader_per_round": args.answers, "timed_rounds": args.repeats, "think_s": args.think_s,
        **load, "errors": errors[:5], "stored": stored, "exactly_once": exactly_once,
        "duplicates_refused": sum(r["duplicates_refused"] for r in load_rounds),
        "baseline_single_reader": solo,
        "ratio_throughput_vs_single": round(load["answers_per_s"] / solo["answers_per_s"], 2),
        "ratio_p99_vs_single": round(load["p99_ms"] / solo["p99_ms"], 2),
    }
    print(json.dumps(result, separators=(",", ":")))
    store.engine.dispose()
    if exactly_once:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept {work} for inspection (server.log, database)", file=sys.stderr)
    return 0 if exactly_once else 1


if __name__ == "__main__":
    sys.exit(main())
