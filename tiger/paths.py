"""Where things live. Every path a request can reach is derived from these roots."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_ROOT = Path(os.environ.get("TIGER_DATA_DIR", PROJECT_ROOT / "data")).resolve()
SHARED_DATA = Path(os.environ.get("TIGER_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data")).resolve()
DEFAULT_MODEL = Path(os.environ.get("TIGER_MODEL_DIR", PROJECT_ROOT / "models" / "tiger-tiny-ddti")).resolve()
CACHE_ROOT = Path(os.environ.get("TIGER_CACHE_DIR", PROJECT_ROOT / ".cache")).resolve()
