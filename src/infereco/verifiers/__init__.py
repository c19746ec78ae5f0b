"""Verifiers: score a candidate answer without knowing the reference (unlike a Checker)."""

from infereco.verifiers.arithmetic import ArithmeticStepVerifier
from infereco.verifiers.base import VERIFIERS, ArithmeticVerifier, OracleVerifier, Verifier, get_verifier

__all__ = [
    "ArithmeticStepVerifier",
    "ArithmeticVerifier",
    "OracleVerifier",
    "Verifier",
    "VERIFIERS",
    "get_verifier",
]
