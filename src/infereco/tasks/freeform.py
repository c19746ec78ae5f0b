"""Free-form questions graded by a judge model.

The model under test answers in its own words; a grader model (the model under test itself, or
`--grader-model` [at `--grader-base-url`]) is asked whether that answer means the same as the
reference. Each verdict is a stored, priced request under the backend role "grader", keyed by the
answer's text (step `grade/<hash>`), so equal answers are judged once, a resumed run pays for no
verdict twice, and every sample's verdict can be read back from the store. An answer equal to the
reference after normalisation is right without asking.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from infereco.checkers import ExactChecker
from infereco.errors import UserError
from infereco.problem import Problem
from infereco.strategies.base import SamplingParams

FREEFORM_SYSTEM_PROMPT = "Answer the question concisely. End with the line `Answer: <your answer>`."
GRADER_PROMPT = (
    "You are grading an answer to a question.\n\n"
    "Question: {question}\n"
    "Reference answer: {reference}\n"
    "Candidate answer: {answer}\n\n"
    "Does the candidate answer mean the same as the reference answer? Reply with one word: yes or no."
)
_EXPECT = "a free-form row with 'question' and 'reference' (or 'answer' with --format freeform)"
_MAX_ANSWER_CHARS = 400
_YES = re.compile(r"^\W*(yes|correct|true)\b", re.IGNORECASE)
_NO = re.compile(r"^\W*(no|incorrect|false|wrong)\b", re.IGNORECASE)


def parse_verdict(text: str) -> bool | None:
    """True for a reply that starts with yes, False for no, None when it says neither."""
    if _YES.match(text):
        return True
    if _NO.match(text):
        return False
    return None


@dataclass(frozen=True)
class JudgeChecker:
    """Extraction as `ExactChecker` (the "Answer:" line, else the last line); correctness by a
    grader model's yes/no under the "grader" role (see the module docstring)."""

    name: str = "judge"
    prompt: str = GRADER_PROMPT
    max_tokens: int = 8
    #: the backend role the verdicts are requested under; the run must provide it
    role: str = field(default="grader", init=False)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "prompt": self.prompt, "max_tokens": self.max_tokens}

    def extract(self, text: str) -> str | None:
        """The answer as written (case kept: the grader reads it), from the last "Answer:" line, else
        the last non-empty line."""
        tails = [line.split(":", 1)[1] for line in text.split("\n") if re.match(r"\W*answer\W*:", line, re.IGNORECASE)]
        lines = [line for line in text.split("\n") if line.strip()]
        raw = tails[-1] if tails and tails[-1].strip() else (lines[-1] if lines else "")
        answer = re.sub(r"[\s*_`\"']+$", "", re.sub(r"^[\s*_`\"']+", "", raw))
        return answer[:_MAX_ANSWER_CHARS] or None

    def is_correct(self, answer: str | None, reference: str) -> bool:
        """Without a grader at hand (an oracle verifier), only an exact match counts."""
        return ExactChecker().is_correct(answer, reference)

    def grader_messages(self, problem: Problem, answer: str) -> list[dict[str, str]]:
        content = self.prompt.format_map({"question": problem.prompt, "reference": problem.answer, "answer": answer})
        return [{"role": "user", "content": content}]

    async def grade(self, text: str, problem: Problem, ctx: Any) -> tuple[str | None, bool]:
        answer = self.extract(text)
        if answer is None:
            return None, False
        if ExactChecker().is_correct(answer, problem.answer):
            return answer, True
        step = "grade/" + hashlib.sha256(answer.encode()).hexdigest()[:16]
        params = SamplingParams(max_tokens=self.max_tokens, temperature=0.0)
        [verdict] = await ctx.sample(step, 1, self.grader_messages(problem, answer), params, role=self.role)
        return answer, bool(parse_verdict(verdict.text))


def check_grader_prompt(prompt: str) -> None:
    if "{answer}" not in prompt:
        raise UserError("--grader-prompt must contain {answer} (and may contain {question} and {reference})")
    try:
        prompt.format_map({"question": "", "reference": "", "answer": ""})
    except (KeyError, ValueError, IndexError) as exc:
        raise UserError(f"--grader-prompt: bad field {exc} (expected {{question}}, {{reference}}, {{answer}})") from None


def freeform_problem(row: dict[str, Any], where: str, fallback_id: str) -> Problem:
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise UserError(f"{where}: field 'question' must be a non-empty string (expected {_EXPECT})")
    key = "reference" if "reference" in row else "answer"
    ref = row.get(key)
    if isinstance(ref, (int, float)) and not isinstance(ref, bool):
        ref = str(ref)
    if not isinstance(ref, str) or not ref.strip():
        raise UserError(f"{where}: field '{key}' must be a non-empty string (expected {_EXPECT})")
    rid = row.get("id")
    return Problem(
        id=str(rid).strip() if isinstance(rid, (str, int)) and str(rid).strip() else fallback_id,
        prompt=question.strip(),
        answer=ref.strip(),
        metadata={"source": "freeform"},
    )


__all__ = ["JudgeChecker", "FREEFORM_SYSTEM_PROMPT", "GRADER_PROMPT", "freeform_problem", "parse_verdict", "check_grader_prompt"]
