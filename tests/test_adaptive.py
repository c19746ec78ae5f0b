"""Adaptive sampling stops early where the vote has converged and spends the maximum where it cannot."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from pathlib import Path

import pytest

from fakeserver import FakeServer
from infereco import Problem
from infereco import api
from infereco.api import run as api_run
from infereco.errors import UserError
from infereco.records import SampleRecord
from infereco.strategies import make_strategy
from infereco.strategies.adaptive import AdaptiveVote, leader_confidence


class _Draws:
    """A SamplingContext whose samples come from a fixed answer distribution (no model)."""

    def __init__(self, weights: dict[str, float], seed: int, right: str = "1") -> None:
        rng = random.Random(seed)
        answers = rng.choices(list(weights), weights=list(weights.values()), k=64)
        self.problem = Problem(f"p{seed}", "q", right)
        self.samples = [SampleRecord(self.problem.id, "sample", i, "k", a, "stop", a, a == right, 1, 0, 1, 0, 0.0, 0.0, None)
                        for i, a in enumerate(answers)]  # fmt: skip
        self.asked = 0

    async def sample(self, step: str, n: int, messages=None, params=None, *, role="main", partial=False):
        self.asked = max(self.asked, n)
        return self.samples[:n]


def _used(weights: dict[str, float], **kw: object) -> list[int]:
    strategy = AdaptiveVote(16, **kw)  # type: ignore[arg-type]
    return [asyncio.run(strategy.solve(_Draws(weights, seed))).info["samples_used"] for seed in range(200)]


@pytest.mark.parametrize("rule", ["beta", "margin"])
def test_easy_problems_stop_early_and_split_ones_use_the_maximum(rule: str) -> None:
    easy = _used({"1": 0.95, "2": 0.05}, rule=rule)
    split = _used({"1": 0.5, "2": 0.5}, rule=rule)
    assert sum(easy) / len(easy) < 6  # most stop after a round or two
    assert sum(split) / len(split) > 2 * sum(easy) / len(easy)
    if rule == "beta":  # 95% sure the leader is the mode: a coin flip rarely looks that settled
        assert sum(u == 16 for u in split) / len(split) > 0.6
    # (a lead of 4 votes is a weaker rule: a fair coin's random walk reaches it within 16 draws
    # about 60% of the time, which is why beta is the default)


def test_the_beta_rule() -> None:
    assert leader_confidence({"a": 4.0}) == pytest.approx(1 - 0.5**5)  # P(X > 1/2), X ~ Beta(5, 1)
    assert leader_confidence({"a": 3.0, "b": 3.0}) == pytest.approx(0.5)
    assert leader_confidence({}) == 0.0


def test_adaptive_answers_like_majority_over_what_it_drew() -> None:
    ctx = _Draws({"1": 0.7, "2": 0.3}, seed=3)
    result = asyncio.run(AdaptiveVote(16).solve(ctx))
    used = result.info["samples_used"]
    assert ctx.asked == used and result.info["stopped"] in ("converged", "max_n")
    votes = {a: sum(s.answer == a for s in ctx.samples[:used]) for a in ("1", "2")}
    assert result.answer == max(votes, key=votes.get)  # type: ignore[arg-type]


def test_bad_options_are_input_errors() -> None:
    with pytest.raises(UserError, match="--stop-rule"):
        make_strategy("adaptive", 8, rule="vibes")
    with pytest.raises(UserError, match="--stop-confidence"):
        make_strategy("adaptive", 8, confidence=1.0)


def test_adaptive_shares_the_majority_pool_and_reports_samples_used(tmp_path: Path) -> None:
    store = tmp_path / "a.db"
    with FakeServer(p_correct=0.9) as fake:
        options = dict(level=1, limit=6, backend="openai", model="fake", base_url=fake.base_url, max_n=2,
                       input_price=1.0, output_price=1.0, store=store)  # fmt: skip
        result = api_run("arithmetic", strategy="adaptive", n=16, **options)  # type: ignore[arg-type]
        with sqlite3.connect(store) as conn:  # the samples are kept in the pool majority shares
            used = {pid: json.loads(info)["samples_used"] for pid, info in
                    conn.execute("SELECT problem_id, info_json FROM results WHERE run_id=?", (result.run_id,))}  # fmt: skip
            stored = dict(conn.execute("SELECT problem_id, COUNT(*) FROM samples GROUP BY problem_id").fetchall())
        fixed = api_run("arithmetic", strategy="majority", n=16, **options)  # type: ignore[arg-type]
        again = api.load_results(store, [result.run_id])[0]
    assert result.totals["problems_done"] == 6 and used == stored  # each problem's samples, as reported
    assert result.summary["mean_samples_used"] == pytest.approx(sum(used.values()) / 6)
    assert min(used.values()) >= 2 and sum(used.values()) < 6 * 16  # a 90%-right model converges early
    assert fixed.totals["samples"] == 6 * 16
    # majority filled the shared pool to 16; adaptive is still charged only the samples it used
    assert again.totals["samples"] == sum(used.values()) and again.totals["cost_usd"] == pytest.approx(result.totals["cost_usd"])
    assert fixed.totals["cost_usd"] > again.totals["cost_usd"]


def test_the_adaptive_flags_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from infereco.cli import main as cli_main

    with FakeServer(p_correct=0.9) as fake:
        cli_main(["run", "--strategy", "adaptive", "--n", "12", "--round-size", "3", "--stop-rule", "margin",
                  "--stop-margin", "3", "--level", "1", "--limit", "3", "--backend", "openai", "--model", "fake",
                  "--base-url", fake.base_url, "--input-price", "0", "--output-price", "0",
                  "--store", str(tmp_path / "a.db"), "--json"])  # fmt: skip
    assert json.loads(capsys.readouterr().out)["totals"]["problems_done"] == 3
    with sqlite3.connect(tmp_path / "a.db") as conn:
        config = json.loads(conn.execute("SELECT config_json FROM runs WHERE status != 'pool'").fetchone()[0])
        assert config["strategy"] == {"name": "adaptive", "n": 12, "round_size": 3, "rule": "margin", "margin": 3.0}
        counts = [c for (c,) in conn.execute("SELECT COUNT(*) FROM samples GROUP BY problem_id")]
    assert all(c % 3 == 0 for c in counts)  # whole rounds of 3
