"""The Strategy contract: turn one Problem into a final answer, asking a `SamplingContext` for samples.

A strategy never sees a Store, a clock or a backend: it asks its context for samples of a named
`step` (e.g. "sample", or later "beam/3/1"), and the context (implemented by the Runner) decides
what is already stored, what must be sent, what it costs and whether the budget allows it. That is
what lets every strategy resume after a crash without paying twice.
"""

from __future__ import annotations

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


class SamplingContext(Protocol):
    """What a strategy may do while solving one problem."""

    problem: Problem
    checker: Checker

    def messages(self) -> list[dict[str, str]]:
        """The task's prompt for this problem."""
        ...

    async def sample(
        self, step: str, n: int, messages: list[dict[str, str]] | None = None, params: SamplingParams | None = None
    ) -> list[SampleRecord]:
        """Samples 0..n-1 of `step`: stored ones are reused, missing ones are generated and stored."""
        ...


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
