"""The Strategy contract: turn one Problem into a final answer, asking a `SamplingContext` for samples.

A strategy never sees a Store, a clock or a backend: it asks its context for samples of a named
`step` (e.g. "sample", or later "beam/3/1"), and the context (implemented by the Runner) decides
what is already stored, what must be sent, what it costs and whether the budget allows it. That is
what lets every strategy resume after a crash without paying twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from infereco.checkers import Checker
from infereco.problem import Problem
from infereco.records import SampleRecord


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: these are part of a run's identity (changing them is a different experiment)."""

    max_tokens: int = 256
    temperature: float = 0.8
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    #: alternatives per token to return with logprobs (an LLM judge reads P(yes) from them)
    top_logprobs: int = 0


class SamplingContext(Protocol):
    """What a strategy may do while solving one problem."""

    problem: Problem
    checker: Checker
    #: the run's sampling parameters (a step-level strategy adds its stop sequence to them)
    params: SamplingParams
    #: what ends one reasoning step in this task's solutions (see `Task.step_delimiter`)
    step_delimiter: str

    def messages(self) -> list[dict[str, str]]:
        """The task's prompt for this problem."""
        ...

    async def sample(
        self,
        step: str,
        n: int,
        messages: list[dict[str, str]] | None = None,
        params: SamplingParams | None = None,
        *,
        role: str = "main",
        partial: bool = False,
        affinity: str = "",
    ) -> list[SampleRecord]:
        """Samples 0..n-1 of `step`: stored ones are reused, missing ones are generated and stored.

        `role` names the backend that serves the step: "main" (the model under test), or another
        one the run was given (e.g. "judge" for an LLM verifier, "draft" for a speculative drafter).
        Every step a strategy takes must have its own name, so that a step and its samples can be
        looked up on resume. With `partial`, a problem budget that runs out part-way returns the
        samples that were affordable (in index order, possibly fewer than n) instead of raising
        `BudgetSpent`; it still raises when not even one sample is affordable.
        `affinity` names the requests of this problem that extend one another's prompts (a
        step-level search's steps): the context passes it on to the backend, qualified by the run
        and problem, so a server that caches prefixes can keep them together (see
        `GenerationRequest.affinity`). It never changes what is sampled.
        """
        ...


class BudgetSpent(Exception):
    """The problem's own budget cannot pay for the samples asked for: finish with what you have."""


@dataclass(frozen=True)
class StrategyResult:
    """The strategy's final answer for a problem, whether it is right, and what it looked at."""

    answer: str | None
    correct: bool | None
    info: dict[str, Any] = field(default_factory=dict)


class Strategy(Protocol):
    """One inference-time scaling method."""

    @property
    def name(self) -> str:
        """A short identifier, e.g. "numeric" or "majority" (read-only: frozen dataclasses qualify)."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-able parameters that define the strategy (part of a run's identity)."""
        ...

    async def solve(self, ctx: SamplingContext) -> StrategyResult:
        ...


def content_key(*parts: Any) -> str:
    """A short digest of what a step depends on (a prefix of steps, a text to judge).

    Steps named by their content are a cache: the same prefix asked for twice, by two particles or
    after a restart, is looked up instead of generated again.
    """
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
