"""The loss log of a stage: a CSV that may gain columns, and one PNG panel per quantity."""
from __future__ import annotations

import csv
import math
from pathlib import Path


def append_csv(path: Path, row: dict) -> None:
    """Append a row; the header grows if a later row brings new columns (e.g. the GAN losses)."""
    rows: list[dict] = []
    header: list[str] = []
    if path.exists():
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    new_cols = [k for k in row if k not in header]
    if new_cols or not path.exists():
        header += new_cols
        rows.append({k: row.get(k, "") for k in header})
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=header)
            w.writeheader()
            w.writerows(rows)
    else:
        with path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=header).writerow({k: row.get(k, "") for k in header})


def read_csv(path: Path) -> list[dict]:
    if not Path(path).exists():
        return []
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))


def plot_losses(csv_path: Path, png_path: Path, title: str = "") -> Path | None:
    """One panel per logged quantity against step; nothing is written for an empty log."""
    rows = read_csv(csv_path)
    if not rows:
        return None
    try:
        import matplotlib
    except ImportError:  # a bare GPU box without matplotlib: the CSV is still there
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [c for c in rows[0].keys() if c not in ("step", "elapsed_s")]
    n = max(1, len(cols))
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 2.8 * nrows), squeeze=False)
    for ax, col in zip(axes.flat, cols):
        pts = [(int(r["step"]), float(r[col])) for r in rows if r.get(col) not in (None, "")]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1)
        ax.set_title(col, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(cols):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)
    plt.close(fig)
    return png_path
