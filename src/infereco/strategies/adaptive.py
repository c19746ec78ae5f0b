"""Adaptive sampling: draw samples in rounds and stop a problem once its answer has converged.

Easy problems agree after a few samples; split ones never do. Drawing a round at a time and
stopping when the leading answer is (probably) the mode spends samples where they can change the
vote. Two stopping rules:
- `beta` (default): with a and b the votes (or verifier-score sums) of the two leading answers,
  the posterior probability that the leader is truly more likely than the runner-up,
  P(p_a > p_b) = P(X > 1/2) for X ~ Beta(a + 1, b + 1); stop when it reaches `confidence`;
- `margin`: stop when the leader is `margin` votes ahead of the runner-up.
Rounds draw step "sample" (indices 0, 1, ...) like majority vote, and a rerun with a larger maximum
N extends the same adaptive run; the samples a problem used are reported as `samples_used`.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from scipy.stats import beta as beta_dist

from infereco.errors import UserError
from infereco.records import SampleRecord
from infereco.strategies.base import BudgetSpent, SamplingContext, StrategyResult
from infereco.strategies.sampling import STEP
from infereco.verifiers import Verifier


def leader_confidence(tallies: dict[str, float]) -> float:
    """P(the leading answer is more likely than the runner-up) under a uniform Beta prior."""
    ranked = sorted(tallies.values(), reverse=True)
    if not ranked:
        return 0.0
    a, b = ranked[0], (ranked[1] if len(ranked) > 1 else 0.0)
    return float(beta_dist.sf(0.5, a + 1.0, b + 1.0))


def converged(tallies: dict[str, float], rule: str, confidence: float, margin: float) -> bool:
    if rule == "margin":
        ranked = sorted(tallies.values(), reverse=True) + [0.0, 0.0]
        return ranked[0] - ranked[1] >= margin
    return leader_confidence(tallies) >= confidence


@dataclass(frozen=True)
class AdaptiveVote:
    """Majority (or, with a verifier, weighted majority) over samples drawn until the vote converges."""

    n: int  # the most samples a problem may get
    seed: int = 0
    round_size: int = 2
    rule: str = "beta"
    confidence: float = 0.95
    margin: float = 4.0
    verifier: Verifier | None = None
    name: str = "adaptive"

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "n": self.n, "round_size": self.round_size, "rule": self.rule}
        out.update({"confidence": self.confidence} if self.rule == "beta" else {"margin": self.margin})
        if self.verifier is not None:
            out["verifier"] = self.verifier.describe()
        return out

    async def _tally(self, ctx: SamplingContext, samples: list[SampleRecord]) -> dict[str, float]:
        tallies: dict[str, float] = defaultdict(float)
        if self.verifier is None:
            for s in samples:
                if s.answer is not None:
                    tallies[s.answer] += 1.0
            return dict(tallies)
        scores = await asyncio.gather(*(self.verifier.score(ctx, s.text) for s in samples))
        for s, v in zip(samples, scores, strict=True):
            if s.answer is not None:
                tallies[s.answer] += v
        return dict(tallies)

    async def solve(self, ctx: SamplingContext) -> StrategyResult:
        samples: list[SampleRecord] = []
        tallies: dict[str, float] = {}
        stopped = "max_n"
        while len(samples) < self.n:
            want = min(self.n, len(samples) + self.round_size)
            try:
                samples = await ctx.sample(STEP, want, partial=True)
            except BudgetSpent:
                if not samples:
                    raise
                stopped = "budget"
                break
            tallies = await self._tally(ctx, samples)
            if len(samples) < want:
                stopped = "budget"
                break
            if converged(tallies, self.rule, self.confidence, self.margin):
                stopped = "converged"
                break
        rng = random.Random(f"{self.seed}:{ctx.problem.id}")
        top = max(tallies.values(), default=None)
        answer = rng.choice(sorted(a for a, v in tallies.items() if v == top)) if top is not None else None
        correct = answer is not None and any(s.correct for s in samples if s.answer == answer)
        return StrategyResult(answer, correct, {"samples_used": len(samples), "stopped": stopped, "votes": tallies})


def make_adaptive(n: int, seed: int, verifier: Any = None, **options: Any) -> AdaptiveVote:
    from infereco.verifiers import get_verifier

    options = {k: v for k, v in options.items() if v is not None}
    try:
        strategy = AdaptiveVote(n, seed, verifier=get_verifier(verifier) if verifier else None, **options)
    except TypeError as exc:
        raise UserError(f"--strategy adaptive: {exc}") from None
    if strategy.rule not in ("beta", "margin"):
        raise UserError(f"--stop-rule must be beta or margin, got {strategy.rule!r}")
    if strategy.round_size < 1:
        raise UserError(f"--round-size must be >= 1, got {strategy.round_size}")
    if not 0.5 <= strategy.confidence < 1:
        raise UserError(f"--stop-confidence must be in [0.5, 1), got {strategy.confidence}")
    return strategy
