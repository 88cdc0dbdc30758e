"""Simulated readers for the load benchmark and the concurrency tests: real HTTP, real answers.

Each simulated reader logs in, then loops GET next -> POST answer until its list is done. A
fraction of answers is deliberately sent twice (a double click) to prove the second one is
refused and nothing is stored twice. Latency is measured per answer POST.
"""
from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests


@dataclass
class ReaderRun:
    username: str
    acknowledged: list[int] = field(default_factory=list)  # answer ids the server confirmed
    latencies_s: list[float] = field(default_factory=list)
    duplicates_refused: int = 0
    errors: list[str] = field(default_factory=list)


def _payload(item: dict, rng: random.Random) -> dict:
    if item["protocol"] == 1:
        return {"answer": rng.choice(["real", "synthetic"]), "confidence": rng.randint(1, 5)}
    if item["protocol"] == 2:
        return {"choice": rng.choice(item["options"])}
    return {"features": {f["group"]: rng.random() < 0.7 for f in item["features"]}}


def run_reader(base_url: str, username: str, password: str, study_id: int, max_answers: int | None = None,
               double_submit_rate: float = 0.1, seed: int = 0, stop: threading.Event | None = None) -> ReaderRun:
    """One reader's session over HTTP; never raises (problems are collected in `errors`)."""
    run = ReaderRun(username)
    rng = random.Random(f"{seed}:{username}")
    http = requests.Session()
    try:
        r = http.post(f"{base_url}/api/turing/login", json={"username": username, "password": password}, timeout=60)
        r.raise_for_status()
        http.headers["Authorization"] = f"Bearer {r.json()['token']}"
        while max_answers is None or len(run.acknowledged) < max_answers:
            if stop is not None and stop.is_set():
                break
            item = http.get(f"{base_url}/api/turing/studies/{study_id}/next", timeout=60).json()
            if item.get("done"):
                break
            body = {"item_id": item["item_id"], "payload": _payload(item, rng)}
            t = time.perf_counter()
            r = http.post(f"{base_url}/api/turing/studies/{study_id}/answers", json=body, timeout=60)
            run.latencies_s.append(time.perf_counter() - t)
            if r.status_code != 201:
                run.errors.append(f"{r.status_code}: {r.text[:200]}")
                break
            run.acknowledged.append(r.json()["answer_id"])
            if rng.random() < double_submit_rate:
                again = http.post(f"{base_url}/api/turing/studies/{study_id}/answers", json=body, timeout=60)
                if again.status_code == 409:
                    run.duplicates_refused += 1
                else:
                    run.errors.append(f"double submit answered {again.status_code}")
    except (requests.RequestException, ValueError, KeyError) as exc:
        run.errors.append(f"{type(exc).__name__}: {exc}")
    return run


def run_readers(base_url: str, credentials: list[tuple[str, str]], study_id: int, **kwargs) -> tuple[list[ReaderRun], float]:
    """All readers at once, one thread each; returns their runs and the wall time."""
    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(credentials)) as pool:
        runs = list(pool.map(lambda c: run_reader(base_url, c[0], c[1], study_id, **kwargs), credentials))
    return runs, time.perf_counter() - t


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]
