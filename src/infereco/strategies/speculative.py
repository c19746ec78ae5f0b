"""Speculative reasoning: a small model drafts each step, the large one judges it and rewrites it only if needed.

Per step (SpecReason's loop): the drafter (backend role "draft") writes the next step; the target
(the model under test, role "main") rates it with one forced token, "0" to "9", and the rating is
read as the expected digit under the target's top logprobs (a prefill pass and one token: far
cheaper than writing the step). At or above `threshold` the draft is kept; below it, the target
writes the step itself. Only the step's meaning must be right, so a paraphrase passes, unlike
token-exact speculative decoding.

`SpeculativeSteps` is a `StepEnv`, so it replaces the plain generator anywhere steps are made:
`StepwiseVote` (majority over N step-wise chains), beam search and particle filtering. Drafts,
ratings and rewrites are separate stored steps (`draft/…`, `rate/…`, `target/…`), so the ledger
says what each model wrote and spent, and a resumed run asks neither model twice.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

from infereco.strategies.base import BudgetSpent, SamplingContext, SamplingParams, StrategyResult, content_key
from infereco.strategies.steps import ModelSteps, Partial, StepEnv, expand_all
from infereco.verifiers import ArithmeticVerifier, Verifier

RATE_PROMPT = (
    "Problem:\n{problem}\n\nSolution so far:\n{prefix}\n\nProposed next step:\n{step}\n\n"
    "How likely is the proposed next step to be correct and useful? Reply with one digit from 0 (surely wrong) "
    "to 9 (surely right)."
)


def expected_digit(logprobs: list[dict[str, Any]] | None) -> float:
    """The expected rating 0-9 under the first token's alternatives that are digits (0 if none is)."""
    if not logprobs:
        return 0.0
    first = logprobs[0]
    weights: dict[int, float] = {}
    for option in first.get("top_logprobs") or [first]:
        token, value = str(option.get("token", "")).strip(), option.get("logprob")
        if len(token) == 1 and token.isdigit() and value is not None:
            weights[int(token)] = weights.get(int(token), 0.0) + math.exp(float(value))
    total = sum(weights.values())
    return sum(d * w for d, w in weights.items()) / total if total > 0 else 0.0


class SpeculativeSteps(ModelSteps):
    """Steps drafted by role "draft", rated by the target, rewritten by the target below `threshold`."""

    def __init__(self, ctx: SamplingContext, verifier: Verifier, delimiter: str, max_steps: int,
                 params: SamplingParams, threshold: float = 7.0, rate_prompt: str = RATE_PROMPT) -> None:  # fmt: skip
        super().__init__(ctx, verifier, delimiter, max_steps, params)
        self.threshold = threshold
        self.rate_prompt = rate_prompt

    async def rate(self, partial: Partial, step: str) -> float:
        prompt = self.rate_prompt.format(problem=self.ctx.problem.prompt, prefix="\n".join(partial.steps) or "(nothing yet)",
                                         step=step)  # fmt: skip
        params = SamplingParams(max_tokens=1, temperature=0.0, top_logprobs=10)
        name = f"rate/{len(partial.steps)}/{content_key(partial.steps, step)}"
        [record] = await self.ctx.sample(name, 1, [{"role": "user", "content": prompt}], params)
        return expected_digit(json.loads(record.logprobs_json) if record.logprobs_json else None)

    async def expand(self, partial: Partial, m: int) -> list[Partial]:
        key = f"{len(partial.steps)}/{content_key(partial.steps)}"
        messages = self.messages(partial)
        drafts = await self.ctx.sample(f"draft/{key}", m, messages, self.params, role="draft")
        ratings = await asyncio.gather(*(self.rate(partial, d.text.strip()) for d in drafts))

        async def settle(i: int, draft_text: str, finish: str | None, rating: float) -> Partial:
            if rating >= self.threshold and draft_text.strip():
                return self.grow(partial, draft_text, finish, "draft")
            [own] = await self.ctx.sample(f"target/{key}/{i}", 1, messages, self.params)
            return self.grow(partial, own.text, own.finish_reason, "main")

        return list(await asyncio.gather(*(
            settle(i, d.text, d.finish_reason, r) for i, (d, r) in enumerate(zip(drafts, ratings, strict=True))
        )))  # fmt: skip


def speculative_env(ctx: SamplingContext, verifier: Verifier, delimiter: str | None, max_steps: int,
                    generator: dict[str, Any] | None) -> ModelSteps:  # fmt: skip
    """The step generator a strategy was configured with: plain, or speculative (`{"threshold": 7}`)."""
    own = delimiter or ctx.step_delimiter
    if generator is None:
        return ModelSteps(ctx, verifier, own, max_steps, ctx.params)
    return SpeculativeSteps(ctx, verifier, own, max_steps, ctx.params, threshold=float(generator.get("threshold", 7.0)))


@dataclass(frozen=True)
class StepwiseVote:
    """Majority vote over N chains generated step by step (the way to vote over speculative chains)."""

    n: int
    seed: int = 0
    max_steps: int = 10
    delimiter: str | None = None
    #: None: the plain generator; {"threshold": t}: speculative, drafts rated >= t kept
    generator: dict[str, Any] | None = None
    verifier: Verifier = field(default_factory=ArithmeticVerifier)  # unused by the vote; kept for StepEnv
    name: str = "spec-majority"
    extends_pool: ClassVar[bool] = False

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "n": self.n, "stepwise": True, "max_steps": self.max_steps,
                "delimiter": self.delimiter, "generator": self.generator}  # fmt: skip

    async def solve(self, ctx: SamplingContext) -> StrategyResult:
        env = speculative_env(ctx, self.verifier, self.delimiter, self.max_steps, self.generator)
        chains = [Partial()] * self.n
        stopped = "finished"
        try:
            while not all(c.done for c in chains):
                chains = await chains_step(env, chains)
        except BudgetSpent:
            stopped = "budget"
            if not any(c.steps for c in chains):
                raise
        answers = [env.answer(c) for c in chains if c.steps]
        votes = Counter(a for a, _ in answers if a is not None)
        rng = random.Random(f"{self.seed}:{ctx.problem.id}")
        top = max(votes.values(), default=0)
        answer = rng.choice(sorted(a for a, v in votes.items() if v == top)) if votes else None
        correct = answer is not None and any(ok for a, ok in answers if a == answer)
        authors = Counter(a for c in chains for a in c.authors)
        return StrategyResult(answer, correct, {"votes": dict(votes), "stopped": stopped,
                                                "steps_by": dict(authors)})  # fmt: skip


async def chains_step(env: StepEnv, chains: list[Partial]) -> list[Partial]:
    """Every unfinished chain one step longer (identical prefixes share a request; chains are
    exchangeable, so which grown chain takes which slot does not matter)."""
    grown = iter(await expand_all(env, [c for c in chains if not c.done]))
    return [c if c.done else next(grown) for c in chains]
