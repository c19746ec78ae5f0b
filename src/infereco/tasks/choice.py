"""Multiple-choice tasks: a question, a list of choices, the right one as a letter, index or text.

The model is asked for a letter; `ChoiceChecker.extract` finds it however the model wrote it
("Answer: B", "The answer is (B)", "**B**", "B) Paris", a lone "B") and canonicalises it to the
upper-case letter, so votes group "(b)" and "**B**" together.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any

from infereco.errors import UserError
from infereco.problem import Problem

LETTERS = string.ascii_uppercase
CHOICE_TEMPLATE = (
    "{question}\n\n{choices}\n\nAnswer with the letter of the correct choice ({letters}). "
    "End with the line `Answer: <letter>`."
)
CHOICE_SYSTEM_PROMPT = "Answer the multiple-choice question. Think briefly, then give the letter of the best choice."
_EXPECT = "a multiple-choice row with 'question', 'choices' (a list of 2-26 strings) and 'answer' (a letter, an index or the choice's text)"

_L = r"([A-Z])"
_PATTERNS = [  # most explicit first; each finds a letter standing alone as a token
    re.compile(rf"\b(?i:answer)\b[^A-Za-z0-9\n]{{0,20}}(?:(?i:is)\b)?[\s*_:(\[]*{_L}(?![A-Za-z0-9])"),
    re.compile(rf"\b(?i:choice|option)\s*(?:(?i:is)\s*)?[:(]?\s*\(?{_L}\)?(?![A-Za-z0-9])"),
    re.compile(rf"\*\*\(?{_L}\)?[.):]?\*\*"),
    re.compile(rf"\\boxed\{{\s*\(?{_L}\)?\s*\}}"),
    re.compile(rf"\({_L}\)"),
    re.compile(rf"^\s*{_L}\s*[).:\]-](?:\s|$)", re.MULTILINE),
    re.compile(rf"^\s*{_L}\s*$", re.MULTILINE),
]


def extract_letter(text: str, valid: str = LETTERS) -> str | None:
    """The choice letter `text` commits to (the last one of the most explicit kind), or None."""
    for pattern in _PATTERNS:
        found = [m.group(1).upper() for m in pattern.finditer(text)]
        found = [f for f in found if f in valid]
        if found:
            return found[-1]
    return None


@dataclass(frozen=True)
class ChoiceChecker:
    """Letter equality after robust extraction (see `extract_letter`)."""

    name: str = "choice"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}

    def extract(self, text: str) -> str | None:
        return extract_letter(text)

    def is_correct(self, answer: str | None, reference: str) -> bool:
        return answer is not None and answer.strip().upper() == reference.strip().upper()


def _where_answer(answer: Any, choices: list[str], where: str) -> str:
    """The reference as a letter: from a letter, a 0-based index, or a choice's exact text."""
    n = len(choices)
    if isinstance(answer, bool):
        raise UserError(f"{where}: field 'answer' must be a letter, an index or a choice's text (expected {_EXPECT})")
    if isinstance(answer, int):
        if not 0 <= answer < n:
            raise UserError(f"{where}: answer index {answer} is out of range for {n} choices (expected 0..{n - 1})")
        return LETTERS[answer]
    if isinstance(answer, str) and answer.strip():
        a = answer.strip()
        if len(a) == 1 and a.upper() in LETTERS[:n]:
            return a.upper()
        if a.isdigit() and int(a) < n:
            return LETTERS[int(a)]
        matches = [i for i, c in enumerate(choices) if c.strip().casefold() == a.casefold()]
        if matches:
            return LETTERS[matches[0]]
        raise UserError(f"{where}: answer {a!r} is neither a letter A-{LETTERS[n - 1]}, an index nor one of the choices")
    raise UserError(f"{where}: field 'answer' must be a letter, an index or a choice's text (expected {_EXPECT})")


def choice_problem(row: dict[str, Any], where: str, fallback_id: str) -> Problem:
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise UserError(f"{where}: field 'question' must be a non-empty string (expected {_EXPECT})")
    choices = row.get("choices")
    if not isinstance(choices, list) or not 2 <= len(choices) <= 26 or not all(isinstance(c, (str, int, float)) for c in choices):
        raise UserError(f"{where}: field 'choices' must be a list of 2-26 strings (expected {_EXPECT})")
    choices = [str(c) for c in choices]
    if "answer" not in row:
        raise UserError(f"{where}: missing field 'answer' (expected {_EXPECT})")
    letter = _where_answer(row["answer"], choices, where)
    letters = LETTERS[: len(choices)]
    shown = "\n".join(f"{letters[i]}. {c}" for i, c in enumerate(choices))
    rid = row.get("id")
    return Problem(
        id=str(rid).strip() if isinstance(rid, (str, int)) and str(rid).strip() else fallback_id,
        prompt=question.strip(),
        answer=letter,
        metadata={"source": "choice", "fields": {"choices": shown, "letters": ", ".join(letters)}},
    )


__all__ = ["ChoiceChecker", "CHOICE_TEMPLATE", "CHOICE_SYSTEM_PROMPT", "choice_problem", "extract_letter"]
