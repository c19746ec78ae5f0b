"""Compute-optimal allocation (infereco.allocation) on synthetic pools with known difficulty."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from infereco.allocation import AllocationError, allocate, allocation_curve
from infereco.errors import UserError
from tests.pools import pool_from_answers

N = 16


def _rows(rng: np.random.Generator, count: int, p: float, wrong: list[int], wrong_w=None):
    out = []
    for _ in range(count):
        right = rng.uniform(size=N) < p
        bad = rng.choice(wrong, size=N, p=wrong_w)
        out.append(np.where(right, 0, bad).tolist())
    return out


def mixed_pool(seed: int = 0, *, consistent: bool = True, per_kind: int = 120):
    """Easy (p=0.95), hard with one consistent wrong answer (p=0.3), hard and spread (p=0.45)."""
    rng = np.random.default_rng(seed)
    rows = _rows(rng, per_kind, 0.95, [1, 2, 3])
    if consistent:
        rows += _rows(rng, per_kind, 0.3, [1])
    rows += _rows(rng, per_kind, 0.45, list(range(1, 31)))
    order = rng.permutation(len(rows))
    return pool_from_answers([rows[i] for i in order], {0}, label="mixed")


@pytest.fixture(scope="module")
def pool():
    return mixed_pool()


def test_tight_budget_beats_or_ties_uniform_and_fits(pool):
    for budget in (2, 3, 4, 6):
        r = allocate(pool, budget)
        assert r.cost <= budget + 1e-9
        assert r.baseline_cost <= budget + 1e-9
        assert r.heldout_accuracy >= r.baseline_accuracy - 1e-9, (budget, r)
        assert r.n_calibration + r.n_heldout == pool.n_problems
        assert sum(r.bin_n_heldout) == r.n_heldout
        assert len(r.bin_k) == r.n_bins == len(r.thresholds) + 1
        assert set(r.bin_k) <= set(r.ks)
        assert r.heldout_ci[0] <= r.heldout_accuracy <= r.heldout_ci[1]
    # Between grid points uniform must round down; the allocation moves the spare votes to the
    # bin where they help (and off the bin where a consistent wrong answer makes votes hurt).
    r = allocate(pool, 6)
    assert r.baseline_k == 4
    assert r.gain > 0 and r.gain_ci[0] > 0
    r = allocate(pool, 8, pilot=4)  # a 4-sample pilot separates the kinds better
    assert r.baseline_k == 8
    assert r.gain > 0 and r.cost <= 8


def test_full_budget_equals_uniform_max_k():
    # Without the consistent-wrong kind, a bigger vote helps every bin, so max k everywhere wins.
    pool = mixed_pool(consistent=False)
    r = allocate(pool, N)
    assert r.bin_k == (N,) * r.n_bins
    assert r.baseline_k == N
    assert r.heldout_accuracy == pytest.approx(r.baseline_accuracy)
    assert r.cost == pytest.approx(r.baseline_cost) == pytest.approx(N)
    assert r.gain == pytest.approx(0.0)


def test_full_budget_never_worse_than_uniform_in_expectation(pool):
    r = allocate(pool, 1000)
    assert r.baseline_k == N
    assert r.cost <= N + 1e-9
    # With a consistent wrong answer a big vote hurts the hard bin, so the allocation can only
    # gain on the calibration estimate (it could pick max k everywhere).
    assert r.expected_accuracy >= r.baseline_expected_accuracy - 0.05


def test_budget_below_pilot_cost_raises(pool):
    with pytest.raises(AllocationError, match="pilot"):
        allocate(pool, 1.5)
    with pytest.raises(ValueError):
        allocate(pool, 1.0, pilot=2)
    with pytest.raises(UserError):
        allocate(pool, 3.0, pilot=4)
    allocate(pool, 1.0, pilot=1)  # a 1-sample pilot fits a 1-sample budget


def test_bad_inputs_raise(pool):
    with pytest.raises(AllocationError):
        allocate(pool, 4, unit="tokens")  # type: ignore[arg-type]
    with pytest.raises(AllocationError):
        allocate(pool, 4, pilot=N + 1)
    with pytest.raises(AllocationError):
        allocate(pool, -1)


def test_deterministic_for_a_seed(pool):
    a = allocation_curve(pool, [2, 4, 8], seed=3)
    b = allocation_curve(pool, [2, 4, 8], seed=3)
    assert a == b
    c = allocate(pool, 4, seed=4)
    assert (c.n_heldout, c.heldout_accuracy) != (a[1].n_heldout, a[1].heldout_accuracy)


def test_curve_matches_allocate_and_is_monotone_in_budget(pool):
    budgets = [2, 3, 4, 8, 16]
    curve = allocation_curve(pool, budgets)
    assert [r.budget for r in curve] == budgets
    assert curve[2] == allocate(pool, 4)
    expected = [r.expected_accuracy for r in curve]
    assert all(x <= y + 1e-12 for x, y in itertools.pairwise(expected))
    assert all(r.cost <= r.budget + 1e-9 for r in curve)


def test_usd_budget_uses_per_problem_costs(pool):
    rng = np.random.default_rng(1)
    per_problem = rng.uniform(0.001, 0.003, pool.n_problems)
    priced = dataclasses.replace(pool, cost_usd=np.where(pool.valid, per_problem[:, None], 0.0))
    for budget in (0.006, 0.01, 0.02):
        r = allocate(priced, budget, unit="usd")
        assert r.unit == "usd"
        assert r.cost <= budget + 1e-12
        assert r.baseline_cost <= budget + 1e-12
    with pytest.raises(AllocationError, match="pilot"):
        allocate(priced, 0.002, unit="usd")
    # All-zero costs fall back to one unit per sample.
    free = dataclasses.replace(pool, cost_usd=np.zeros_like(pool.cost_usd))
    r = allocate(free, 4, unit="usd")
    assert r.unit == "samples" and r.cost <= 4 + 1e-9


def test_oracle_pilot_and_single_bin(pool):
    oracle = allocate(pool, 4, use_oracle_pilot=True)
    assert oracle.use_oracle_pilot and oracle.cost <= 4 + 1e-9
    one = allocate(pool, 4, bins=1)
    assert one.n_bins == 1 and one.thresholds == ()
    # One bin: the best single k that fits (with the pilot's 2 samples paid), i.e. 4.
    assert one.bin_k == (4,) and one.heldout_accuracy == pytest.approx(one.baseline_accuracy)


def test_tied_scores_merge_empty_bins():
    # Every pilot agrees: one score value, so quantile bins collapse into one.
    pool = pool_from_answers([[0] * 8 for _ in range(10)] + [[1] * 8 for _ in range(10)], {0})
    r = allocate(pool, 4, bins=3)
    assert r.n_bins == 1 and r.cost <= 4


def test_thresholds_split_skewed_ties():
    from infereco.allocation import _fit_thresholds

    # Most pilots disagree (0.5), a few agree (1.0): the quantiles both land on 0.5, yet the two
    # groups must still get separate bins (the case of a real 30-problem store).
    cuts = _fit_thresholds(np.array([0.5] * 12 + [1.0] * 3), 3)
    assert cuts.tolist() == [0.75]
    cuts = _fit_thresholds(np.linspace(0, 1, 90), 3)
    assert len(cuts) == 2 and 0.3 < cuts[0] < 0.37 and 0.63 < cuts[1] < 0.7
    assert _fit_thresholds(np.ones(5), 3).size == 0


def test_cli_allocate_prints_the_comparison_and_refuses_an_ambiguous_store(tmp_path) -> None:
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from infereco.records import RequestRecord, SampleRecord
    from infereco.store import Store

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    db_path = tmp_path / "a.db"
    rng = __import__("random").Random(1)
    with Store(db_path) as db:
        for run in ("r1", "r2"):
            db.ensure_run(run, run, {})
            db.add_problems(run, [__import__("infereco").Problem(f"p{p}", "q", "1") for p in range(12)])
            for p in range(12):
                pid = f"p{p}"
                samples = []
                for i in range(8):
                    ok = rng.random() < (0.9 if p % 2 else 0.35)
                    samples.append(SampleRecord(pid, "sample", i, f"{pid}-{i}", "t", "stop", "1" if ok else str(2 + i % 3),
                                                ok, 10, 0, 5, 0, 0.1, 0.001, None))  # fmt: skip
                db.record_request(run, RequestRecord(f"{pid}-{i}", pid, "sample", 0, 8, None, 0.1, 0.1, 80, 0, 40, 0.008),
                                  samples)  # fmt: skip
    cmd = [sys.executable, "-m", "infereco.cli", "allocate", str(db_path), "--budget", "3", "--budget", "6"]
    ambiguous = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert ambiguous.returncode == 2 and "--run" in ambiguous.stderr and len(ambiguous.stderr.splitlines()) == 1
    done = subprocess.run(cmd + ["--run", "r1", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert [r["budget"] for r in results] == [3.0, 6.0]
    assert all(r["cost"] <= r["budget"] + 1e-9 for r in results)
