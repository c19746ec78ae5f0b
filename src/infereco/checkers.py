"""Answer extraction and grading.

A `Checker` turns a raw model completion into a *canonical* answer string and grades it. Canonical
matters because majority voting and self-consistency group samples by this string: "1,234",
"$1234.00" and "1234" must be one vote, not three. Grading is separate from extraction so that a
store can keep extracted answers and regrade them later without re-running the model.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar, Protocol, runtime_checkable

from infereco.errors import UserError

__all__ = [
    "Checker",
    "NumericChecker",
    "MathChecker",
    "ExactChecker",
    "PythonTestsChecker",
    "CHECKER_NAMES",
    "get_checker",
    "canonical_number",
    "parse_number",
    "last_boxed",
]


@runtime_checkable
class Checker(Protocol):
    """Extracts a canonical final answer from a completion and grades it against a reference."""

    @property
    def name(self) -> str:
        """A short identifier, e.g. "numeric" or "majority" (read-only: frozen dataclasses qualify)."""
        ...

    def extract(self, text: str) -> str | None:
        """The canonical final answer in `text`, or None when there is none."""
        ...

    def is_correct(self, answer: str | None, reference: str) -> bool:
        """Whether `answer` (as returned by `extract`) matches `reference`; None never does."""
        ...


# ---------------------------------------------------------------------------------------------
# Shared helpers

# A number as models write it: optional sign (ASCII or Unicode minus), optional currency sign,
# thousands separators, decimals, and an optional "/ denominator". The look-behind stops us from
# reading the "3" of "10-3" as "-3" and the "14" of "3.14" as a number of its own.
_NUMBER = re.compile(
    r"(?<![\d.])(?P<sign>[-−])?(?:\$\s?)?"
    r"(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)?(?P<frac>\.\d+)?"
    r"(?:\s?/\s?(?P<den>\d+(?:\.\d+)?))?"
)

# "Answer: X", "answer is X", "Answer = X", "#### X", with markdown emphasis allowed in between.
_ANCHOR = re.compile(r"\banswers?\b[\s*_]*(?:is\b|:|=)|####", re.IGNORECASE)

_LATEX_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*([^{}]*?)\s*\}\s*\{\s*([^{}]*?)\s*\}")


def _iter_numbers(text: str) -> list[Fraction]:
    """Every number in `text`, in order, as exact fractions."""
    out: list[Fraction] = []
    for m in _NUMBER.finditer(text):
        if m.group("int") is None and m.group("frac") is None:
            continue
        value = _match_value(m)
        if value is not None:
            out.append(value)
    return out


# Longer digit strings are not answers (and Python refuses to convert >4300-digit strings).
_MAX_DIGITS = 200


def _match_value(m: re.Match[str]) -> Fraction | None:
    whole = (m.group("int") or "0").replace(",", "")
    if len(whole) + len(m.group("frac") or "") + len(m.group("den") or "") > _MAX_DIGITS:
        return None
    value = Fraction(whole + (m.group("frac") or ""))
    if m.group("den") is not None:
        den = Fraction(m.group("den"))
        if den == 0:
            return None
        value /= den
    return -value if m.group("sign") else value


def _delatex(text: str) -> str:
    r"""Rewrite LaTeX that models put around numbers (`\frac{1}{2}`, `1{,}000`) as plain text."""
    text = _LATEX_FRAC.sub(r"(\1)/(\2)", text)
    text = text.replace("{,}", ",").replace("\\!", "").replace("\\,", "").replace("\\$", "$")
    text = re.sub(r"\\(?:text|mathrm|textbf|mathbf)\s*\{([^{}]*)\}", r"\1", text)
    return text.replace("(", " ").replace(")", " ")


def _strip_decorations(text: str) -> str:
    """Drop markdown emphasis, math delimiters and sentence punctuation around an answer."""
    text = re.sub(r"^[\s*_`$]+", "", text)
    return re.sub(r"[\s*_`$.%]+$", "", text)


def parse_number(text: str) -> Fraction | None:
    """Parse `text` that is *only* a number ($, %, ** and a final period allowed)."""
    cleaned = _strip_decorations(_delatex(text))
    m = _NUMBER.fullmatch(cleaned)
    if m is None or (m.group("int") is None and m.group("frac") is None):
        return None
    return _match_value(m)


def _format_fraction(value: Fraction) -> str:
    """Shortest exact decimal for terminating fractions ("0.5"), else "p/q"; integers bare."""
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    twos = fives = 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    if den != 1:
        return f"{value.numerator}/{value.denominator}"
    digits = max(twos, fives)
    scaled = abs(value) * 10**digits
    assert scaled.denominator == 1
    body = str(scaled.numerator).rjust(digits + 1, "0")
    sign = "-" if value < 0 else ""
    return f"{sign}{body[:-digits]}.{body[-digits:]}".rstrip("0").rstrip(".")


def canonical_number(text: str) -> str | None:
    """Canonical string for a number written any common way, or None if `text` is not a number.

    Idempotent: canonical_number(canonical_number(x)) == canonical_number(x).
    """
    value = parse_number(text)
    return None if value is None else _format_fraction(value)


def last_boxed(text: str) -> str | None:
    r"""Content of the last `\boxed{...}` (or `\fbox{...}`) in `text`, nested braces balanced."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    for start in reversed(starts):
        depth = 1
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i]
    return None


