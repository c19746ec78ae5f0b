"""Efficiency figures: the idealized-runtime fit recovers known costs; FLOPs; old stores migrate."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from infereco.efficiency import efficiency_summary, fit_runtime, flops
from infereco.store import SCHEMA_VERSION, Store


def test_runtime_fit_recovers_prefill_and_decode_costs_and_predicts_held_out_requests() -> None:
    rng = np.random.default_rng(3)
    prompt = rng.integers(20, 2000, size=200)
    output = rng.integers(1, 500, size=200)
    runtime = 0.25 + 0.0008 * prompt + 0.03 * output + rng.normal(0, 0.05, size=200)
    fit = fit_runtime(prompt, output, runtime)
    assert fit is not None
    assert fit.a == pytest.approx(0.25, abs=0.05)
    assert fit.b == pytest.approx(0.0008, rel=0.05) and fit.c == pytest.approx(0.03, rel=0.02)
    assert fit.r2_holdout > 0.99 and fit.n_holdout == 50 and fit.n_fit == 150
    assert fit.predict([1000], [100])[0] == pytest.approx(0.25 + 0.8 + 3.0, rel=0.03)


def test_runtime_fit_needs_requests_to_hold_out() -> None:
    assert fit_runtime([1, 2, 3], [1, 2, 3], [1.0, 2.0, 3.0]) is None


def test_flops_are_two_per_parameter_per_token() -> None:
    assert flops(0.5e9, 1000) == pytest.approx(1e12)
    summary = efficiency_summary([10, 20], [5, 5], [1.0, 2.0], params=1e9)
    assert summary["flops"] == pytest.approx(2e9 * 40) and summary["runtime_fit"] is None
    assert summary["latency_s"]["mean"] == pytest.approx(1.5)
    assert efficiency_summary([10], [5], [1.0])["flops"] is None  # unknown model size: no guess


def test_a_schema_v1_store_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with Store(path):
        pass
    with sqlite3.connect(path) as conn:  # make it look like a v1 store: no `n` in results
        conn.execute("DROP TABLE results")
        conn.execute(
            "CREATE TABLE results (run_id TEXT NOT NULL, problem_id TEXT NOT NULL, answer TEXT, correct INTEGER, "
            "info_json TEXT NOT NULL, PRIMARY KEY (run_id, problem_id))"
        )
        conn.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    with Store(path) as db:
        columns = [row[1] for row in db.conn.execute("PRAGMA table_info(results)")]
        assert "n" in columns
        assert db.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
