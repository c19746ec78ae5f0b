"""A cheap, real, imperfect verifier for arithmetic: check every `a op b = c` a solution writes.

It never sees the reference answer. A solution passes when it shows at least one calculation and
every calculation is exactly right. It is imperfect in the way verifiers are: a solution that
computes the wrong quantity correctly ("3 + 4 = 7" when the problem needed 3 × 4) passes (a false
positive), and a right answer given without any shown calculation fails (a false negative).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
_EQUATION = re.compile(
    rf"(?P<a>{_NUMBER})\s*(?P<op>[-+*/×x÷])\s*(?P<b>{_NUMBER})\s*=\s*(?P<c>{_NUMBER})"
)


def _value(text: str) -> Fraction:
    return Fraction(text.replace(",", ""))


def _apply(a: Fraction, op: str, b: Fraction) -> Fraction | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op in "*×x":
        return a * b
    return a / b if b != 0 else None


@dataclass(frozen=True)
class ArithmeticStepVerifier:
    """Outcome score = share of shown calculations that are exactly right (0 with none shown)."""

    name: str = "arithmetic-steps"

    def equations(self, text: str) -> list[tuple[str, bool]]:
        """Each `a op b = c` found in the text with whether it is right."""
        found = []
        for m in _EQUATION.finditer(text):
            result = _apply(_value(m["a"]), m["op"], _value(m["b"]))
            found.append((m.group(0), result is not None and result == _value(m["c"])))
        return found

    def score(self, text: str) -> float:
        checks = self.equations(text)
        return sum(ok for _, ok in checks) / len(checks) if checks else 0.0

    def passes(self, text: str) -> bool:
        checks = self.equations(text)
        return bool(checks) and all(ok for _, ok in checks)
