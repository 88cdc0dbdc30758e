"""Simulated readers for the load benchmark and the concurrency tests: real HTTP, real answers.

Each simulated reader logs in, then loops GET next -> POST answer until its list is done. A
fraction of answers is deliberately sent twice (a double click) to prove the second one is
refused and nothing is stored twice. Latency is measured per answer POST.

Each reader talks through `ReaderHTTP`, one keep-alive `http.client` connection, rather than
`requests`: the simulated readers share the server's CPU cores, and `requests` spent about 6 ms
of CPU per answer (as much as a third of the server's), which the benchmark would have counted
as the server's latency.
"""
from __future__ import annotations

import http.client
import json
import random
import select
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit


class ClientError(Exception):
    """The connection failed or the answer was not JSON (the server died, refused or garbled)."""


def _dropped(sock) -> bool:
    """True when an idle connection has something to read: the server's close (EOF)."""
    return bool(select.select([sock], [], [], 0)[0])


class ReaderHTTP:
    """One reader's keep-alive HTTP connection to the API, carrying their bearer token."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        self.host, self.port, self.timeout = parts.hostname or "127.0.0.1", parts.port or 80, timeout
        self.headers = {"Content-Type": "application/json"}
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict | list | str]:
        """(status, decoded JSON, or the text when it is not JSON); ClientError on a broken connection."""
        data = json.dumps(body).encode() if body is not None else None
        if self._conn is not None and self._conn.sock is not None and _dropped(self._conn.sock):
            self.close()  # the server closed the idle keep-alive connection (uvicorn: after 5 s)
        for attempt in (0, 1):  # a keep-alive connection the server closed is reopened once, before sending
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request(method, path, body=data, headers=self.headers)
                resp = self._conn.getresponse()
                raw = resp.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if attempt or method != "GET":  # never resend an answer: its first copy may be stored
                    raise ClientError(f"{type(exc).__name__}: {exc}") from exc
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise ClientError(f"{type(exc).__name__}: {exc}") from exc
        if resp.getheader("Connection", "").lower() == "close":
            self.close()
        text = raw.decode("utf-8", "replace")
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


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


def login(base_url: str, username: str, password: str) -> ReaderHTTP:
    """A connection carrying the reader's bearer token; ClientError when the login is refused."""
    conn = ReaderHTTP(base_url, timeout=120)
    status, body = conn.request("POST", "/api/turing/login", {"username": username, "password": password})
    if status != 200 or not isinstance(body, dict) or "token" not in body:
        conn.close()
        raise ClientError(f"login of {username} answered {status}: {str(body)[:200]}")
    conn.headers["Authorization"] = f"Bearer {body['token']}"
    return conn


def answer_loop(http: ReaderHTTP, base_url: str, username: str, study_id: int, max_answers: int | None = None,
                double_submit_rate: float = 0.1, seed: int = 0, stop: threading.Event | None = None,
                think_s: float = 0.0) -> ReaderRun:
    """GET next -> POST answer until done (or max_answers); never raises (problems go to `errors`).

    `think_s`: mean seconds a reader looks at the image before answering (exponentially
    distributed, seeded per reader); 0 clicks as fast as the server answers (a closed loop at
    saturation, the worst case)."""
    run = ReaderRun(username)
    rng = random.Random(f"{seed}:{username}")
    prefix = f"/api/turing/studies/{study_id}"
    try:
        while max_answers is None or len(run.acknowledged) < max_answers:
            if stop is not None and stop.is_set():
                break
            status, item = http.request("GET", f"{prefix}/next")
            if status != 200 or not isinstance(item, dict):
                run.errors.append(f"next answered {status}: {str(item)[:200]}")
                break
            if item.get("done"):
                break
            body = {"item_id": item["item_id"], "payload": _payload(item, rng)}
            if think_s > 0:
                time.sleep(rng.expovariate(1.0 / think_s))
            t = time.perf_counter()
            status, ack = http.request("POST", f"{prefix}/answers", body)
            run.latencies_s.append(time.perf_counter() - t)
            if status != 201 or not isinstance(ack, dict):
                run.errors.append(f"{status}: {str(ack)[:200]}")
                break
            run.acknowledged.append(ack["answer_id"])
            if rng.random() < double_submit_rate:
                again, _ = http.request("POST", f"{prefix}/answers", body)
                if again == 409:
                    run.duplicates_refused += 1
                else:
                    run.errors.append(f"double submit answered {again}")
    except (ClientError, KeyError) as exc:
        run.errors.append(f"{type(exc).__name__}: {exc}")
    return run


def run_reader(base_url: str, username: str, password: str, study_id: int, **kwargs) -> ReaderRun:
    """Log in and answer; a failed login is reported in `errors`."""
    try:
        http = login(base_url, username, password)
    except ClientError as exc:
        return ReaderRun(username, errors=[f"login: {exc}"])
    return answer_loop(http, base_url, username, study_id, **kwargs)


def login_all(base_url: str, credentials: list[tuple[str, str]]) -> list[ReaderHTTP]:
    """Every reader logs in (concurrently); one connection each."""
    with ThreadPoolExecutor(max_workers=len(credentials)) as pool:
        return list(pool.map(lambda c: login(base_url, c[0], c[1]), credentials))


def answer_all(base_url: str, sessions: list[ReaderHTTP], credentials: list[tuple[str, str]], study_id: int,
               **kwargs) -> tuple[list[ReaderRun], float]:
    """All logged-in readers answer at once (one thread each); returns the runs and the wall time."""
    with ThreadPoolExecutor(max_workers=len(credentials)) as pool:
        t = time.perf_counter()
        runs = list(pool.map(lambda pair: answer_loop(pair[0], base_url, pair[1][0], study_id, **kwargs),
                             zip(sessions, credentials)))
    return runs, time.perf_counter() - t


def run_readers(base_url: str, credentials: list[tuple[str, str]], study_id: int, **kwargs) -> tuple[list[ReaderRun], float]:
    """All readers log in, then all answer at once (one thread each); the wall time covers the
    answering phase only, so the argon2 cost of 50 logins does not pollute answer latencies."""
    return answer_all(base_url, login_all(base_url, credentials), credentials, study_id, **kwargs)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def setup_study(store, specs, n_readers: int, password: str, protocols=(1, 2, 3), name: str = "load",
                prefix: str = "reader") -> tuple[int, list[tuple[str, str]]]:
    """Create n readers (alternating junior/senior) and one study they are all enrolled in."""
    names = [f"{prefix}{i:03d}" for i in range(n_readers)]
    with ThreadPoolExecutor(2) as pool:  # argon2 hashing dominates; it releases the GIL
        list(pool.map(lambda i: store.create_reader(names[i], password, role=("junior", "senior")[i % 2],
                                                    years_experience=1 + i % 20), range(n_readers)))
    study_id = store.create_study(name, specs, protocols=list(protocols), seed=1, readers=names)
    return study_id, [(n, password) for n in names]
