"""Offline settings applied before any third-party library is imported.

No weights can be downloaded here, and the app must never call outside localhost, so the
hubs and telemetry of huggingface, gradio and ultralytics are switched off, and ultralytics
gets a local config folder with a font (it downloads Arial.ttf otherwise).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from tiger.paths import CACHE_ROOT

_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "DIFFUSERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "YOLO_OFFLINE": "1",
    "DO_NOT_TRACK": "1",
}


def _bundled_font() -> Path | None:
    """A TTF that ships inside an installed wheel (matplotlib's DejaVuSans), if any."""
    try:
        import matplotlib

        font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        return font if font.exists() else None
    except Exception:  # matplotlib missing: ultralytics will then complain clearly itself
        return None


def apply_offline_settings() -> None:
    """Set the offline environment (without overriding what the user set explicitly)."""
    for key, value in _ENV.items():
        os.environ.setdefault(key, value)
    if "YOLO_CONFIG_DIR" not in os.environ:
        cfg = CACHE_ROOT / "yolo"
        target = cfg / "Ultralytics" / "Arial.ttf"
        try:
            if not target.exists():
                font = _bundled_font()
                if font is not None:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(font, target)
            os.environ["YOLO_CONFIG_DIR"] = str(cfg)
        except OSError:
            pass
