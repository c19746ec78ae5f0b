"""Step-level search guided by a process verifier: beam search and particle filtering (+ entropic).

A solution is built one reasoning step at a time. The algorithms here see only a `StepEnv`: "give
me m next steps of this partial solution", "score this partial solution", "what does it answer".
`ModelSteps` is that environment for a real model (steps end at the task's delimiter via stop
sequences; every step and every verifier call is a stored, priced request), and the tests use a
synthetic step tree with a noisy verifier of known quality, so the algorithms are checked without
a model.

- Beam search keeps the N/M best partial solutions by process score and expands each M ways:
  deterministic exploitation of the verifier, strong when it is right, brittle when it is noisy.
- Particle filtering (Puri et al.) treats the verifier's score as a likelihood: N particles are
  resampled (systematic resampling) in proportion to softmax(score / T) after every step, so a
  noisy score shifts probability instead of deciding. The final answer is drawn by weight (or the
  argmax, if asked).
- The entropic variant anneals T upward whenever the normalised entropy of the weights falls below
  a threshold, so an overconfident early score cannot collapse all particles onto one prefix.

Identical partial solutions are expanded by one request for all their continuations (a step named
by the prefix's content is also a cache: a resumed run finds it stored). A problem budget that runs
out mid-search ends the search with the best partial solutions it has.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, ClassVar

from infereco.errors import UserError
from infereco.strategies.base import BudgetSpent, SamplingContext, StrategyResult
from infereco.strategies.speculative import speculative_env
from infereco.strategies.steps import ModelSteps, Partial, StepEnv, expand_all, score_all
from infereco.verifiers import ArithmeticVerifier, Verifier

__all__ = ["BeamSearch", "ModelSteps", "ParticleFilter", "Partial", "StepEnv", "beam_search", "expand_all",
           "make_search", "particle_filter", "score_all"]  # fmt: skip


def softmax(scores: list[float], temperature: float) -> list[float]:
    top = max(scores)
    exps = [math.exp((s - top) / max(temperature, 1e-9)) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def normalized_entropy(weights: list[float]) -> float:
    """Entropy of the weights over log(len): 1 = uniform, 0 = all mass on one particle."""
    if len(weights) < 2:
        return 1.0
    return -sum(w * math.log(w) for w in weights if w > 0) / math.log(len(weights))


def systematic_resample(weights: list[float], rng: random.Random) -> list[int]:
    """N indices drawn in proportion to the weights with one uniform: lower variance than multinomial."""
    n = len(weights)
    u = rng.random() / n
    out, cumulative, i = [], weights[0], 0
    for k in range(n):
        target = u + k / n
        while target > cumulative and i < n - 1:
            i += 1
            cumulative += weights[i]
        out.append(i)
    return out


@dataclass
class SearchOutcome:
    best: Partial | None
    steps: int
    stopped: str  # "finished", "max_steps" or "budget"
    trace: dict[str, list[float]] = field(default_factory=dict)


async def beam_search(env: StepEnv, n: int, width: int, max_steps: int, rng: random.Random) -> SearchOutcome:
    """Keep the ceil(n / width) best partial solutions by score, extend each `width` ways, repeat."""
    keep = max(1, math.ceil(n / max(1, width)))
    beams: list[Partial] = []
    scores: list[float] = []
    stopped, depth = "max_steps", 0
    try:
        beams = await expand_all(env, [Partial()], n)
        for depth in range(1, max_steps + 1):
            scores = await score_all(env, beams)
            if all(b.done for b in beams) or depth == max_steps:
                stopped = "finished" if all(b.done for b in beams) else "max_steps"
                break
            order = sorted(range(len(beams)), key=lambda i: (-scores[i], rng.random()))
            beams = await expand_all(env, [beams[i] for i in order[:keep]], width)
    except BudgetSpent:
        stopped = "budget"
    if len(scores) != len(beams):  # the budget ran out between expanding and scoring
        scores = [0.5] * len(beams)
    best = max(range(len(beams)), key=lambda i: (beams[i].done, scores[i]), default=None)
    return SearchOutcome(beams[best] if best is not None else None, depth, stopped)


async def particle_filter(
    env: StepEnv,
    n: int,
    max_steps: int,
    rng: random.Random,
    temperature: float = 0.3,
    entropy_floor: float | None = None,
    argmax: bool = False,
) -> SearchOutcome:
    """Particle filtering over steps; with `entropy_floor`, the entropic variant (see the module doc)."""
    particles: list[Partial] = []
    weights: list[float] = []
    trace: dict[str, list[float]] = {"entropy": [], "temperature": []}
    stopped, depth = "max_steps", 0
    try:
        particles = await expand_all(env, [Partial()], n)
        for depth in range(1, max_steps + 1):
            scores = await score_all(env, particles)
            t = temperature
            weights = softmax(scores, t)
            while entropy_floor is not None and normalized_entropy(weights) < entropy_floor and t < 1e3:
                t *= 2.0  # anneal: flatten the weights until enough of the particles keep a say
                weights = softmax(scores, t)
            trace["entropy"].append(normalized_entropy(weights))
            trace["temperature"].append(t)
            if all(p.done for p in particles) or depth == max_steps:
                stopped = "finished" if all(p.done for p in particles) else "max_steps"
                break
            chosen = [particles[i] for i in systematic_resample(weights, rng)]
            particles = await expand_all(env, chosen)
            weights = []
    except BudgetSpent:
        stopped = "budget"
    if not particles:
        return SearchOutcome(None, depth, stopped, trace)
    if len(weights) != len(particles):
        weights = [1.0 / len(particles)] * len(particles)
    finished = [i for i, p in enumerate(particles) if p.done] or list(range(len(particles)))
    if argmax:
        pick = max(finished, key=lambda i: weights[i])
    else:
        pick = rng.choices(finished, weights=[weights[i] for i in finished])[0]
    return SearchOutcome(particles[pick], depth, stopped, trace)


@dataclass(frozen=True)
class _StepSearch:
    n: int
    verifier: Verifier = field(default_factory=ArithmeticVerifier)
    seed: int = 0
    max_steps: int = 10
    #: None: the task's own (a blank line by default, one line for arithmetic)
    delimiter: str | None = None
    #: None: the model writes every step; {"threshold": t}: speculative steps (strategies.speculative)
    generator: dict[str, Any] | None = None
    #: each N is its own search (and its own run), not a larger pool of the same samples
    extends_pool: ClassVar[bool] = False

    def describe(self) -> dict[str, Any]:
        own = {k: v for k, v in self.__dict__.items() if k not in ("n", "verifier", "seed", "name")}
        return {"name": self.name, "n": self.n, "verifier": self.verifier.describe(), **own}  # type: ignore[attr-defined]

    def _env(self, ctx: SamplingContext) -> ModelSteps:
        return speculative_env(ctx, self.verifier, self.delimiter, self.max_steps, self.generator)

    async def _search(self, env: StepEnv, rng: random.Random) -> SearchOutcome:
        raise NotImplementedError

    async def solve(self, ctx: SamplingContext) -> StrategyResult:
        env = self._env(ctx)
        outcome = await self._search(env, random.Random(f"{self.seed}:{ctx.problem.id}"))
        if outcome.best is None:
            raise BudgetSpent()  # not even the first steps were affordable
        answer, correct = env.answer(outcome.best)
        info = {"steps": outcome.steps, "stopped": outcome.stopped, "solution": env.delimiter.join(outcome.best.steps),
                **{k: [round(x, 4) for x in v] for k, v in outcome.trace.items()}}  # fmt: skip
        return StrategyResult(answer, correct, info)


@dataclass(frozen=True)
class BeamSearch(_StepSearch):
    #: M: how many ways each kept partial solution is extended (N/M are kept)
    width: int = 4
    name: str = "beam"

    async def _search(self, env: StepEnv, rng: random.Random) -> SearchOutcome:
        return await beam_search(env, self.n, self.width, self.max_steps, rng)


@dataclass(frozen=True)
class ParticleFilter(_StepSearch):
    #: softmax temperature over process scores in [0, 1]; 0.3 weighs a sure-right step 28x a sure-wrong
    #: one (on the synthetic tree it degraded least as verifier noise grew: docs/strategies.md)
    temperature: float = 0.3
    argmax: bool = False
    #: the entropic variant's floor on the weights' normalised entropy; None = plain particle filtering
    entropy_floor: float | None = None
    name: str = "pf"

    async def _search(self, env: StepEnv, rng: random.Random) -> SearchOutcome:
        return await particle_filter(env, self.n, self.max_steps, rng, self.temperature, self.entropy_floor, self.argmax)


def make_search(key: str, n: int, seed: int, verifier: Any, **options: Any) -> BeamSearch | ParticleFilter:
    """`beam`, `pf` or `epf` with the given options (unknown or bad ones are a UserError)."""
    from infereco.verifiers import get_verifier

    check = get_verifier(verifier or "arithmetic")
    options = {k: v for k, v in options.items() if v is not None}
    try:
        if key == "beam":
            options.pop("temperature", None), options.pop("entropy_floor", None), options.pop("argmax", None)
            strategy: BeamSearch | ParticleFilter = BeamSearch(n, check, seed, **options)
        elif key in ("epf", "entropic-pf"):
            options.pop("width", None)
            options.setdefault("entropy_floor", 0.5)
            strategy = ParticleFilter(n, check, seed, name="epf", **options)
        else:
            options.pop("width", None), options.pop("entropy_floor", None)
            strategy = ParticleFilter(n, check, seed, **options)
    except TypeError as exc:
        raise UserError(f"--strategy {key}: {exc}") from None
    if strategy.max_steps < 1:
        raise UserError(f"--max-steps must be >= 1, got {strategy.max_steps}")
    if isinstance(strategy, BeamSearch) and strategy.width < 1:
        raise UserError(f"--beam-width must be >= 1, got {strategy.width}")
    if isinstance(strategy, ParticleFilter) and strategy.temperature <= 0:
        raise UserError(f"--pf-temperature must be > 0, got {strategy.temperature}")
    return strategy