def _last_boxed_span(text: str) -> tuple[int, str] | None:
    """Position and content of the last complete `\\boxed{}`, to compare with anchor positions."""
    content = last_boxed(text)
    if content is None:
        return None
    pos = max(m.start() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text))
    return pos, content


def _anchor_tails(text: str) -> list[tuple[int, str]]:
    """(position, rest of the line) after every "Answer:"-style anchor, in order of appearance."""
    tails = []
    for m in _ANCHOR.finditer(text):
        line_end = text.find("\n", m.end())
        tail = text[m.end() : line_end if line_end != -1 else len(text)]
        tails.append((m.start(), tail))
    return tails


def states_final_answer(text: str) -> bool:
    """Whether a text gives its final answer explicitly ("Answer: 7", "the answer is 7", "#### 7",
    \\boxed{7}): what tells a step-level strategy that a partial solution is finished."""
    return bool(_ANCHOR.search(text)) or last_boxed(text) is not None


# ---------------------------------------------------------------------------------------------
# Checkers


@dataclass(frozen=True)
class NumericChecker:
    """For tasks whose answers are numbers (arithmetic, GSM8K).

    Extraction prefers an explicit final-answer marker (the last "Answer: X", "answer is X",
    "#### X" or \\boxed{X}) because small models show intermediate numbers in their reasoning;
    only when no marker carries a number does it fall back to the last number in the text.
    """

    rel_tol: float = 1e-6  # only for non-integers: two integers must be equal
    abs_tol: float = 1e-9
    name: str = "numeric"

    def extract(self, text: str) -> str | None:
        candidates: list[tuple[int, str]] = list(_anchor_tails(text))
        boxed = _last_boxed_span(text)
        if boxed is not None:
            candidates.append(boxed)
        for _, tail in sorted(candidates, key=lambda c: c[0], reverse=True):
            value = self._from_tail(tail)
            if value is not None:
                return _format_fraction(value)
        numbers = _iter_numbers(_delatex(text))
        return _format_fraction(numbers[-1]) if numbers else None

    @staticmethod
    def _from_tail(tail: str) -> Fraction | None:
        """The number a marker points at: the first one, or the result after a trailing "=".

        "Answer: 12 + 3 = 15" means 15, "Answer: 42 apples (6 x 7)" means 42.
        """
        plain = _delatex(tail)
        if "=" in plain:
            after = _iter_numbers(plain.rsplit("=", 1)[1])
            if after:
                return after[0]
        numbers = _iter_numbers(plain)
        return numbers[0] if numbers else None

    def is_correct(self, answer: str | None, reference: str) -> bool:
        if answer is None:
            return False
        got, want = parse_number(answer), parse_number(reference)
        if got is None or want is None:
            return answer.strip().casefold() == reference.strip().casefold()
        if got == want:
            return True
        if got.denominator == 1 and want.denominator == 1:
            return False  # 999999 vs 1000000 is within rel_tol but is simply the wrong count
        try:
            return math.isclose(float(got), float(want), rel_tol=self.rel_tol, abs_tol=self.abs_tol)
        except OverflowError:
            return False


def _math_verify_timeout() -> int | None:
    """math-verify's timeouts use SIGALRM, which only works in the main thread: elsewhere, none."""
    return 5 if threading.current_thread() is threading.main_thread() else None


