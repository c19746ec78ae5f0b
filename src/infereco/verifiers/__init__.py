"""Verifiers: score a candidate answer without knowing the reference (unlike a Checker)."""

from infereco.verifiers.arithmetic import ArithmeticStepVerifier
from infereco.verifiers.base import VERIFIERS, ArithmeticOutcomeVerifier, OracleVerifier, Verifier, get_verifier

__all__ = [
    "ArithmeticStepVerifier",
    "ArithmeticOutcomeVerifier",
    "OracleVerifier",
    "Verifier",
    "VERIFIERS",
    "get_verifier",
]
