"""Statistics of a reader study: Wilson CIs, Cohen's and Fleiss' kappa, and the summary tables.

Pure functions over the admin's answer rows (`Store.answer_rows`), so they are tested on hand-
computed cases and reused by the Results page, the export and the API alike.
Protocol 3 accuracy is counted per feature mark (each listed feature is one trial whose truth is
"present"), which is the paper's feature-level agreement.
"""
from __future__ import annotations

import math
import statistics
from collections import defaultdict
from itertools import combinations

from turing_test.protocols import PROTOCOLS


def wilson_ci(k: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (well-behaved at 0%, 100% and small n),
    from `scipy.stats.binomtest(...).proportion_ci(method="wilson")`; z sets the confidence."""
    if n <= 0:
        return (float("nan"), float("nan"))
    if abs(k - round(k)) > 1e-9 or not 0 <= k <= n:
        raise ValueError(f"successes must be a whole number from 0 to {n}, got {k}")
    from scipy.stats import binomtest, norm

    ci = binomtest(int(round(k)), n).proportion_ci(confidence_level=float(2 * norm.cdf(z) - 1), method="wilson")
    lo = 0.0 if k <= 0 else max(0.0, float(ci.low))  # exact ends: no 0.9999999 from rounding
    hi = 1.0 if k >= n else min(1.0, float(ci.high))
    return (lo, hi)


def proportion(k: float, n: int) -> dict:
    lo, hi = wilson_ci(k, n)
    return {"n": n, "k": k, "accuracy": (k / n) if n else None,
            "ci_low": None if n == 0 else lo, "ci_high": None if n == 0 else hi}


def cohen_kappa(a: list, b: list) -> float | None:
    """Cohen's kappa of two raters over the same items (`sklearn.metrics.cohen_kappa_score`);
    None when undefined (no items, or chance agreement 1: both raters gave one label throughout)."""
    if len(a) != len(b):
        raise ValueError("both raters must rate the same items")
    if not a or len(set(a) | set(b)) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score

    value = float(cohen_kappa_score(a, b))
    return None if math.isnan(value) else value


def fleiss_kappa(counts: list[list[int]]) -> float | None:
    """Fleiss' kappa from an items x categories count table (raters per item may vary, >= 2).

    Hand-written because the library versions (statsmodels' `fleiss_kappa`) assume the same
    number of raters on every item, and in a reader study readers skip or have not reached
    items; tested on the Wikipedia example.
    """
    rows = [r for r in counts if sum(r) >= 2]
    if not rows:
        return None
    n_cat = len(rows[0])
    total = sum(sum(r) for r in rows)
    p_j = [sum(r[j] for r in rows) / total for j in range(n_cat)]
    p_i = [(sum(x * x for x in r) - sum(r)) / (sum(r) * (sum(r) - 1)) for r in rows]
    p_bar = sum(p_i) / len(rows)
    pe = sum(p * p for p in p_j)
    if pe >= 1:
        return None
    return (p_bar - pe) / (1 - pe)


def _trials(row: dict) -> tuple[float, int]:
    """(successes, trials) of one answer, as its protocol counts them (`StudyProtocol.trials`)."""
    return PROTOCOLS[row["protocol"]].trials(row["payload"], row["correct"])


def _grouped(rows: list[dict], key) -> dict:
    acc: dict = defaultdict(lambda: [0.0, 0])
    for r in rows:
        k, n = _trials(r)
        g = acc[key(r)]
        g[0] += k
        g[1] += n
    return {name: proportion(k, n) for name, (k, n) in sorted(acc.items(), key=lambda kv: str(kv[0]))}


def agreement(rows: list[dict]) -> dict:
    """Inter-reader agreement on protocol 3 marks: Cohen's kappa per reader pair, Fleiss per study."""
    ratings: dict = defaultdict(dict)  # (case, feature) -> reader -> present?
    for r in rows:
        if r["protocol"] == 3:
            for feature, present in r["payload"]["features"].items():
                ratings[(r["case_id"], feature)][r["reader"]] = bool(present)
    readers = sorted({rd for marks in ratings.values() for rd in marks})
    pairs = []
    for a, b in combinations(readers, 2):
        shared = [k for k, m in ratings.items() if a in m and b in m]
        pairs.append({"reader_a": a, "reader_b": b, "n_items": len(shared),
                      "cohen_kappa": cohen_kappa([ratings[k][a] for k in shared], [ratings[k][b] for k in shared])})
    table = [[sum(1 for v in m.values() if v), sum(1 for v in m.values() if not v)] for m in ratings.values()]
    return {"cohen_pairs": pairs, "fleiss_kappa": fleiss_kappa(table),
            "n_items_fleiss": sum(1 for r in table if sum(r) >= 2), "n_readers": len(readers)}


def summarize(rows: list[dict]) -> dict:
    """All summary tables of a study, per protocol (see module docstring for protocol 3)."""
    out: dict = {"n_answers": len(rows), "protocols": {}}
    for protocol in sorted({r["protocol"] for r in rows}):
        pr = [r for r in rows if r["protocol"] == protocol]
        durations = [r["duration_s"] for r in pr]
        block = {
            "overall": _grouped(pr, lambda r: "all")["all"],
            "by_method": _grouped(pr, lambda r: r["method"]),
            "by_subtype": _grouped(pr, lambda r: r["subtype"] or "(none)"),
            "by_reader_group": _grouped(pr, lambda r: r["reader_group"]),
            "by_reader": _grouped(pr, lambda r: r["reader"]),
            "time_per_case_s": {"mean": statistics.fmean(durations), "median": statistics.median(durations),
                                "n": len(durations)},
        }
        if protocol == 1:
            synthetic = [r for r in pr if r["truth"] == "synthetic"]
            acc: dict = defaultdict(lambda: [0, 0])
            for r in synthetic:
                acc[r["method"]][0] += r["payload"]["answer"] == "real"
                acc[r["method"]][1] += 1
            block["synthetic_judged_real_by_method"] = {
                m: {**proportion(k, n), "share_judged_real": k / n} for m, (k, n) in sorted(acc.items())}
        if protocol == 3:
            feat: dict = defaultdict(lambda: [0, 0])
            for r in pr:
                for f, present in r["payload"]["features"].items():
                    feat[f][0] += bool(present)
                    feat[f][1] += 1
            block["feature_agreement_with_truth"] = {f: proportion(k, n) for f, (k, n) in sorted(feat.items())}
            block["inter_reader"] = agreement(pr)
        out["protocols"][str(protocol)] = block
    return out


def reader_points(rows: list[dict]) -> list[dict]:
    """Per reader and protocol: accuracy and years of experience (for the scatter plot)."""
    acc: dict = {}
    for r in rows:
        key = (r["reader"], r["protocol"])
        entry = acc.setdefault(key, {"reader": r["reader"], "protocol": r["protocol"], "group": r["reader_group"],
                                     "years_experience": r["years_experience"], "k": 0.0, "n": 0})
        k, n = _trials(r)
        entry["k"] += k
        entry["n"] += n
    return [{**e, "accuracy": e["k"] / e["n"]} for e in acc.values() if e["n"]]
