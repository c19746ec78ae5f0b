"""Imperfect verifiers: the p/(p+q) ceiling, utility with a wrong-answer penalty, and optimal N."""

from __future__ import annotations

import numpy as np
import pytest

from infereco.verifier_limits import VerifierRates, estimate_rates, optimal_n, resample_until_pass


def _rates(p: list[float], q: list[float]) -> VerifierRates:
    return VerifierRates(p=np.array(p), q=np.array(q), tpr=float("nan"), fpr=float("nan"))


def test_accuracy_approaches_the_ceiling_and_never_passes_it() -> None:
    rates = _rates([0.2, 0.05], [0.05, 0.05])
    ceiling = (0.2 / 0.25 + 0.05 / 0.10) / 2
    assert rates.ceiling == pytest.approx(ceiling)
    curve = resample_until_pass(rates, [1, 10, 100, 10_000])
    assert np.all(np.diff(curve["accuracy"]) >= 0)
    assert np.all(curve["accuracy"] <= ceiling + 1e-12)
    assert curve["accuracy"][-1] == pytest.approx(ceiling, rel=1e-6)
    total = curve["accuracy"] + curve["wrong"] + curve["abstain"]
    assert np.allclose(total, 1.0)


def test_closed_form_matches_a_simulation_of_resample_until_pass() -> None:
    rng = np.random.default_rng(0)
    p, q, n, trials = 0.1, 0.04, 5, 200_000
    draws = rng.random((trials, n))
    passes = draws < p + q
    first = np.where(passes.any(axis=1), passes.argmax(axis=1), -1)
    right = (first >= 0) & (draws[np.arange(trials), np.maximum(first, 0)] < p)
    predicted = resample_until_pass(_rates([p], [q]), [n])["accuracy"][0]
    assert right.mean() == pytest.approx(predicted, abs=0.005)


def test_a_penalty_for_wrong_answers_makes_the_optimal_n_finite_and_small() -> None:
    # an easy problem the verifier judges well, and a hard one where passing answers are mostly wrong
    rates = _rates([0.5, 0.002], [0.01, 0.05])
    n_free, _ = optimal_n(rates, penalty=0.0, max_n=2000)
    n_costly, utility = optimal_n(rates, penalty=1.0, max_n=2000)
    assert n_free > 20  # without a penalty more samples never hurt
    assert n_costly < 10 and utility > 0  # with one, stop early: extra tries mostly add wrong answers
    with pytest.raises(ValueError):
        optimal_n(rates, penalty=-1)


def test_rates_are_estimated_from_verdicts_and_labels() -> None:
    passes = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=bool)
    correct = np.array([[1, 0, 1, 0], [0, 0, 0, 1]], dtype=bool)
    rates = estimate_rates(passes, correct)
    assert rates.p.tolist() == [0.25, 0.0] and rates.q.tolist() == [0.25, 0.25]
    assert rates.tpr == pytest.approx(1 / 3) and rates.fpr == pytest.approx(2 / 5)


def test_when_passing_answers_are_mostly_wrong_abstaining_is_optimal() -> None:
    rates = _rates([0.1, 0.05], [0.3, 0.2])
    n, utility = optimal_n(rates, penalty=1.0, max_n=100)
    assert (n, utility) == (0, 0.0)
    assert optimal_n(rates, penalty=0.0, max_n=100)[0] > 0
