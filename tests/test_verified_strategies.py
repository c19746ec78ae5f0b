"""Verifier-guided selection: best-of-N, weighted majority, Best-of-Majority."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from fakeserver import FakeServer
from infereco import Problem
from infereco.api import run as api_run
from infereco.errors import UserError
from infereco.records import SampleRecord
from infereco.strategies import make_strategy
from infereco.strategies.verified import BestOfMajority, BestOfN, WeightedMajority


class _Ctx:
    """A SamplingContext over fixed samples (no store, no model)."""

    def __init__(self, samples: list[tuple[str, str, bool]]) -> None:
        self.problem = Problem("p", "q", "11")
        self.checker = None
        self._samples = [
            SampleRecord("p", "sample", i, "k", text, "stop", answer, ok, 1, 0, 1, 0, 0.1, 0.0, None)
            for i, (text, answer, ok) in enumerate(samples)
        ]

    def messages(self) -> list[dict[str, str]]:
        return []

    async def sample(self, step: str, n: int, messages=None, params=None, *, role="main", partial=False) -> list[SampleRecord]:
        return self._samples[:n]


# one right answer with clean arithmetic, a frequent wrong answer with a slip, a rare wrong answer
# whose (wrong-plan) arithmetic is flawless: the trap best-of-N falls into and BoM does not
POOL = [
    ("2 * 3 = 6\n5 + 6 = 11\nAnswer: 11", "11", True),
    ("2 * 3 = 6\n5 + 6 = 11\nAnswer: 11", "11", True),
    ("2 * 3 = 6\n5 + 6 = 12\nAnswer: 12", "12", False),
    ("2 * 3 = 6\n5 + 6 = 12\nAnswer: 12", "12", False),
    ("2 * 3 = 6\n5 + 6 = 12\nAnswer: 12", "12", False),
    ("3 + 4 = 7\nAnswer: 7", "7", False),
]


def _solve(strategy) -> tuple[str | None, bool | None]:
    result = asyncio.run(strategy.solve(_Ctx(POOL)))
    return result.answer, result.correct


def test_weighted_majority_outvotes_a_frequent_answer_with_bad_arithmetic() -> None:
    # plain majority would say 12 (3 votes); its samples score 0.5 each (1.5) vs 11's 2 x 1.0
    assert _solve(WeightedMajority(6)) == ("11", True)


def test_best_of_majority_ignores_a_rare_answer_the_verifier_likes() -> None:
    bom = BestOfMajority(6, threshold=0.3)  # needs 2 of 6 samples to agree
    assert _solve(bom) == ("11", True)
    # best-of-N ties 11 and the rare 7 at score 1.0 and flips a coin between them
    answers = {asyncio.run(BestOfN(6, seed=s).solve(_Ctx(POOL))).answer for s in range(20)}
    assert answers == {"11", "7"}


def test_oracle_best_of_n_is_right_whenever_any_sample_is(tmp_path: Path) -> None:
    with FakeServer() as fake:
        result = api_run(
            "arithmetic", level=1, limit=6, n=4, max_n=2, backend="openai", base_url=fake.base_url, model="fake",
            input_price=0.0, output_price=0.0, store=tmp_path / "s.db", strategy="bon", verifier="oracle",
        )  # fmt: skip
    summary = result.summary
    assert summary["final_accuracy"]["mean"] == pytest.approx(summary["coverage"]["mean"])
    assert result.pool.config["strategy"] == {"name": "bon", "n": 4, "verifier": {"name": "oracle"}}


def test_unknown_verifier_is_a_one_line_input_error() -> None:
    with pytest.raises(UserError, match="--verifier 'psychic'"):
        make_strategy("bon", 4, verifier="psychic")


class _TableVerifier:
    """Scores a solution by a fixed table of answers: a reward model with a known bias."""

    name = "table"
    role = None

    def __init__(self, table: dict[str, float]) -> None:
        self.table = table

    def describe(self) -> dict[str, str]:
        return {"name": self.name}

    async def score(self, ctx: object, text: str) -> float:
        return self.table[text]

    async def score_steps(self, ctx: object, steps: list[str]) -> float:
        raise NotImplementedError


def _draws(n: int, seed: int) -> list[tuple[str, str, bool]]:
    """n answers: right 50%, a common wrong one 45%, a rare wrong one 5% (the text is the answer)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        u = rng.random()
        answer = "11" if u < 0.5 else ("12" if u < 0.95 else "7")
        out.append((answer, answer, answer == "11"))
    return out


def test_best_of_n_falls_with_n_under_a_reward_model_that_likes_a_rare_wrong_answer_and_bom_does_not() -> None:
    verifier = _TableVerifier({"11": 0.8, "12": 0.3, "7": 0.95})  # the rare wrong answer scores highest

    def accuracy(cls: type, n: int) -> float:
        strategy = cls(n, verifier, 0)
        right = [asyncio.run(strategy.solve(_Ctx(_draws(n, seed)))).correct for seed in range(400)]
        return sum(right) / len(right)

    bon = {n: accuracy(BestOfN, n) for n in (1, 4, 16, 64)}
    bom = {n: accuracy(BestOfMajority, n) for n in (1, 4, 16, 64)}
    # past a few samples, more samples are more chances to meet the trap: 0.95^N of escaping it
    assert bon[4] > bon[16] > bon[64] and bon[64] < 0.1
    # BoM keeps only answers at least 1/8 of the samples agree on: with N the trap falls under that
    assert bom[64] > bom[16] > bom[4] - 0.03 and bom[64] > 0.9


def test_submitting_k_answers_scores_pass_at_k() -> None:
    # the trap: BoN's single answer is the rare 7; its top two are 7 and the right 11
    one = asyncio.run(BestOfN(6, seed=0).solve(_Ctx(POOL)))
    two = asyncio.run(BestOfN(6, seed=0, submit=2).solve(_Ctx(POOL)))
    assert two.correct and two.info["submitted"][0] == one.answer and len(two.info["submitted"]) == 2
    verifier = _TableVerifier({"11": 0.8, "12": 0.3, "7": 0.95})

    def accuracy(submit: int) -> float:
        strategy = BestOfMajority(8, verifier, 0, submit)
        return sum(bool(asyncio.run(strategy.solve(_Ctx(_draws(8, s)))).correct) for s in range(300)) / 300

    assert accuracy(2) > accuracy(1)  # a second submission recovers problems the first got wrong
    assert make_strategy("bom", 8, submit=3).describe()["submit"] == 3
    assert "submit" not in make_strategy("bom", 8).describe()  # runs stored before the option keep their id
    with pytest.raises(UserError, match="--submit"):
        make_strategy("bon", 4, submit=0)


def test_submit_is_stored_and_resumed(tmp_path: Path) -> None:
    from infereco.api import resume

    store = tmp_path / "k.db"
    with FakeServer(p_correct=0.4) as fake:
        first = api_run("arithmetic", level=1, limit=4, n=4, max_n=4, backend="openai", base_url=fake.base_url,
                        model="fake", input_price=0.0, output_price=0.0, store=store, strategy="weighted",
                        verifier="oracle", search={"submit": 2})  # fmt: skip
        again = resume(store, first.run_id)
    assert first.pool.config["strategy"]["submit"] == 2 and again.run_id == first.run_id
    assert again.summary["final_accuracy"]["mean"] == first.summary["final_accuracy"]["mean"]
