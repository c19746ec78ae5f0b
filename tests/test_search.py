"""Step-level search (beam, particle filtering, entropic PF) on a synthetic step tree, and through the runner."""

from __future__ import annotations

import asyncio
import math
import random
import sqlite3
from pathlib import Path

import pytest

from fakeserver import FakeServer
from infereco.api import run as api_run
from infereco.errors import UserError
from infereco.strategies import make_strategy
from infereco.strategies.base import BudgetSpent
from infereco.strategies.search import (
    Partial,
    beam_search,
    expand_all,
    normalized_entropy,
    particle_filter,
    softmax,
    systematic_resample,
)
from steptree import StepTree

TRIALS = 300  # problems per configuration: a standard error of about 0.03 on an accuracy


def _accuracy(kind: str, n: int, *, temperature: float = 0.3, entropy_floor: float | None = None,
              **tree: object) -> tuple[float, float, int]:  # fmt: skip
    """Mean accuracy, mean weight entropy (PF only) and rollouts of one algorithm over TRIALS trees."""

    async def one(seed: int) -> tuple[bool, list[float], int]:
        env = StepTree(seed=seed, **tree)  # type: ignore[arg-type]
        rng = random.Random(seed)
        if kind == "greedy":  # keep 1, extend it N ways
            outcome = await beam_search(env, n, n, 10, rng)
        elif kind == "beam":
            outcome = await beam_search(env, n, 4, 10, rng)
        else:
            outcome = await particle_filter(env, n, 10, rng, temperature, entropy_floor)
        assert outcome.best is not None
        return bool(env.answer(outcome.best)[1]), outcome.trace.get("entropy", []), env.expansions

    async def all_trials() -> list[tuple[bool, list[float], int]]:
        return [await one(seed) for seed in range(TRIALS)]

    results = asyncio.run(all_trials())
    entropies = [e for _, es, _ in results for e in es]
    return (sum(ok for ok, _, _ in results) / TRIALS, sum(entropies) / max(len(entropies), 1),
            sum(x for _, _, x in results))  # fmt: skip


def test_particle_filtering_degrades_least_as_the_verifier_gets_noisier() -> None:
    rows = {noise: {k: _accuracy(k, 8, noise=noise) for k in ("greedy", "beam", "pf")} for noise in (0.0, 0.5, 1.0)}
    for noise in (0.5, 1.0):
        acc = {k: v[0] for k, v in rows[noise].items()}
        assert acc["pf"] >= acc["beam"] >= acc["greedy"], (noise, acc)
    # equal rollouts: every method generates N steps per step of depth
    assert rows[1.0]["pf"][2] == rows[1.0]["beam"][2] == rows[1.0]["greedy"][2]
    drop = {k: rows[0.0][k][0] - rows[1.0][k][0] for k in ("greedy", "beam", "pf")}
    assert drop["pf"] < drop["beam"] < drop["greedy"], drop
    # and every one of them beats a blind draw (0.6 ** 4 = 0.13) under a useful verifier
    assert min(rows[0.5][k][0] for k in rows[0.5]) > 0.6**4 + 0.2


def test_entropic_particle_filtering_keeps_diversity_against_an_overconfident_early_verifier() -> None:
    # the verifier says a flat 0/1 on the first half of the steps and is right only 60% of the time
    # there; plain PF at a low temperature commits to the prefixes it happened to like
    tree = {"noise": 0.2, "early_accuracy": 0.6}
    pf = _accuracy("pf", 8, temperature=0.1, **tree)  # type: ignore[arg-type]
    epf = _accuracy("pf", 8, temperature=0.1, entropy_floor=0.5, **tree)  # type: ignore[arg-type]
    assert epf[1] > pf[1]  # higher weight entropy on average ...
    assert epf[0] > pf[0] + 0.05  # ... and more problems solved with the same 8 particles


def test_resampling_and_weights() -> None:
    rng = random.Random(0)
    weights = softmax([1.0, 0.0, 0.5, 0.0], 0.3)
    assert math.isclose(sum(weights), 1.0)
    counts = [0] * 4
    for _ in range(2000):
        for i in systematic_resample(weights, rng):
            counts[i] += 1
    for i, w in enumerate(weights):  # systematic resampling is unbiased: E[count_i] = N * w_i
        assert counts[i] / (2000 * 4) == pytest.approx(w, abs=0.01)
    assert normalized_entropy([0.25] * 4) == pytest.approx(1.0)
    assert normalized_entropy([1.0, 0.0, 0.0]) == pytest.approx(0.0)


