"""Export of a study: raw answers and summary tables as CSV/JSON, and the result plots as PNG.

Summary tables are flattened to one row per (protocol, table, group) so a spreadsheet or R reads
them without nesting.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from turing_test.protocols import PROTOCOL_NAMES  # noqa: E402
from turing_test.stats import reader_points  # noqa: E402

RAW_FIELDS = ["answer_id", "study_id", "reader", "reader_group", "years_experience", "case_id", "protocol",
              "question", "truth", "method", "subtype", "payload", "chosen_case_id", "correct", "shown_at",
              "answered_at", "duration_s", "revision"]


def summary_rows(summary: dict) -> list[dict]:
    """Flatten `stats.summarize` output: protocol, table, group, n, k, accuracy, ci_low, ci_high."""
    rows = []
    for protocol, block in summary["protocols"].items():
        rows.append({"protocol": protocol, "table": "overall", "group": "all", **block["overall"]})
        for table in ("by_method", "by_subtype", "by_reader_group", "by_reader",
                      "synthetic_judged_real_by_method", "feature_agreement_with_truth"):
            for group, stats in block.get(table, {}).items():
                rows.append({"protocol": protocol, "table": table, "group": group,
                             **{k: stats[k] for k in ("n", "k", "accuracy", "ci_low", "ci_high")}})
    return rows


def write_raw_csv(rows: list[dict], path: str | Path) -> Path:
    path = Path(path)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=RAW_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({**r, "payload": json.dumps(r["payload"], sort_keys=True)})
    return path


def write_summary_csv(summary: dict, path: str | Path) -> Path:
    path = Path(path)
    rows = summary_rows(summary)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["protocol", "table", "group", "n", "k", "accuracy", "ci_low", "ci_high"])
        w.writeheader()
        w.writerows(rows)
    return path


def write_json(obj, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
    return path


def plot_accuracy(summary: dict, path: str | Path, table: str = "by_method") -> Path:
    """Bar chart: accuracy per group with Wilson 95% CI error bars, one panel per protocol."""
    protocols = list(summary["protocols"])
    fig, axes = plt.subplots(1, max(1, len(protocols)), figsize=(4.5 * max(1, len(protocols)), 3.6), squeeze=False)
    for ax, protocol in zip(axes[0], protocols):
        groups = summary["protocols"][protocol].get(table, {})
        names = list(groups)
        acc = [groups[g]["accuracy"] or 0 for g in names]
        err = [[max(0.0, a - (groups[g]["ci_low"] or 0)) for a, g in zip(acc, names)],
               [max(0.0, (groups[g]["ci_high"] or 0) - a) for a, g in zip(acc, names)]]
        ax.bar(range(len(names)), acc, yerr=err, capsize=4, color="#4a7ab5")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_ylim(0, 1)
        ax.set_title(f"P{protocol}: {PROTOCOL_NAMES[int(protocol)]}", fontsize=9)
        ax.set_ylabel("accuracy (95% CI)")
    if not protocols:
        axes[0][0].text(0.5, 0.5, "no answers yet", ha="center")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_readers(rows: list[dict], path: str | Path) -> Path:
    """Scatter: each reader's accuracy against years of experience, per protocol and group."""
    points = reader_points(rows)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    markers = {1: "o", 2: "s", 3: "^"}
    colors = {"junior": "#d9822b", "senior": "#2b7bd9", "admin": "#777777"}
    for p in points:
        ax.scatter(p["years_experience"], p["accuracy"], marker=markers[p["protocol"]], c=colors[p["group"]])
    for proto, m in markers.items():
        ax.scatter([], [], marker=m, c="k", label=f"P{proto}")
    for g, c in colors.items():
        ax.scatter([], [], marker="o", c=c, label=g)
    ax.set_xlabel("years of experience")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def export_study(rows: list[dict], summary: dict, folder: str | Path) -> dict[str, Path]:
    """Write every export of a study into `folder`; returns {kind: path}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "answers_csv": write_raw_csv(rows, folder / "answers.csv"),
        "answers_json": write_json(rows, folder / "answers.json"),
        "summary_csv": write_summary_csv(summary, folder / "summary.csv"),
        "summary_json": write_json(summary, folder / "summary.json"),
        "accuracy_png": plot_accuracy(summary, folder / "accuracy_by_method.png"),
        "readers_png": plot_readers(rows, folder / "readers.png"),
    }
