"""Building a solution one reasoning step at a time: the `StepEnv` the searches see, and `ModelSteps`,
the StepEnv of a real model behind a `SamplingContext`.

Shared by the searches (`strategies.search`) and speculative steps (`strategies.speculative`), so
neither imports the other's module to get at them.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Protocol

from infereco.checkers import states_final_answer
from infereco.strategies.base import SamplingContext, SamplingParams, content_key
from infereco.verifiers import Verifier


@dataclass(frozen=True)
class Partial:
    """A partial solution: the steps so far, and whether it is finished."""

    steps: tuple[str, ...] = ()
    done: bool = False
    #: which model wrote each step ("main", or "draft" for an accepted speculative draft); not
    #: part of equality: the same text is the same state whoever wrote it
    authors: tuple[str, ...] = field(default=(), compare=False)


class StepEnv(Protocol):
    async def expand(self, partial: Partial, m: int) -> list[Partial]:
        """m continuations of an unfinished partial solution by one step (fewer never: m or raise)."""
        ...

    async def score(self, partial: Partial) -> float:
        """The process verifier's score of a partial solution, in [0, 1]."""
        ...

    def answer(self, partial: Partial) -> tuple[str | None, bool | None]:
        """The final answer a (finished) partial solution gives, and whether it is right."""
        ...


async def expand_all(env: StepEnv, partials: list[Partial], per: int = 1) -> list[Partial]:
    """Each unfinished partial extended `per` ways (finished ones kept once, as they are).

    Identical partials are grouped, so k copies of one prefix cost one request for k × per steps
    (which are different samples, not k copies of the same one).
    """
    finished = [p for p in partials if p.done]
    groups = Counter(p for p in partials if not p.done)
    grown = await asyncio.gather(*(env.expand(p, count * per) for p, count in groups.items()))
    return finished + [child for children in grown for child in children]


async def score_all(env: StepEnv, partials: list[Partial]) -> list[float]:
    unique = list(dict.fromkeys(partials))
    scores = dict(zip(unique, await asyncio.gather(*(env.score(p) for p in unique)), strict=True))
    return [scores[p] for p in partials]


#: the request family of a search's step requests (the runner qualifies it with run and problem)
AFFINITY = "steps"


class ModelSteps:
    """The StepEnv of a real model behind a SamplingContext."""

    def __init__(self, ctx: SamplingContext, verifier: Verifier, delimiter: str, max_steps: int, params: SamplingParams) -> None:
        self.ctx = ctx
        self.verifier = verifier
        self.delimiter = delimiter
        self.max_steps = max_steps
        self.params = replace(params, stop=(delimiter,))

    def messages(self, partial: Partial) -> list[dict[str, str]]:
        """The task's prompt, and the steps so far as the assistant's partial answer to continue."""
        messages = self.ctx.messages()
        if partial.steps:
            messages = messages + [{"role": "assistant", "content": self.delimiter.join(partial.steps) + self.delimiter}]
        return messages

    def grow(self, partial: Partial, text: str, finish_reason: str | None, author: str = "main") -> Partial:
        """The partial solution one generated step longer, finished if that step ends it."""
        text = text.strip()
        steps = partial.steps + ((text,) if text else ())
        done = (not text or states_final_answer(text) or finish_reason == "length"
                or len(steps) >= self.max_steps)  # fmt: skip
        return Partial(steps, done, partial.authors + ((author,) if text else ()))

    async def expand(self, partial: Partial, m: int) -> list[Partial]:
        """m continuations by one step, in one request. Every step request of the search names the
        same `affinity`: each one's prompt extends an earlier one's, so a server that caches
        prefixes can keep them where the problem and the steps so far are already evaluated."""
        step = f"step/{len(partial.steps)}/{content_key(partial.steps)}"
        records = await self.ctx.sample(step, m, self.messages(partial), self.params, affinity=AFFINITY)
        return [self.grow(partial, r.text, r.finish_reason) for r in records]

    async def score(self, partial: Partial) -> float:
        return await self.verifier.score_steps(self.ctx, list(partial.steps))

    def answer(self, partial: Partial) -> tuple[str | None, bool | None]:
        answer = self.ctx.checker.extract(self.delimiter.join(partial.steps))
        return answer, self.ctx.checker.is_correct(answer, self.ctx.problem.answer)
