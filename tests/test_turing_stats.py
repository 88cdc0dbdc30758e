"""Statistics against hand computations and sklearn, and the export files."""
from __future__ import annotations

import csv
import json

import pytest
from PIL import Image
from sklearn.metrics import cohen_kappa_score

from turing_test.export import export_study
from turing_test.stats import cohen_kappa, fleiss_kappa, summarize, wilson_ci


def test_wilson_interval_known_values():
    lo, hi = wilson_ci(8, 10)  # textbook: 0.490 - 0.943
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson_ci(0, 10)[0] == 0.0 and wilson_ci(10, 10)[1] == 1.0


def test_cohen_kappa_matches_sklearn_and_hand():
    a = [1, 1, 0, 1, 0, 0, 1, 1, 0, 1]
    b = [1, 0, 0, 1, 0, 1, 1, 1, 0, 0]
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    # hand: po = 0.7, pe = 0.6*0.5 + 0.4*0.5 = 0.5 -> kappa 0.4
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa([1, 1], [1, 1]) is None


def test_fleiss_kappa_wikipedia_example():
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(table) == pytest.approx(0.210, abs=1e-3)


def _rows():
    rows = []
    for reader, group, marks in (("a", "junior", [True, True, False, True]), ("b", "senior", [True, False, False, True]),
                                 ("c", "senior", [True, True, False, False])):
        for case in (1, 2):
            rows.append({"reader": reader, "reader_group": group, "years_experience": 3 if group == "junior" else 12,
                         "case_id": case, "protocol": 3, "truth": "synthetic", "method": "tiger", "subtype": "papillary",
                         "payload": {"features": {"margin": marks[2 * (case - 1)], "halo": marks[2 * (case - 1) + 1]}},
                         "correct": None, "duration_s": 4.0})
        rows.append({"reader": reader, "reader_group": group, "years_experience": 3, "case_id": 9, "protocol": 1,
                     "truth": "synthetic", "method": "tiger", "subtype": "", "payload": {"answer": "real"},
                     "correct": 0.0, "duration_s": 2.0})
    return rows


def test_summary_tables_by_hand():
    s = summarize(_rows())
    p3 = s["protocols"]["3"]
    assert p3["overall"]["n"] == 12 and p3["overall"]["k"] == 7  # 7 of 12 marks say "present"
    assert p3["by_reader_group"]["junior"]["accuracy"] == pytest.approx(3 / 4)
    assert p3["feature_agreement_with_truth"]["margin"]["accuracy"] == pytest.approx(3 / 6)
    assert p3["feature_agreement_with_truth"]["halo"]["accuracy"] == pytest.approx(4 / 6)
    pairs = {(p["reader_a"], p["reader_b"]): p["cohen_kappa"] for p in p3["inter_reader"]["cohen_pairs"]}
    assert pairs[("a", "b")] == pytest.approx(cohen_kappa_score([True, True, False, True], [True, False, False, True]))
    assert p3["inter_reader"]["n_items_fleiss"] == 4
    p1 = s["protocols"]["1"]
    assert p1["synthetic_judged_real_by_method"]["tiger"]["share_judged_real"] == 1.0
    assert p1["overall"]["accuracy"] == 0.0 and p1["time_per_case_s"]["median"] == 2.0


def test_export_writes_tables_and_plots(tmp_path):
    rows = _rows()
    paths = export_study(rows, summarize(rows), tmp_path)
    assert len(list(csv.DictReader(paths["answers_csv"].open()))) == len(rows)
    assert json.loads(paths["summary_json"].read_text())["n_answers"] == len(rows)
    summary = list(csv.DictReader(paths["summary_csv"].open()))
    assert {"overall", "by_method", "feature_agreement_with_truth"} <= {r["table"] for r in summary}
    for key in ("accuracy_png", "readers_png"):
        with Image.open(paths[key]) as im:
            assert im.size[0] > 200
