"""Metrics checked against brute-force enumeration, closed forms and known synthetic truths."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infereco import metrics
from infereco.metrics import (
    best_of_n_at_k,
    bootstrap_ci,
    cost_of_pass,
    cost_of_pass_array,
    coverage_power_law,
    default_ks,
    fit_coverage_power_law,
    majority_at_k,
    majority_at_k_curve,
    pass_at_k,
    pass_at_k_curve,
    summarize,
)
from pools import make_pool, pool_from_answers

# ---------------------------------------------------------------------------------------------
# brute-force references: every k-subset, exact fractions


def brute_pass(n: int, c: int, k: int) -> Fraction:
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(samples, k))
    return Fraction(sum(any(s) for s in subsets), len(subsets))


def brute_majority(row: list[int], right: set[int], k: int) -> Fraction:
    total, count = Fraction(0), 0
    for subset in itertools.combinations(row, k):
        count += 1
        votes = Counter(a for a in subset if a != -1)
        if votes:
            top = max(votes.values())
            tied = [a for a, v in votes.items() if v == top]
            total += Fraction(sum(a in right for a in tied), len(tied))
    return total / count


def brute_best(scores: list[float], good: list[bool], k: int) -> Fraction:
    total, count = Fraction(0), 0
    for subset in itertools.combinations(range(len(scores)), k):
        count += 1
        top = max(scores[i] for i in subset)
        tied = [i for i in subset if scores[i] == top]
        total += Fraction(sum(good[i] for i in tied), len(tied))
    return total / count


# ---------------------------------------------------------------------------------------------
# pass@k


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_pass_at_k_matches_enumeration(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 10))
    c = data.draw(st.integers(0, n))
    got = pass_at_k(n, c, np.arange(1, n + 3))[0]
    for k in range(1, n + 1):
        assert got[k - 1] == pytest.approx(float(brute_pass(n, c, k)), abs=1e-12)
    assert np.isnan(got[n]) and np.isnan(got[n + 1])  # k > n


def test_pass_at_k_shapes_and_vectorisation() -> None:
    n = np.array([5, 5, 8, 3])
    c = np.array([0, 5, 2, 1])
    got = pass_at_k(n, c, [1, 3, 5])
    assert got.shape == (4, 3)
    for p in range(4):
        for j, k in enumerate([1, 3, 5]):
            expect = float(brute_pass(n[p], c[p], k)) if k <= n[p] else math.nan
            np.testing.assert_allclose(got[p, j], expect, atol=1e-12)
    assert pass_at_k([], [], [1]).shape == (0, 1)


def test_pass_at_k_is_stable_for_large_n() -> None:
    # Tiny pass@k keeps its relative precision; no overflow for n in the millions.
    assert pass_at_k(10**6, 1, [1])[0, 0] == pytest.approx(1e-6, rel=1e-12)
    n, c, k = 3000, 3, 700
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, [k])[0, 0] == pytest.approx(float(exact), rel=1e-12)
    assert pass_at_k(10**7, 10**7, [10])[0, 0] == 1.0


def test_pass_at_k_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        pass_at_k(3, 4, [1])
    with pytest.raises(ValueError):
        pass_at_k(3, 1, [0])
    with pytest.raises(ValueError):
        pass_at_k(3, 1, [1.5])


def test_pass_at_k_recovers_bernoulli_truth() -> None:
    # Problem p is solved by each sample with known probability q_p; E[pass@k] = 1 - (1 - q_p)^k.
    rng = np.random.default_rng(7)
    q = rng.uniform(0.0, 0.3, size=3000)
    n = 40
    c = rng.binomial(n, q)
    ks = np.array([1, 2, 5, 10, 20, 40])
    per_problem = pass_at_k(np.full(q.size, n), c, ks)
    truth = (1 - (1 - q[:, None]) ** ks).mean(axis=0)
    lo, hi = bootstrap_ci(per_problem, n_boot=2000, level=0.99, seed=1)
    assert np.all(lo <= truth) and np.all(truth <= hi), (lo, truth, hi)


def test_pass_at_k_curve_on_pool() -> None:
    pool = pool_from_answers([[0, 1, 1, 1], [1, 1, 1, 1], [0, 0, 1, 2]])
    curve = pass_at_k_curve(pool)
    assert curve.shape == (4,)
    expect = [np.mean([float(brute_pass(4, c, k)) for c in (1, 0, 2)]) for k in range(1, 5)]
    np.testing.assert_allclose(curve, expect, atol=1e-12)
    # Ragged pool: k beyond the smallest problem is NaN on the mean.
    ragged = pool_from_answers([[0, 1], [0, 1, 1]])
    assert np.isnan(pass_at_k_curve(ragged, [3])[0])
    assert ragged.max_n == 2 and pass_at_k_curve(ragged).shape == (2,)


def test_default_ks() -> None:
    assert default_ks(0).tolist() == []
    assert default_ks(1).tolist() == [1]
    assert default_ks(16).tolist() == [1, 2, 4, 8, 16]
    assert default_ks(100).tolist() == [1, 2, 4, 8, 16, 32, 64, 100]


# ---------------------------------------------------------------------------------------------
# majority@k

answer_rows = st.lists(st.integers(-1, 4), min_size=1, max_size=8)


@settings(max_examples=120, deadline=None)
@given(rows=st.lists(answer_rows, min_size=1, max_size=4), right=st.sets(st.integers(0, 4)))
def test_majority_exact_matches_enumeration(rows: list[list[int]], right: set[int]) -> None:
    pool = pool_from_answers(rows, right)
    width = max(len(r) for r in rows)
    ks = np.arange(1, width + 1)
    # draws >= C(8, 4) = 70, so every (problem, k) is exact here (closed form or enumeration).
    got = majority_at_k(
        pool.answers,
        pool.correct,
        ks,
        valid=pool.valid,
        answer_correct=pool.answer_correct,
        draws=100,
    )
    for p, row in enumerate(rows):
        for k in ks:
            if k > len(row):
                assert np.isnan(got[p, k - 1])
            else:
                expect = float(brute_majority(row, right, k))
                assert got[p, k - 1] == pytest.approx(expect, abs=1e-12)


def test_majority_ties_and_no_answers() -> None:
    rows = [
        [0, 1],  # k=2: a tie between a right and a wrong answer -> 1/2
        [-1, -1, -1],  # never an answer -> 0 for every k
        [0, -1, -1],  # the only answer wins whenever it is drawn
        [1, 1, 0, 0, 2, 2],  # three-way tie at k = n -> 1/3
    ]
    pool = pool_from_answers(rows, {0})
    got = majority_at_k(pool.answers, pool.correct, [1, 2, 3, 6], valid=pool.valid)
    assert got[0, 1] == pytest.approx(0.5)
    assert np.all(got[1, :3] == 0)
    assert got[2, 0] == pytest.approx(1 / 3) and got[2, 2] == pytest.approx(1.0)
    assert got[2, 1] == pytest.approx(2 / 3)
    assert got[3, 3] == pytest.approx(1 / 3)


def test_majority_uses_answer_correct_over_sample_verdicts() -> None:
    answers = np.array([[3, 3, 5]])
    correct = np.array([[False, False, True]])
    assert majority_at_k(answers, correct, [3])[0, 0] == 0.0
    overridden = majority_at_k(answers, correct, [3], answer_correct=[{3: True}])
    assert overridden[0, 0] == 1.0


def _hard_row() -> list[int]:
    # Several classes of different sizes, singletons and no-answers: exercises every branch.
    return [0, 0, 0, 1, 1, 1, 2, 2, -1, -1, 3, 4, 5, 0, 1, -1]


@pytest.mark.parametrize("k", [3, 5, 8, 11, 14])
def test_majority_monte_carlo_close_to_exact(k: int) -> None:
    row = _hard_row()
    exact = float(brute_majority(row, {0}, k))
    draws = min(3000, math.comb(len(row), k) - 1)  # fewer draws than subsets: Monte-Carlo path
    pool = pool_from_answers([row], {0})
    got = majority_at_k(pool.answers, pool.correct, [k], draws=draws, seed=3)[0, 0]
    assert abs(got - exact) < 4.5 * 0.5 / math.sqrt(draws)


def test_majority_monte_carlo_is_unbiased_on_average() -> None:
    row = _hard_row()
    k = 8
    exact = float(brute_majority(row, {0}, k))
    pool = pool_from_answers([row] * 400, {0})
    est = majority_at_k(pool.answers, pool.correct, [k], draws=500, seed=11)[:, 0]
    se = est.std(ddof=1) / math.sqrt(est.size)
    assert abs(est.mean() - exact) < 4 * se + 1e-9


def test_majority_monte_carlo_is_seeded_per_k() -> None:
    pool = make_pool(20, 40, seed=5)
    args = (pool.answers, pool.correct)
    one = majority_at_k(*args, [8], valid=pool.valid, draws=64, seed=1)
    both = majority_at_k(*args, [4, 8], valid=pool.valid, draws=64, seed=1)
    np.testing.assert_array_equal(one[:, 0], both[:, 1])
    other = majority_at_k(*args, [8], valid=pool.valid, draws=64, seed=2)
    assert not np.array_equal(one, other)


def test_majority_curve_on_pool_and_k_equals_n() -> None:
    pool = make_pool(30, 12, seed=2)
    curve = majority_at_k_curve(pool)
    assert curve.shape == default_ks(12).shape
    assert np.all((curve >= 0) & (curve <= 1))
    # k = 1 is the share of samples whose answer is right; k = n is the full-pool vote.
    assert curve[0] == pytest.approx(pool.correct[pool.valid].mean())
    full = np.mean([float(brute_majority(list(r), {0}, 12)) for r in pool.answers])
    assert curve[-1] == pytest.approx(full)


def test_majority_large_pool_runs_in_class_space() -> None:
    pool = make_pool(50, 300, seed=4, n_wrong=12)
    got = majority_at_k(pool.answers, pool.correct, [1, 2, 3, 50, 299, 300], draws=64)
    assert got.shape == (50, 6) and np.all(np.isfinite(got))
    assert np.all((got >= 0) & (got <= 1))


# ---------------------------------------------------------------------------------------------
# best-of-n@k


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_best_of_n_matches_enumeration(data: st.DataObject) -> None:
    P = data.draw(st.integers(1, 3))
    N = data.draw(st.integers(1, 7))
    scores = np.array(data.draw(st.lists(st.integers(0, 3), min_size=P * N, max_size=P * N)))
    good = np.array(data.draw(st.lists(st.booleans(), min_size=P * N, max_size=P * N)))
    valid = np.array(data.draw(st.lists(st.booleans(), min_size=P * N, max_size=P * N)))
    scores, good, valid = (a.reshape(P, N) for a in (scores.astype(float), good, valid))
    got = best_of_n_at_k(scores, good, np.arange(1, N + 1), valid=valid)
    for p in range(P):
        idx = np.flatnonzero(valid[p])
        for k in range(1, N + 1):
            if k > idx.size:
                assert np.isnan(got[p, k - 1])
            else:
                expect = brute_best(scores[p, idx].tolist(), good[p, idx].tolist(), k)
                assert got[p, k - 1] == pytest.approx(float(expect), abs=1e-12)


def test_best_of_n_perfect_and_useless_verifier() -> None:
    pool = make_pool(40, 16, seed=9)
    n, c = metrics.pool_counts(pool)
    ks = [1, 4, 16]
    # A verifier that scores correct samples higher is an oracle: best-of-n@k = pass@k.
    oracle = best_of_n_at_k(pool.correct.astype(float), pool.correct, ks, valid=pool.valid)
    np.testing.assert_allclose(oracle, pass_at_k(n, c, ks), atol=1e-12)
    # A constant score picks uniformly: best-of-n@k = pass@1 for every k.
    flat = best_of_n_at_k(np.zeros(pool.correct.shape), pool.correct, ks, valid=pool.valid)
    np.testing.assert_allclose(flat, np.repeat((c / n)[:, None], 3, axis=1), atol=1e-12)


# ---------------------------------------------------------------------------------------------
# bootstrap, fits, cost


def test_bootstrap_covers_mean_and_narrows() -> None:
    rng = np.random.default_rng(0)
    small = rng.uniform(size=100)
    large = rng.uniform(size=10_000)
    lo_s, hi_s = bootstrap_ci(small, seed=1)
    lo_l, hi_l = bootstrap_ci(large, seed=1)
    assert lo_s <= small.mean() <= hi_s
    assert lo_l <= large.mean() <= hi_l
    assert (hi_l - lo_l) < (hi_s - lo_s) / 5  # ~ 1/sqrt(100)
    # Width close to the normal-theory 2 * 1.96 * sd / sqrt(P).
    assert hi_l - lo_l == pytest.approx(2 * 1.96 * large.std() / 100, rel=0.15)


def test_bootstrap_columns_constant_and_reproducible() -> None:
    rng = np.random.default_rng(1)
    values = np.column_stack([rng.uniform(size=200), np.full(200, 0.3), np.zeros(200)])
    lo, hi = bootstrap_ci(values, n_boot=500, seed=4)
    assert lo.shape == hi.shape == (3,)
    assert lo[1] == hi[1] == 0.3 and lo[2] == hi[2] == 0.0
    lo2, hi2 = bootstrap_ci(values, n_boot=500, seed=4)
    np.testing.assert_array_equal(lo, lo2)
    assert np.all(np.isnan(bootstrap_ci(np.zeros((0, 2)))[0]))
    lo_nan, _ = bootstrap_ci(np.array([[0.1, np.nan], [0.2, 0.5]]))
    assert np.isfinite(lo_nan[0]) and np.isnan(lo_nan[1])


@settings(max_examples=50, deadline=None)
@given(a=st.floats(-5.0, -0.05), b=st.floats(-1.5, -0.05))
def test_power_law_fit_recovers_parameters(a: float, b: float) -> None:
    ks = 2.0 ** np.arange(0, 12)
    cov = coverage_power_law(ks, a, b)
    fa, fb, r2 = fit_coverage_power_law(ks, cov)
    assert fa == pytest.approx(a, rel=1e-6) and fb == pytest.approx(b, rel=1e-6, abs=1e-9)
    assert r2 == pytest.approx(1.0)


def test_power_law_fit_skips_degenerate_points() -> None:
    ks = np.array([1, 2, 4, 8, 16, 32, 64])
    cov = coverage_power_law(ks, -1.2, -0.5)
    cov[0] = 0.0  # unsolved at k = 1: no information
    cov[-1] = 1.0  # saturated
    fa, fb, _ = fit_coverage_power_law(ks, cov)
    assert fa == pytest.approx(-1.2) and fb == pytest.approx(-0.5)
    assert all(math.isnan(x) for x in fit_coverage_power_law([1, 2], [0.0, 1.0]))
    # Noisy coverage still lands near the truth.
    rng = np.random.default_rng(3)
    ks = np.arange(1, 200)
    noisy = np.clip(coverage_power_law(ks, -2.0, -0.3) + rng.normal(0, 0.002, ks.size), 0, 1)
    fa, fb, r2 = fit_coverage_power_law(ks, noisy)
    assert fa == pytest.approx(-2.0, rel=0.1) and fb == pytest.approx(-0.3, abs=0.05) and r2 > 0.9


def test_cost_of_pass() -> None:
    assert cost_of_pass(0.02, 0.5) == pytest.approx(0.04)
    assert cost_of_pass(0.02, 0.0) == math.inf
    assert cost_of_pass(0.0, 0.0) == math.inf
    assert math.isnan(cost_of_pass(0.1, math.nan))
    with pytest.raises(ValueError):
        cost_of_pass(1.0, 1.5)
    got = cost_of_pass_array([0.1, 0.1, 0.2], [0.5, 0.0, np.nan])
    assert got[0] == pytest.approx(0.2) and got[1] == math.inf and np.isnan(got[2])


# ---------------------------------------------------------------------------------------------
# summarize


def test_summarize_fields_and_consistency() -> None:
    pool = make_pool(40, 16, seed=3, cost_per_sample=0.002, with_final=True)
    s = summarize(pool, n_boot=300)
    n, c = metrics.pool_counts(pool)
    assert s["n_problems"] == 40 and s["n_samples"] == 16
    assert s["ks"] == [1, 2, 4, 8, 16]
    assert s["accuracy"]["mean"] == pytest.approx((c / n).mean())
    assert s["pass_at_k"]["mean"][0] == pytest.approx(s["accuracy"]["mean"])
    assert s["coverage"]["mean"] == pytest.approx((c > 0).mean())  # pass@n at k = n
    assert s["coverage"]["k"] == 16
    assert s["majority_at_n"]["mean"] == pytest.approx(s["majority_at_k"]["mean"][-1])
    for key in ("accuracy", "coverage", "majority_at_n", "final_accuracy"):
        assert s[key]["lo"] <= s[key]["mean"] <= s[key]["hi"]
    assert s["final_accuracy"]["mean"] == pytest.approx(pool.final_correct.mean())
    assert s["cost"]["total_usd"] == pytest.approx(40 * 16 * 0.002)
    assert s["cost"]["per_sample_usd"] == pytest.approx(0.002)
    assert s["cost"]["per_problem_usd"] == pytest.approx(16 * 0.002)
    cop = s["cost_of_pass"]
    assert cop["single_sample"] == pytest.approx(0.002 / s["accuracy"]["mean"])
    assert cop["majority_at_n"] == pytest.approx(16 * 0.002 / s["majority_at_n"]["mean"])
    assert cop["oracle_best_of_n"] == pytest.approx(16 * 0.002 / s["coverage"]["mean"])
    assert s["tokens"]["prompt_total"] == 50 * 40 * 16
    assert s["latency_s"]["mean"] > 0
    json.dumps(s)  # plain Python values only (inf/nan still floats; report writes them)


def test_summarize_zero_success_and_edge_pools() -> None:
    s = summarize(make_pool(10, 8, p_correct=0.0, seed=1), n_boot=100)
    assert s["accuracy"]["mean"] == 0.0
    assert s["cost_of_pass"]["single_sample"] == math.inf
    assert s["cost_of_pass"]["oracle_best_of_n"] == math.inf
    assert s["final_accuracy"] is None
    empty = summarize(pool_from_answers([]), n_boot=50)
    assert empty["n_problems"] == 0 and empty["ks"] == []
    assert math.isnan(empty["accuracy"]["mean"])
    ragged = summarize(pool_from_answers([[0, 1, 0], [1], [0, 0, 0, 2]]), ks=[1, 2, 3], n_boot=50)
    assert ragged["n_samples"] == 1 and ragged["ks"] == [1, 2, 3]
    assert math.isnan(ragged["pass_at_k"]["mean"][1])  # one problem has a single sample
    unsampled = summarize(pool_from_answers([[0, 1], []]), n_boot=50)  # a problem got no samples
    assert unsampled["n_samples"] == 0 and unsampled["ks"] == []
    assert math.isnan(unsampled["coverage"]["mean"])


# ---------------------------------------------------------------------------------------------
# cost-of-pass with a paired bootstrap


def test_cost_of_pass_ci_fixed_cost_matches_the_rate_ci() -> None:
    """With every problem costing the same, only the rate varies: the bounds are cost / rate's
    bounds (same resamples as bootstrap_ci), order statistics instead of interpolated ones."""
    rng = np.random.default_rng(5)
    rates = rng.uniform(0.2, 1.0, size=(200, 2))
    cost, n = np.full(200, 0.08), np.full(200, 4)  # $0.02 per sample
    mean, lo, hi = metrics.cost_of_pass_ci(rates, cost, n, [1, 4], n_boot=400, seed=3)
    assert mean == pytest.approx([0.02, 0.08] / rates.mean(axis=0))
    draws = metrics._resampled_means(rates, 400, 3)  # what bootstrap_ci sorts
    for col, spend in enumerate((1, 4)):
        ordered = np.sort(0.02 * spend / draws[:, col])
        assert lo[col] in ordered and hi[col] in ordered
        assert ordered[8] <= lo[col] <= ordered[10] and ordered[389] <= hi[col] <= ordered[391]
        assert lo[col] < mean[col] < hi[col]


def test_cost_of_pass_ci_pairs_cost_and_success() -> None:
    """Expensive problems are the unsolved ones: resampling cost with success widens the CI
    beyond what a fixed cost per sample gives."""
    solved = np.r_[np.ones(50), np.zeros(50)]
    cost = np.where(solved == 1, 1.0, 9.0)  # per problem, 1 sample each
    mean, lo, hi = metrics.cost_of_pass_ci(solved[:, None], cost, np.ones(100), [1], n_boot=500)
    fixed_lo, fixed_hi = (5.0 / r for r in reversed(bootstrap_ci(solved, n_boot=500)))
    assert mean[0] == pytest.approx(10.0)
    assert hi[0] - lo[0] > fixed_hi - fixed_lo


def test_cost_of_pass_ci_infinite_free_and_empty() -> None:
    never = np.zeros((30, 1))
    mean, lo, hi = metrics.cost_of_pass_ci(never, np.full(30, 0.1), np.ones(30), [1], n_boot=100)
    assert mean[0] == lo[0] == hi[0] == math.inf
    rare = np.zeros((30, 1))
    rare[0] = 1.0  # one success in 30: many resamples miss it, so the upper bound is infinite
    mean, lo, hi = metrics.cost_of_pass_ci(rare, np.full(30, 0.1), np.ones(30), [1], n_boot=200)
    assert mean[0] == pytest.approx(3.0) and math.isfinite(lo[0]) and hi[0] == math.inf
    free = metrics.cost_of_pass_ci(np.full((5, 1), 0.5), np.zeros(5), np.ones(5), [2], n_boot=50)
    assert [float(x[0]) for x in free] == [0.0, 0.0, 0.0]
    empty = metrics.cost_of_pass_ci(np.zeros((0, 2)), [], [], [1, 2])
    assert np.isnan(np.concatenate(empty)).all()


def test_summarize_cost_of_pass_curves_agree_with_the_scalars() -> None:
    pool = make_pool(40, 16, seed=3, cost_per_sample=0.002)
    s = summarize(pool, n_boot=300)
    curves, scalars = s["cost_of_pass_at_k"], s["cost_of_pass"]
    assert curves["ks"] == s["ks"]
    assert curves["single_sample"]["mean"] == pytest.approx(scalars["single_sample"])
    assert curves["majority_at_k"]["mean"][-1] == pytest.approx(scalars["majority_at_n"])
    assert curves["oracle_pass_at_k"]["mean"][-1] == pytest.approx(scalars["oracle_best_of_n"])
    # the oracle never costs more per pass than the vote: pass@k >= majority@k
    assert np.all(np.array(curves["oracle_pass_at_k"]["mean"]) <= curves["majority_at_k"]["mean"])
    for part in (curves["majority_at_k"], curves["oracle_pass_at_k"]):
        assert np.all(np.array(part["lo"]) <= part["mean"]) and np.all(np.array(part["mean"]) <= part["hi"])


def test_summarize_fits_the_coverage_curve() -> None:
    s = summarize(make_pool(40, 32, seed=4), n_boot=50)
    fit = s["coverage_fit"]
    assert fit["points"] == len(s["ks"])
    a, b = fit["a"], fit["b"]
    ks = np.asarray(s["ks"], dtype=float)
    predicted = np.exp(a * ks**b)
    # the fitted curve reproduces the measured coverage curve it came from
    assert np.max(np.abs(predicted - np.asarray(s["pass_at_k"]["mean"]))) < 0.08
    assert a < 0 and fit["r2"] > 0.9
