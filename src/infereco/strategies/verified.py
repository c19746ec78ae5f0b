"""Strategies that pick among N samples with a verifier's scores.

- `bon` (best-of-N): the sample the verifier scores highest;
- `weighted` (weighted majority): the answer whose samples' scores sum highest;
- `bom` (Best-of-Majority): among answers at least `threshold` × N samples agree on, the one whose
  best sample scores highest; unlike best-of-N it cannot be captured by a single rare answer the
  verifier happens to like, which is why it does not degrade as N grows.
All draw the same pool as majority vote (step "sample"), so they can be compared at equal cost; ties
are broken by a seeded coin per problem.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from infereco.records import SampleRecord
from infereco.strategies.base import SamplingContext, StrategyResult
from infereco.strategies.sampling import STEP
from infereco.verifiers import ArithmeticVerifier, Verifier


def _ranked(rng: random.Random, scored: dict[str, float]) -> list[str]:
    """Answers best first; ties in a seeded random order."""
    order = {a: rng.random() for a in sorted(scored)}
    return sorted(scored, key=lambda a: (-scored[a], order[a]))


def _correct(samples: list[SampleRecord], answer: str | None) -> bool:
    return answer is not None and any(s.correct for s in samples if s.answer == answer)


@dataclass(frozen=True)
class _Verified:
    n: int
    verifier: Verifier = field(default_factory=ArithmeticVerifier)
    seed: int = 0
    #: k answers submitted per problem (pass@k scoring: right if any of them is); 1 = one answer
    submit: int = 1

    def describe(self) -> dict[str, Any]:
        out = {"name": self.name, "n": self.n, "verifier": self.verifier.describe()}  # type: ignore[attr-defined]
        if self.submit != 1:  # left out at 1, so runs stored before the option keep their id
            out["submit"] = self.submit
        return out

    def _result(self, samples: list[SampleRecord], rng: random.Random, scored: dict[str, float], **info: Any) -> StrategyResult:
        """The best-ranked answer; right if any of the top `submit` answers is right."""
        top = _ranked(rng, scored)[: self.submit]
        if self.submit != 1:
            info["submitted"] = top
        answer = top[0] if top else None
        return StrategyResult(answer, any(_correct(samples, a) for a in top), info)

    async def _scored(self, ctx: SamplingContext) -> tuple[list[SampleRecord], list[float], random.Random]:
        # a problem budget that runs out part-way leaves fewer samples: select among those
        samples = await ctx.sample(STEP, self.n, partial=True)
        texts = list(dict.fromkeys(s.text for s in samples))  # equal solutions are scored once
        by_text = dict(zip(texts, await asyncio.gather(*(self.verifier.score(ctx, t) for t in texts)), strict=True))
        scores = [by_text[s.text] for s in samples]
        return samples, scores, random.Random(f"{self.seed}:{ctx.problem.id}")


@dataclass(frozen=True)
class BestOfN(_Verified):
    name: str = "bon"

    async def solve(self, ctx: SamplingContext) -> StrategyResult:
        samples, scores, rng = await self._scored(ctx)
        best: dict[str, float] = {}
        for s, v in zip(samples, scores, strict=True):
            if s.answer is not None:
                best[s.answer] = max(best.get(s.answer, -math.inf), v)
        return self._result(samples, rng, best, scores=scores)


@dataclass(frozen=True)
class WeightedMajority(_Verified):
    name: str = "weighted"

    async def solve(self, ctx: SamplingContext) -> StrategyResult:
        samples, scores, rng = await self._scored(ctx)
        weight: dict[str, float] = defaultdict(float)
        for s, v in zip(samples, scores, strict=True):
            if s.answer is not None:
                weight[s.answer] += v
        return self._result(samples, rng, dict(weight), weights=dict(weight))


@dataclass(frozen=True)
class BestOfMajority(_Verified):
    threshold: float = 0.125
    name: str = "bom"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "threshold": self.threshold}

    async def solve(self, ctx: SamplingContext) -> StrategyResult:
        samples, scores, rng = await self._scored(ctx)
        count: dict[str, int] = defaultdict(int)
        best: dict[str, float] = {}
        for s, v in zip(samples, scores, strict=True):
            if s.answer is not None:
                count[s.answer] += 1
                best[s.answer] = max(best.get(s.answer, -math.inf), v)
        need = max(1, math.ceil(self.threshold * len(samples)))
        kept = {a: v for a, v in best.items() if count[a] >= need} or best  # nobody frequent: fall back to BoN
        return self._result(samples, rng, kept, kept=sorted(kept), counts=dict(count))
