"""Strategies that draw N independent samples and then pick: repeated sampling, majority vote, pass@N.

All three draw the same pool (step "sample", indices 0..N-1), so their curves for every k ≤ N come
from one set of samples; they differ only in how a single final answer is chosen:
- `repeated`: the first sample's answer (what one attempt gets you; the pool feeds pass@k curves);
- `majority`: the most frequent extracted answer (self-consistency); ties broken by a seeded coin;
- `pass@n`: an oracle that is right if any sample is right: the ceiling a perfect verifier could
  reach (coverage), useful as an upper bound, not as a deployable strategy.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from infereco.records import SampleRecord
from infereco.strategies.base import SamplingContext, StrategyResult

STEP = "sample"


def plurality(samples: list[SampleRecord], rng: random.Random) -> tuple[str | None, dict[str, int]]:
    """The most frequent non-empty answer (ties broken by `rng`) and the vote counts."""
    votes = Counter(s.answer for s in samples if s.answer is not None)
    if not votes:
        return None, {}
    top = max(votes.values())
    tied = sorted(a for a, c in votes.items() if c == top)
    return rng.choice(tied), dict(votes)


@dataclass(frozen=True)
class RepeatedSampling:
    n: int
    name: str = "repeated"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "n": self.n}

    async def solve(self, ctx: SamplingContext) -> StrategyResult:
        samples = await ctx.sample(STEP, self.n, partial=True)
        first = samples[0]
        return StrategyResult(first.answer, first.correct, {"correct_samples": sum(s.correct for s in samples)})


@dataclass(frozen=True)
class MajorityVote:
    n: int
    seed: int = 0
    name: str = "majority"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "n": self.n}

    async def solve(self, ctx: SamplingContext) -> StrategyResult:
        samples = await ctx.sample(STEP, self.n, partial=True)
        rng = random.Random(f"{self.seed}:{ctx.problem.id}")
        answer, votes = plurality(samples, rng)
        # the verdict of the first sample with the winning answer: the one that would be submitted.
        # Equal answers are equally right for a numeric or math checker; programs that behave
        # alike on the prompt's examples (a code vote) may still differ on the hidden tests.
        correct = answer is not None and next(s.correct for s in samples if s.answer == answer)
        return StrategyResult(answer, correct, {"votes": votes})


@dataclass(frozen=True)
class OracleBestOfN:
    n: int
    name: str = "pass@n"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "n": self.n}

    async def solve(self, ctx: SamplingContext) -> StrategyResult:
        samples = await ctx.sample(STEP, self.n, partial=True)
        winner = next((s for s in samples if s.correct), samples[0])
        return StrategyResult(winner.answer, winner.correct, {"oracle": True})
