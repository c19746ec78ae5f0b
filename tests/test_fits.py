"""A fit is shown only when it predicts points it was not fitted to; otherwise "no reliable fit" and why."""

from __future__ import annotations

import numpy as np

from infereco.fits import coverage_fit_verdict, runtime_fit_verdict
from infereco.metrics import coverage_power_law
from infereco.report import efficiency_table
from rich.console import Console


def test_a_coverage_law_that_holds_is_shown() -> None:
    ks = np.array([1, 2, 4, 8, 16, 32])
    mean = coverage_power_law(ks, -1.2, -0.4)
    verdict = coverage_fit_verdict(ks, mean, mean - 0.02, mean + 0.02)
    assert verdict["reliable"] and verdict["held_out_ks"] == [32.0]
    assert abs(verdict["a"] + 1.2) < 1e-6 and "within their CIs" in verdict["why"]


def test_a_curve_that_bends_away_is_not() -> None:
    ks = np.array([1, 2, 4, 8, 16, 32])
    mean = np.array([0.2, 0.3, 0.4, 0.5, 0.52, 0.53])  # saturates: the early slope overshoots
    verdict = coverage_fit_verdict(ks, mean, mean - 0.02, mean + 0.02)
    assert not verdict["reliable"] and "predicts" in verdict["why"] and "k=32" in verdict["why"]


def test_too_few_points_say_so() -> None:
    verdict = coverage_fit_verdict([1, 2], [0.3, 0.4], [0.2, 0.3], [0.4, 0.5])
    assert not verdict["reliable"] and "too few points" in verdict["why"]


def test_runtime_fit_verdicts_and_the_efficiency_table() -> None:
    good = {"a": 0.1, "b": 0.001, "c": 0.02, "r2_holdout": 0.95, "n_holdout": 50}
    bad = {"a": 0.1, "b": 0.001, "c": 0.02, "r2_holdout": -18087.0, "n_holdout": 10}
    assert runtime_fit_verdict(good) == (True, "held-out R² 0.95 on 50 requests")
    shown, why = runtime_fit_verdict(bad)
    assert not shown and "-18,087.00" in why and "worse than predicting their mean" in why
    assert runtime_fit_verdict(None)[0] is False
    summaries = [
        {"label": "good", "efficiency": {"requests": 200, "latency_s": {"mean": 1, "p90": 2}, "runtime_fit": good}},
        {"label": "bad", "efficiency": {"requests": 40, "latency_s": {"mean": 1, "p90": 2}, "runtime_fit": bad}},
        {"label": "empty", "efficiency": {"requests": 0, "latency_s": {"mean": None, "p90": None}, "runtime_fit": None}},
    ]
    console = Console(width=250, record=True)
    console.print(efficiency_table(summaries))
    text = console.export_text()
    good_line, bad_line, empty_line = (next(l for l in text.splitlines() if name in l) for name in ("good", "bad", "empty"))
    assert "0.1 + 0.001·p + 0.02·o s" in good_line
    assert "no reliable fit" in bad_line and "0.02·o" not in bad_line
    assert "nan" not in empty_line and "no reliable fit" in empty_line
