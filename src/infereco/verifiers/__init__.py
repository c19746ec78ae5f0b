"""Verifiers: score a candidate answer without knowing the reference (unlike a Checker)."""

from infereco.verifiers.arithmetic import ArithmeticStepVerifier

__all__ = ["ArithmeticStepVerifier"]
