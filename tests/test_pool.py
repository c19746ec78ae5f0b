"""One pool for every pooled strategy: the same samples for the same (task, model, sampling, seed),
paid for once; a verifier's score of a sample stored once and shared."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fakeserver import FakeServer
from infereco import api
from infereco.store import Store
from infereco.strategies import registry

COMMON = dict(level=1, limit=3, backend="openai", model="fake", max_n=4, input_price=1.0, output_price=2.0)


def _generation_keys(fake: FakeServer) -> list[str]:
    """The pool's requests the server saw, without the run id that prefixes each key."""
    return sorted(k.split("/", 1)[1] for k in fake.model.keys if "|sample|" in k)


def test_a_sweep_of_every_pooled_strategy_sends_the_requests_of_one_n8_run(tmp_path: Path) -> None:
    pooled = [e.name for e in registry.entries() if e.pools_samples]
    assert {"repeated", "majority", "pass@n", "bon", "weighted", "bom", "adaptive"} <= set(pooled)
    with FakeServer(p_correct=0.5) as fake:
        one = api.run("arithmetic", strategy="majority", n=8, store=tmp_path / "one.db", base_url=fake.base_url, **COMMON)
        alone = _generation_keys(fake)
    assert len(alone) == 3 * 2  # 8 samples per problem, 4 per request
    with FakeServer(p_correct=0.5) as fake:
        points = api.sweep("arithmetic", strategies=pooled, budgets=range(1, 9), store=tmp_path / "sweep.db",
                           base_url=fake.base_url, verifier="judge", **COMMON)  # fmt: skip
        swept = _generation_keys(fake)
        judged = [k for k in fake.model.keys if "|sample|" not in k]
    assert swept == alone  # exactly the requests of the one N=8 run
    with Store(tmp_path / "sweep.db") as db:
        pool = db.layout(points[0].run_id).ledger
        texts = db.sample_texts(points[0].run_id)
        assert {db.layout(p.run_id).ledger for p in points} == {pool}  # every pooled strategy reads one pool
    with sqlite3.connect(tmp_path / "sweep.db") as conn:
        stored = conn.execute("SELECT problem_id, text FROM samples WHERE run_id=? AND step='sample'", (pool,)).fetchall()
    assert len(stored) == 3 * 8 and sum(len(v) for v in texts.values()) == 3 * 8
    # each distinct sample judged once, whichever of bon, weighted, bom and adaptive asked first
    assert len(judged) == len(set(stored))
    first = {p.strategy: p.accuracy for p in points if p.n == 1}
    assert len(set(first.values())) == 1, first  # every N=1 point is the same sample
    at_8 = {p.strategy: p for p in points if p.n == 8}
    assert at_8["majority"].usd_per_problem == pytest.approx(one.totals["cost_usd"] / 3)  # the pool, once
    assert at_8["bon"].verifier_usd_per_problem > 0 and at_8["majority"].verifier_usd_per_problem == 0
    cost = {n: next(p.usd_per_problem for p in points if p.strategy == "majority" and p.n == n) for n in range(1, 9)}
    assert all(cost[n] < cost[n + 1] for n in range(1, 8))  # each point pays for its samples 0..N-1 only


def test_pooled_runs_each_keep_their_answers_and_their_share_of_the_cost(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    with FakeServer(p_correct=0.5) as fake:
        majority = api.run("arithmetic", strategy="majority", n=8, store=store, base_url=fake.base_url, **COMMON)
        sent = len(fake.model.keys)
        small = api.run("arithmetic", strategy="pass@n", n=2, store=store, base_url=fake.base_url, **COMMON)
        assert len(fake.model.keys) == sent  # pass@2 reads samples 0..1 of the pool
    assert small.run_id != majority.run_id and small.totals["samples"] == 3 * 2
    assert 0 < small.totals["cost_usd"] < majority.totals["cost_usd"]
    assert small.pool.valid.sum() == 3 * 2 and majority.pool.valid.sum() == 3 * 8
    with Store(store) as db:
        assert [r["run_id"] for r in db.runs()] == [majority.run_id, small.run_id]  # the pool is not a run


def test_the_run_summary_is_typed_and_reads_like_the_dict_it_was(tmp_path: Path) -> None:
    import json

    from infereco.report import to_jsonable
    from infereco.summary import Estimate, RunSummary

    with FakeServer(p_correct=0.5) as fake:
        result = api.run("arithmetic", strategy="majority", n=4, store=tmp_path / "s.db", base_url=fake.base_url, **COMMON)
    summary = result.summary
    assert isinstance(summary, RunSummary) and isinstance(summary.coverage, Estimate)
    assert summary.coverage.mean == summary["coverage"]["mean"] and summary.n_samples == 4 == summary.get("n_samples")
    assert "mean_samples_used" not in summary and summary.get("mean_samples_used") is None  # adaptive only
    assert summary.final_accuracy is not None and 0 <= summary.final_accuracy.mean <= 1
    written = json.loads(json.dumps(to_jsonable(summary)))
    assert written["coverage"]["mean"] == summary.coverage.mean and written["run_id"] == result.run_id
    assert RunSummary.of(written).coverage.mean == summary.coverage.mean  # read back from JSON
    assert api.report(tmp_path / "s.db")[0].label == summary.label
