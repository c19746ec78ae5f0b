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

from infereco.errors import UserError
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


STRATEGIES = {
    "repeated": "N independent samples; the final answer is the first (pass@k curves come from the pool)",
    "majority": "N samples, the most frequent answer wins (self-consistency)",
    "pass@n": "oracle best-of-N: right if any of N samples is right (coverage; needs a perfect verifier)",
    "bon": "best-of-N by a verifier's score (--verifier arithmetic|oracle)",
    "weighted": "weighted majority: the answer whose verifier scores sum highest",
    "bom": "Best-of-Majority: the best-scored answer among those at least 1/8 of samples agree on",
    "beam": "step-level beam search: keep the N/M best partial solutions by process score, expand each M ways",
    "pf": "particle filtering: N partial solutions resampled each step by softmax(process score / T)",
    "epf": "entropic particle filtering: pf that raises T whenever the weights' entropy falls too low",
    "adaptive": "majority (weighted with --verifier) over samples drawn in rounds until the vote converges, at most N",
    "spec-majority": "majority over N step-wise chains whose steps a small model drafts and the target rates",
}


_UNVERIFIED = ("repeated", "sample", "sampling", "majority", "vote", "self-consistency", "pass@n", "oracle",
               "best-of-n-oracle", "pass@k")


def uses_verifier(name: str) -> bool:
    """Whether a strategy (by CLI name) takes a --verifier."""
    return name.strip().lower() not in _UNVERIFIED


#: step-level searches: each N is its own experiment, and a problem's answer is its one outcome
SEARCH_STRATEGIES = ("beam", "pf", "epf", "spec-majority")


def make_strategy(name: str, n: int, seed: int = 0, verifier: Any = None, **options: Any) -> Any:
    """Build a strategy from its CLI name.

    Verifier strategies take `verifier` (a name, a stored `describe()` dict, or a Verifier; default
    arithmetic); step-level ones (beam, pf, epf) also take their `options` (see strategies.search).
    """
    if n < 1:
        raise UserError(f"--n must be >= 1, got {n}")
    key = name.strip().lower()
    if key in ("bon", "best-of-n", "weighted", "weighted-majority", "bom", "best-of-majority"):
        from infereco.strategies.verified import BestOfMajority, BestOfN, WeightedMajority
        from infereco.verifiers import get_verifier

        cls = {"bon": BestOfN, "best-of-n": BestOfN, "weighted": WeightedMajority, "weighted-majority": WeightedMajority,
               "bom": BestOfMajority, "best-of-majority": BestOfMajority}[key]  # fmt: skip
        submit = 1 if options.get("submit") is None else options["submit"]
        if not isinstance(submit, int) or submit < 1:
            raise UserError(f"--submit must be an integer >= 1, got {submit!r}")
        return cls(n, get_verifier(verifier or "arithmetic"), seed, submit)
    if key in ("beam", "pf", "epf", "particle-filter", "entropic-pf"):
        from infereco.strategies.search import make_search

        return make_search(key, n, seed, verifier, **options)
    if key == "spec-majority" or (key in ("majority", "vote") and options.get("generator")):
        from infereco.strategies.speculative import StepwiseVote

        allowed = {k: v for k, v in options.items() if k in ("max_steps", "delimiter", "generator") and v is not None}
        return StepwiseVote(n, seed, **allowed)
    if key == "adaptive":
        from infereco.strategies.adaptive import make_adaptive

        return make_adaptive(n, seed, verifier, **options)
    if verifier is not None and key in _UNVERIFIED:  # a flag that would silently change nothing
        raise UserError(f"--verifier {verifier!r} applies to bon, weighted, bom, beam, pf, epf and adaptive only; --strategy {name} uses none")
    if key in ("repeated", "sample", "sampling"):
        return RepeatedSampling(n)
    if key in ("majority", "vote", "self-consistency"):
        return MajorityVote(n, seed)
    if key in ("pass@n", "oracle", "best-of-n-oracle", "pass@k"):
        return OracleBestOfN(n)
    raise UserError(f"--strategy {name!r} is unknown; choose one of: {', '.join(STRATEGIES)}")
