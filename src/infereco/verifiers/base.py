"""The Verifier contract and the built-in verifiers by name.

A verifier scores a sampled solution in [0, 1] without the reference answer, except the oracle,
which reads the checker's verdict: it is for evaluation and upper bounds, never a deployable choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from infereco.errors import UserError
from infereco.problem import Problem
from infereco.records import SampleRecord
from infereco.verifiers.arithmetic import ArithmeticStepVerifier


class Verifier(Protocol):
    @property
    def name(self) -> str: ...

    def score_sample(self, sample: SampleRecord, problem: Problem) -> float:
        """An outcome score in [0, 1] for one stored sample (higher = more likely right)."""
        ...


@dataclass(frozen=True)
class ArithmeticOutcomeVerifier:
    """Share of a solution's shown calculations that are exactly right (see verifiers.arithmetic)."""

    name: str = "arithmetic"

    def score_sample(self, sample: SampleRecord, problem: Problem) -> float:
        return ArithmeticStepVerifier().score(sample.text)


@dataclass(frozen=True)
class OracleVerifier:
    """1 if the checker judged the sample right, else 0: a perfect verifier, for upper bounds only."""

    name: str = "oracle"

    def score_sample(self, sample: SampleRecord, problem: Problem) -> float:
        return 1.0 if sample.correct else 0.0


VERIFIERS = {"arithmetic": ArithmeticOutcomeVerifier, "oracle": OracleVerifier}


def get_verifier(name: str) -> Verifier:
    try:
        return VERIFIERS[name.strip().lower()]()
    except KeyError:
        raise UserError(f"--verifier {name!r} is unknown; choose one of: {', '.join(VERIFIERS)}") from None
