"""Helpers that start real servers for tests and benchmarks: a free port, the wait for /health,
and the Turing API under uvicorn in a subprocess (so a test can SIGKILL it)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable, Sequence

from tiger.paths import PROJECT_ROOT


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_health(url: str, timeout_s: float = 60.0, failed: Callable[[], str | None] = lambda: None) -> None:
    """Poll `url` until it answers 200; `failed()` returns a reason to stop early (a dead process)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reason = failed()
        if reason:
            raise RuntimeError(reason)
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")


def spawn_api_server(port: int, env: dict[str, str], log_path: str | Path | None = None,
                     timeout_s: float = 60.0, uvicorn_args: Sequence[str] = ()) -> subprocess.Popen:
    """Start `ui.turing_api.create_api_app` under uvicorn in a subprocess on 127.0.0.1:port;
    return once /health answers. `uvicorn_args`: more uvicorn options (e.g. "--http", "h11")."""
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "ui.turing_api:create_api_app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", *uvicorn_args],
        cwd=PROJECT_ROOT, env={**os.environ, **env}, stdout=log, stderr=log)
    exited = lambda: (f"API server exited with code {proc.returncode} (log: {log_path})"  # noqa: E731
                      if proc.poll() is not None else None)
    try:
        wait_for_health(f"http://127.0.0.1:{port}/health", timeout_s, exited)
    except RuntimeError:
        proc.kill()
        raise
    return proc
