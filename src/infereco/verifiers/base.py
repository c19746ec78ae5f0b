"""The Verifier contract and the built-in verifiers by name.

A verifier scores a candidate in [0, 1] without the reference answer (except the oracle, which
reads the checker's verdict: it is for evaluation and upper bounds, never a deployable choice).
It scores either an outcome (a whole solution) or a process (the steps of a partial solution, for
beam search and particle filtering). A verifier that calls a model does it through the strategy's
`SamplingContext` under a backend role of its own ("judge", "reward"), so every verifier call is a
stored, priced, resumable request in the same ledger as generation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from infereco.errors import UserError
from infereco.strategies.base import SamplingContext
from infereco.verifiers.arithmetic import ArithmeticStepVerifier


class Verifier(Protocol):
    @property
    def name(self) -> str: ...

    #: the backend role its model calls go to; None for verifiers that call no model
    role: str | None

    def describe(self) -> dict[str, Any]:
        """JSON-able parameters (part of a run's identity)."""
        ...

    async def score(self, ctx: SamplingContext, text: str) -> float:
        """Outcome score in [0, 1] of a whole solution (higher = more likely right)."""
        ...

    async def score_steps(self, ctx: SamplingContext, steps: list[str]) -> float:
        """Process score in [0, 1] of a partial solution, given as its steps so far."""
        ...


@dataclass(frozen=True)
class ArithmeticVerifier:
    """Exact checks of every `a op b = c` shown (see verifiers.arithmetic); calls no model.

    Outcome: the share of shown calculations that are right (0 with none shown). Process: the same
    share over the steps so far, 0.5 while none is shown yet (nothing to judge is not a mistake).
    """

    name: str = "arithmetic"
    role: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}

    async def score(self, ctx: SamplingContext, text: str) -> float:
        return ArithmeticStepVerifier().score(text)

    async def score_steps(self, ctx: SamplingContext, steps: list[str]) -> float:
        checks = ArithmeticStepVerifier().equations("\n".join(steps))
        return sum(ok for _, ok in checks) / len(checks) if checks else 0.5


@dataclass(frozen=True)
class OracleVerifier:
    """1 if the task's checker judges the solution right, else 0: a perfect verifier, for upper bounds only."""

    name: str = "oracle"
    role: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}

    async def score(self, ctx: SamplingContext, text: str) -> float:
        return 1.0 if ctx.checker.is_correct(ctx.checker.extract(text), ctx.problem.answer) else 0.0

    async def score_steps(self, ctx: SamplingContext, steps: list[str]) -> float:
        raise UserError("--verifier oracle scores final answers only; beam and pf need a process verifier "
                        "(arithmetic, judge or reward)")  # fmt: skip


VERIFIERS = {
    "arithmetic": "exact check of every `a op b = c` a solution shows (free, calls no model)",
    "oracle": "the task's checker (reads the reference answer): an upper bound, not deployable",
    "judge": "an LLM asked 'is this right? yes/no', scored by P(yes) from its logprobs (--judge-model ...)",
    "reward": "a reward model behind an HTTP endpoint, e.g. vLLM's /pooling (--reward-url ...)",
}


def get_verifier(spec: str | dict[str, Any] | Verifier) -> Verifier:
    """A verifier from its name, from the dict its `describe()` gave (a stored run), or as given."""
    if not isinstance(spec, (str, dict)):
        return spec
    options = dict(spec) if isinstance(spec, dict) else {"name": spec}
    name = str(options.pop("name", "")).strip().lower()
    if name == "arithmetic":
        return ArithmeticVerifier()
    if name == "oracle":
        return OracleVerifier()
    if name == "judge":
        from infereco.verifiers.judge import LLMJudge

        return LLMJudge(**options)
    if name == "reward":
        from infereco.verifiers.reward_model import RemoteRewardModel

        return RemoteRewardModel(**options)
    raise UserError(f"--verifier {name!r} is unknown; choose one of: {', '.join(VERIFIERS)}")