class _CountingTree(StepTree):
    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.calls: list[tuple[tuple[str, ...], int]] = []

    async def expand(self, partial: Partial, m: int) -> list[Partial]:
        self.calls.append((partial.steps, m))
        return await super().expand(partial, m)


def test_identical_prefixes_are_expanded_by_one_request_each() -> None:
    env = _CountingTree(p_step=1.0)  # every step right: all particles share one prefix
    same = [Partial(("R",))] * 5 + [Partial(("R", "R"), done=True)]
    grown = asyncio.run(expand_all(env, same))
    assert env.calls == [(("R",), 5)]  # one call for five continuations, none for the finished one
    assert len(grown) == 6 and grown[0] == Partial(("R", "R"), done=True)


class _BudgetedTree(StepTree):
    """Raises BudgetSpent once `limit` steps were generated, as the runner does at a problem budget."""

    def __init__(self, limit: int, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.limit = limit

    async def expand(self, partial: Partial, m: int) -> list[Partial]:
        if self.expansions + m > self.limit:
            raise BudgetSpent()
        return await super().expand(partial, m)


@pytest.mark.parametrize("kind", ["beam", "pf"])
def test_a_search_stops_at_its_budget_with_the_best_it_has(kind: str) -> None:
    env = _BudgetedTree(limit=20, depth=6)
    rng = random.Random(0)
    if kind == "beam":
        outcome = asyncio.run(beam_search(env, 8, 4, 10, rng))
    else:
        outcome = asyncio.run(particle_filter(env, 8, 10, rng))
    assert outcome.stopped == "budget" and env.expansions <= 20
    assert outcome.best is not None and len(outcome.best.steps) == 2  # 8 + 8 steps fit, a third round not


def test_options_are_checked() -> None:
    with pytest.raises(UserError, match="--max-steps"):
        make_strategy("pf", 4, max_steps=0)
    with pytest.raises(UserError, match="--pf-temperature"):
        make_strategy("epf", 4, temperature=0)
    with pytest.raises(UserError, match="final answers only"):
        asyncio.run(make_strategy("beam", 2, verifier="oracle").verifier.score_steps(None, ["x"]))  # type: ignore[arg-type]
    strategy = make_strategy("epf", 4, max_steps=3)
    assert strategy.describe()["entropy_floor"] == 0.5 and strategy.describe()["max_steps"] == 3


def test_particle_filtering_through_the_runner_stores_steps_and_resumes_for_free(tmp_path: Path) -> None:
    store = tmp_path / "pf.db"
    options = dict(level=1, limit=3, backend="openai", model="fake", input_price=1.0, output_price=2.0, store=store)
    with FakeServer() as fake:
        first = api_run("arithmetic", strategy="pf", n=4, max_n=4, base_url=fake.base_url, **options)  # type: ignore[arg-type]
        sent = len(fake.model.keys)
        again = api_run("arithmetic", strategy="pf", n=4, max_n=4, base_url=fake.base_url, **options)  # type: ignore[arg-type]
        assert len(fake.model.keys) == sent  # every step is stored under its prefix: nothing is asked twice
        other_n = api_run("arithmetic", strategy="pf", n=2, max_n=4, base_url=fake.base_url, **options)  # type: ignore[arg-type]
    assert first.run_id == again.run_id != other_n.run_id  # each N of a search is its own run
    with sqlite3.connect(store) as conn:
        steps = {r[0] for r in conn.execute("SELECT step FROM requests WHERE run_id=?", (first.run_id,))}
        results = conn.execute("SELECT COUNT(*) FROM results WHERE run_id=?", (first.run_id,)).fetchone()[0]
    assert steps and all(s.startswith("step/0/") for s in steps)  # the fake answers in one step
    assert results == 3
    assert first.summary["final_accuracy"]["mean"] == first.summary["accuracy"]["mean"]
    assert first.totals["cost_usd"] > 0
