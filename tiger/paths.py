"""Where things live. Every path a request can reach is derived from these roots."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_ROOT = Path(os.environ.get("TIGER_DATA_DIR", PROJECT_ROOT / "data")).resolve()
SHARED_DATA = Path(os.environ.get("TIGER_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data")).resolve()
DEFAULT_MODEL = Path(os.environ.get("TIGER_MODEL_DIR", PROJECT_ROOT / "models" / "tiger-tiny-ddti")).resolve()
CACHE_ROOT = Path(os.environ.get("TIGER_CACHE_DIR", PROJECT_ROOT / ".cache")).resolve()


def project_relative(path: str | os.PathLike) -> str:
    """`path` as written into reports and model cards: relative to the project when inside it,
    else only its last two parts, so an artifact never records the machine that wrote it."""
    p = Path(path).resolve()
    try:
        return p.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return Path(*p.parts[-2:]).as_posix() if len(p.parts) >= 2 else p.name
