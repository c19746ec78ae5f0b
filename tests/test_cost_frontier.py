"""Cost-of-pass frontier: hand-checked cases and the properties the paper's framing implies."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infereco.cost_frontier import HUMAN, Option, contributions, counterfactual, frontier, frontier_cost, options_from_summaries


def _opt(model: str, strategy: str, k: int, acc: float, usd: float) -> Option:
    cop = usd / acc if acc > 0 else math.inf
    return Option(f"{model}/{strategy}", model, strategy, k, acc, usd, cop, cop, cop)


def test_hand_computed_frontier_and_contributions() -> None:
    options = [
        _opt("big", "majority", 1, 0.8, 0.010),  # $0.0125 per pass
        _opt("big", "majority", 4, 0.9, 0.040),  # $0.0444
        _opt("small", "majority", 1, 0.3, 0.001),  # $0.00333: the frontier
        _opt("small", "majority", 8, 0.5, 0.008),  # $0.016
        _opt("tiny", "majority", 1, 0.0, 0.0001),  # never right: ∞
    ]
    best = frontier(options)
    assert best is not None and best.model == "small" and best.k == 1
    assert frontier_cost(options) == pytest.approx(0.001 / 0.3)
    assert counterfactual(options, drop_model="small") == pytest.approx(0.0125)
    rows = {(r["kind"], r["name"]): r for r in contributions(options)}
    assert rows[("model", "small")]["contribution"] == pytest.approx(0.0125 - 0.001 / 0.3)
    assert rows[("model", "big")]["contribution"] == 0 and rows[("model", "tiny")]["contribution"] == 0
    assert math.isinf(rows[("strategy", "majority")]["without"])


def test_infinite_options_are_never_on_the_frontier_unless_all_are() -> None:
    assert frontier([_opt("a", "m", 1, 0.0, 1.0), _opt("b", "m", 1, 0.5, 9.0)]).model == "b"  # type: ignore[union-attr]
    assert frontier([_opt("a", "m", 1, 0.0, 1.0)]) is None and math.isinf(frontier_cost([_opt("a", "m", 1, 0.0, 1.0)]))


def test_a_human_expert_is_an_option_always_right_at_its_price() -> None:
    summaries = [{
        "label": "run", "config": {"backend": {"model": "m"}, "strategy": {"name": "majority"}}, "ks": [1, 2],
        "cost": {"per_sample_usd": 1.0}, "majority_at_k": {"mean": [0.1, 0.2]},
        "cost_of_pass_at_k": {"majority_at_k": {"mean": [10.0, 10.0], "lo": [5.0, 6.0], "hi": [20.0, "inf"]}},
    }]  # fmt: skip
    options = options_from_summaries(summaries, human_cost=4.0)
    assert [o.usd_per_problem for o in options] == [1.0, 2.0, 4.0]
    assert frontier(options).model == HUMAN  # type: ignore[union-attr]
    assert math.isinf(options[1].cop_hi)
    assert frontier(options_from_summaries(summaries, human_cost=50.0)).model == "m"  # type: ignore[union-attr]


_option = st.builds(
    _opt,
    st.sampled_from(["a", "b", "c"]),
    st.sampled_from(["majority", "repeated"]),
    st.integers(1, 64),
    st.floats(0, 1),
    st.floats(1e-6, 10),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_option, min_size=1, max_size=12), _option)
def test_adding_an_option_never_raises_the_frontier(options: list[Option], extra: Option) -> None:
    assert frontier_cost(options + [extra]) <= frontier_cost(options)


@settings(max_examples=200, deadline=None)
@given(st.lists(_option, min_size=1, max_size=12))
def test_a_counterfactual_frontier_is_never_below_the_full_one(options: list[Option]) -> None:
    full = frontier_cost(options)
    for name in ("a", "b", "c"):
        assert counterfactual(options, drop_model=name) >= full
    for strategy in ("majority", "repeated"):
        assert counterfactual(options, drop_strategy=strategy) >= full
    assert all(r["contribution"] >= 0 or math.isnan(r["contribution"]) for r in contributions(options))
    random.shuffle(options)
    assert frontier_cost(options) == full  # order does not matter


def test_cli_frontier_on_a_store_writes_the_plot_and_marks_the_cheapest(tmp_path) -> None:
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from infereco import Problem
    from infereco.records import RequestRecord, SampleRecord
    from infereco.store import Store

    root = Path(__file__).resolve().parents[1]
    db_path = tmp_path / "f.db"
    rng = random.Random(2)
    with Store(db_path) as db:
        for run, model, p_right, usd in (("r1", "cheap", 0.4, 0.001), ("r2", "dear", 0.9, 0.02)):
            db.ensure_run(run, f"{model} run", {"backend": {"model": model}, "strategy": {"name": "majority", "n": 4}})
            db.add_problems(run, [Problem(f"p{i}", "q", "1") for i in range(10)])
            for i in range(10):
                samples = [
                    SampleRecord(f"p{i}", "sample", j, f"k{i}", "t", "stop", "1" if ok else "2", ok, 5, 0, 5, 0, 0.1, usd, None)
                    for j, ok in enumerate(rng.random() < p_right for _ in range(4))
                ]  # fmt: skip
                db.record_request(run, RequestRecord(f"k{i}", f"p{i}", "sample", 0, 4, None, 0.1, 0.1, 20, 0, 20, 4 * usd),
                                  samples)  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "infereco.cli", "frontier", str(db_path), "--out", str(out), "--json"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert len(payload["tasks"]) == 1  # both runs were on the same task
    task = payload["tasks"][0]
    assert task["frontier"]["model"] == "cheap" and task["frontier"]["k"] == 1
    assert (out / "frontier.png").stat().st_size > 10_000 and json.loads((out / "frontier.json").read_text())
    dear = next(r for r in task["contributions"] if r["name"] == "dear")
    assert dear["contribution"] == 0


def test_runs_on_different_tasks_get_separate_frontiers() -> None:
    def summary(model: str, task: dict, usd: float) -> dict:
        return {
            "label": model, "config": {"backend": {"model": model}, "strategy": {"name": "majority"}, "task": task},
            "ks": [1], "cost": {"per_sample_usd": usd}, "majority_at_k": {"mean": [0.5]},
        }  # fmt: skip

    from infereco.cost_frontier import by_task

    easy, hard = {"name": "arithmetic", "level": 1}, {"name": "arithmetic", "level": 5}
    options = options_from_summaries([summary("a", easy, 1.0), summary("b", hard, 0.1)], human_cost=5.0)
    groups = by_task(options)
    assert sorted(groups) == ["arithmetic level=1", "arithmetic level=5"]
    assert frontier(groups["arithmetic level=1"]).model == "a"  # type: ignore[union-attr]  # not b: other task
    assert sum(o.model == HUMAN for o in options) == 2  # the expert is an option on each task


def test_dropping_a_family_drops_all_its_models() -> None:
    options = [
        Option("a", "a", "majority", 1, 0.5, 1.0, 2.0, 2.0, 2.0, "t", "small"),
        Option("b", "b", "majority", 1, 0.5, 1.5, 3.0, 3.0, 3.0, "t", "small"),
        Option("c", "c", "majority", 1, 0.5, 5.0, 10.0, 10.0, 10.0, "t", "large"),
    ]
    assert counterfactual(options, drop_family="small") == 10.0
    assert counterfactual(options, drop_model="a") == 3.0  # its sibling b stands in
    rows = {(r["kind"], r["name"]): r["contribution"] for r in contributions(options)}
    assert rows[("family", "small")] == 8.0 and rows[("family", "large")] == 0.0