class _DropTimeoutDisabledWarning(logging.Filter):
    """math-verify warns when timeouts are off; we turn them off on purpose in worker threads."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


for _logger_name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_logger_name).addFilter(_DropTimeoutDisabledWarning())

# Answers longer than this are compared as strings only: without a timeout (worker threads) a
# pathological expression could keep sympy busy indefinitely.
_MAX_SYMBOLIC_CHARS = 400


def _canonical_latex(text: str) -> str | None:
    r"""Whitespace-insensitive LaTeX so "\frac {1}{2}" and "\dfrac{1}{2}" vote together.

    A space after a command that is followed by a letter ("\pi r") is meaningful and kept.
    """
    s = re.sub(r"^[\s*_`$]+", "", text)
    s = re.sub(r"[\s*_`$.]+$", "", s)
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = re.sub(r"\\[,;:! ]", " ", s)
    s = re.sub(r"(\\[A-Za-z]+)\s+(?=[A-Za-z])", "\\1\x00", s)
    s = re.sub(r"\s+", "", s).replace("\x00", " ")
    return s or None


@dataclass(frozen=True)
class MathChecker:
    r"""For competition math (MATH): answers are LaTeX expressions, graded by symbolic equivalence.

    Uses math-verify so that `\frac{1}{2}` equals `0.5` and `x^2+1` equals `1+x^2`. Grading
    never raises: a parser failure or timeout counts as wrong, as one odd sample must not abort
    a run.
    """

    name: str = "math"
    #: symbolic equivalence can take long on odd LaTeX: graded in the process pool (`infereco.grading`)
    slow: ClassVar[bool] = True

    def extract(self, text: str) -> str | None:
        candidates = [(pos, tail) for pos, tail in _anchor_tails(text) if tail.strip()]
        boxed = _last_boxed_span(text)
        if boxed is not None:
            candidates.append(boxed)
        if not candidates:
            return None
        _, raw = max(candidates, key=lambda c: c[0])
        return _canonical_latex(raw)

    def is_correct(self, answer: str | None, reference: str) -> bool:
        if answer is None:
            return False
        if _canonical_latex(answer) == _canonical_latex(reference):
            return True
        if len(answer) > _MAX_SYMBOLIC_CHARS or len(reference) > _MAX_SYMBOLIC_CHARS:
            return False
        try:
            import math_verify  # imported lazily: it pulls in sympy, which is slow to load

            timeout = _math_verify_timeout()
            gold = math_verify.parse(f"${reference}$", parsing_timeout=timeout)
            target = math_verify.parse(f"${answer}$", parsing_timeout=timeout)
            if not gold or not target:
                return False
            return bool(math_verify.verify(gold, target, timeout_seconds=timeout))
        except BaseException as exc:  # math-verify raises its own TimeoutException, a BaseException
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            return False


@dataclass(frozen=True)
class ExactChecker:
    """For short free-text answers (a word, a letter): equal after trimming and case-folding."""

    name: str = "exact"

    def extract(self, text: str) -> str | None:
        tails = [tail for _, tail in _anchor_tails(text) if tail.strip()]
        if tails:
            raw = tails[-1]
        else:
            boxed = last_boxed(text)
            lines = [line for line in text.splitlines() if line.strip()]
            raw = boxed if boxed is not None else (lines[-1] if lines else "")
        return self._canonical(raw)

    @staticmethod
    def _canonical(text: str) -> str | None:
        s = re.sub(r"^[\s*_`\"']+", "", text)
        s = re.sub(r"[\s*_`\"'.]+$", "", s)
        return s.casefold() or None

    def is_correct(self, answer: str | None, reference: str) -> bool:
        if answer is None:
            return False
        return self._canonical(answer) == self._canonical(reference)


_CODE_BLOCK = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class PythonTestsChecker:
    """Code tasks: the answer is the last fenced Python block; it is correct when the reference's
    unit tests (plain asserts) pass against it in the sandbox (see `infereco.sandbox`)."""

    name: str = "python-tests"
    #: runs the tests in a sandboxed process: graded in the process pool (`infereco.grading`)
    slow: ClassVar[bool] = True

    def extract(self, text: str) -> str | None:
        blocks = _CODE_BLOCK.findall(text)
        code = blocks[-1] if blocks else text
        return code.strip() or None

    def is_correct(self, answer: str | None, reference: str) -> bool:
        if answer is None:
            return False
        from infereco.sandbox import run_python

        return run_python(answer, reference).passed


_CHECKERS: dict[str, type[NumericChecker] | type[MathChecker] | type[ExactChecker] | type[PythonTestsChecker]] = {
    "numeric": NumericChecker,
    "math": MathChecker,
    "exact": ExactChecker,
    "python-tests": PythonTestsChecker,
}
CHECKER_NAMES: tuple[str, ...] = tuple(_CHECKERS)


def get_checker(name: str) -> Checker:
    """The checker called `name`; a `UserError` names the bad value and the allowed ones."""
    try:
        return _CHECKERS[name]()
    except KeyError:
        raise UserError(
            f"unknown checker {name!r} (expected one of: {', '.join(CHECKER_NAMES)})"
        ) from None
