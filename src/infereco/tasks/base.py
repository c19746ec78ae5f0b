"""The `Task` type: a fixed list of problems plus how to prompt for and grade them.

A task is immutable and carries a JSON-able `spec` so that a stored run can say exactly which
problems it used and rebuild them later (`get_task(**task.spec)`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from infereco.checkers import Checker
from infereco.errors import UserError
from infereco.problem import Problem

# One worked example in the terse format we want. Measured on the embedded 0.5B model (level-3
# arithmetic, 6 problems x 8 samples): 23 completion tokens per sample instead of 146 with an
# instruction alone ("reason step by step in a few short lines"), and accuracy 0.58 vs 0.52. With
# `n` samples per request the prompt is processed once, so the example costs little.
DEFAULT_SYSTEM_PROMPT = (
    "Solve the math word problem. Write one short line per calculation, then the final line "
    "`Answer: <number>`.\n\n"
    "Example:\n"
    "Question: Ann has 5 pens. She buys 2 boxes with 3 pens each. How many pens does she have now?\n"
    "2 * 3 = 6\n"
    "5 + 6 = 11\n"
    "Answer: 11"
)

MATH_SYSTEM_PROMPT = (
    "Solve the problem. Reason step by step in a few short lines, "
    "then give the final answer as \\boxed{<answer>}."
)


@dataclass(frozen=True)
class Task:
    """A named, ordered set of problems, the checker that grades them and the system prompt."""

    name: str
    problems: tuple[Problem, ...]
    checker: Checker
    system_prompt: str
    spec: dict[str, Any] = field(hash=False)
    #: what ends one reasoning step, for step-level strategies (beam search, particle filtering):
    #: a blank line by default; the arithmetic prompt asks for one line per calculation
    step_delimiter: str = "\n\n"
    #: the user message: `{question}` and the problem's other fields (see `infereco.tasks.prompts`)
    prompt_template: str = "{question}"
    #: the digest of the whole task, kept when a shard of its problems is solved elsewhere (Ray workers)
    pinned_digest: str | None = field(default=None, compare=False)

    def messages(self, problem: Problem) -> list[dict[str, str]]:
        """Chat messages for one problem: the task's system prompt (none when empty: the model's chat
        template then uses its own default), then the question rendered by the prompt template."""
        from infereco.tasks.prompts import render

        user = {"role": "user", "content": render(self.prompt_template, problem)}
        return [{"role": "system", "content": self.system_prompt}, user] if self.system_prompt else [user]

    def digest(self) -> str:
        """A digest of everything that decides what the model is asked and how it is graded: every
        problem's id, prompt, reference and fields, the rendered messages and the checker. Part of a
        run's identity, so an edited row or a changed prompt is a new run, never a silent reuse."""
        from infereco.tasks.prompts import content_digest

        return self.pinned_digest or content_digest(self)

    def __len__(self) -> int:
        return len(self.problems)


def check_limit(limit: int | None) -> None:
    """Reject a `--limit` below 1 here, once, rather than silently running zero problems."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise UserError(f"--limit must be an integer >= 1, got {limit!r}")
