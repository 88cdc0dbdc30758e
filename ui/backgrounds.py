"""Backgrounds for the BG condition: the model's bank (a filterable gallery) or the user's image.

The page needs the bank before the (slow) pipeline is loaded, so it asks the model library for
the folder's bank and description without loading weights (`nets.open_background_bank`,
`nets.read_model_info`); a missing model becomes a `ModelMissing` message the page shows instead
of crashing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tiger import conditions as cond
from ui.uploads import load_grey_image

DEFAULT_SIZE = 128
PLANE_FILTERS = ("all", "transverse", "longitudinal")


class ModelMissing(ValueError):
    """The model folder is absent or incomplete; the message says where it was looked for."""


def model_status(model_dir: Path) -> tuple[bool, str]:
    """(present, markdown) for the page header; never raises."""
    from tiger import nets

    if not (Path(model_dir) / "model_index.json").exists():
        return False, (f"**No model found** at `{model_dir}`. Generation is unavailable until a "
                       "model folder is there: run the training (see README) or start the app with "
                       "`--model <folder>` / `TIGER_MODEL_DIR`. You can still explore chips, "
                       "TI-RADS and mask placement on your own image.")
    try:
        info = nets.read_model_info(model_dir)
    except nets.ModelFolderError as e:
        return False, f"**The model folder `{model_dir}` is damaged** ({e})."
    return True, f"Model **{info['model_id']}** ({info['image_size']} px) from `{model_dir}`."


def image_size(model_dir: Path) -> int:
    """The model's square image size (128 when the folder does not say)."""
    from tiger import nets

    try:
        return nets.read_model_info(model_dir)["image_size"]
    except nets.ModelFolderError:
        return DEFAULT_SIZE


def open_bank(model_dir: Path) -> Any:
    """The model's BackgroundBank; ModelMissing when the model or its bank is absent."""
    from tiger import nets

    bank = nets.open_background_bank(model_dir)
    if bank is None:
        raise ModelMissing(f"The model at {model_dir} has no background bank: choose "
                           "'derive from my image' instead.")
    return bank


def _row_id(row: Any) -> str:
    return str(row["id"] if isinstance(row, dict) else getattr(row, "id"))


def bank_rows(bank: Any, plane: str | None = None) -> list[dict[str, Any]]:
    """The bank's rows, filtered by plane ('all'/None = every row), as plain dicts."""
    rows = bank.list(plane=None if plane in (None, "", "all") else plane)
    return [r if isinstance(r, dict) else dict(vars(r)) for r in rows]


def gallery_items(bank: Any, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(image path, caption) pairs for a gr.Gallery of backgrounds."""
    folder = Path(getattr(bank, "folder", getattr(bank, "root", "")))
    items = []
    for r in rows:
        path = Path(r["file"])
        if not path.is_absolute():
            path = folder / path
        items.append((str(path), f"{r['id']} ({r.get('plane') or 'plane ?'})"))
    return items


def load_background(bank: Any, background_id: str, size: int | None = None) -> tuple[np.ndarray, cond.GlandExtent]:
    """(Sobel uint8 HxW, gland extent) of one bank entry, resized to `size` when given."""
    try:
        sobel, gland = bank.get(background_id, size=size)
    except (KeyError, ValueError) as exc:
        raise ModelMissing(f"Background {background_id!r} cannot be used: {exc}") from exc
    if isinstance(gland, dict):
        gland = cond.GlandExtent.from_dict(gland)
    elif gland is None:
        gland = cond.estimate_gland_extent(np.asarray(sobel))
    return np.asarray(sobel, dtype=np.uint8), gland


def derive_background(upload: Any, size: int = DEFAULT_SIZE) -> tuple[np.ndarray, np.ndarray, cond.GlandExtent]:
    """'Derive from my image': (resized grey image, its Sobel map, estimated gland extent).

    The image is squashed to the model's square size, as the training images were.
    """
    grey = load_grey_image(upload)
    small = np.asarray(Image.fromarray(grey).resize((size, size), Image.BILINEAR), dtype=np.uint8)
    sobel = cond.sobel_map(small)
    return small, sobel, cond.estimate_gland_extent(small)
