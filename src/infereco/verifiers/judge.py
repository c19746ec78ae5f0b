"""LLM-as-judge: ask a model "is this right?" and read P(yes) from the logprobs of its first token.

One forced token at temperature 0 costs one short request (the prompt is mostly the candidate),
and the probability is far more informative than the sampled word: two candidates the judge would
both call "Yes" still differ in how sure it is. The judge runs under the backend role "judge",
which is the model under test unless the run was given another one (`--judge-model`), and each
call is a stored step named by what it judged, so a resumed run never asks twice.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from infereco.strategies.base import SamplingContext, SamplingParams, content_key

OUTCOME_PROMPT = (
    "Here is a problem and a proposed solution.\n\nProblem:\n{problem}\n\nSolution:\n{solution}\n\n"
    "Is the solution's final answer correct? Answer with one word: Yes or No."
)
PROCESS_PROMPT = (
    "Here is a problem and the first steps of a solution.\n\nProblem:\n{problem}\n\nSteps so far:\n{solution}\n\n"
    "Are all of these steps correct? Answer with one word: Yes or No."
)
_YES = {"yes", "y", "true", "correct"}
_NO = {"no", "n", "false", "incorrect", "wrong"}


def p_yes(logprobs: list[dict[str, Any]] | None) -> float:
    """P(yes) / (P(yes) + P(no)) over the first token's alternatives; 0.5 if it offers neither.

    Alternatives are matched case- and space-insensitively ("Yes", " yes", "YES" all count).
    """
    if not logprobs or not isinstance(logprobs, list) or not isinstance(logprobs[0], dict):
        return 0.5
    first = logprobs[0]
    options = first.get("top_logprobs") or [first]
    if not isinstance(options, list):
        return 0.5
    yes = no = 0.0
    for option in options:
        if not isinstance(option, dict):
            continue
        word = str(option.get("token", "")).strip().lower()
        value = option.get("logprob")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue  # a garbled alternative says nothing
        if word in _YES:
            yes += math.exp(min(float(value), 0.0))  # a log-probability is at most 0
        elif word in _NO:
            no += math.exp(min(float(value), 0.0))
    return yes / (yes + no) if yes + no > 0 else 0.5


@dataclass(frozen=True)
class LLMJudge:
    """A yes/no judge; `model` names the judging model (None: the model under test) for the run's identity."""

    model: str | None = None
    outcome_prompt: str = OUTCOME_PROMPT
    process_prompt: str = PROCESS_PROMPT
    top_logprobs: int = 10
    name: str = "judge"
    role: str | None = "judge"
    #: P(yes) is read from logprobs: a backend that cannot return them is refused for this role
    needs_logprobs: ClassVar[bool] = True

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "outcome_prompt": self.outcome_prompt,
                "process_prompt": self.process_prompt, "top_logprobs": self.top_logprobs}  # fmt: skip

    async def _ask(self, ctx: SamplingContext, kind: str, template: str, solution: str) -> float:
        messages = [{"role": "user", "content": template.format(problem=ctx.problem.prompt, solution=solution)}]
        params = SamplingParams(max_tokens=1, temperature=0.0, top_logprobs=self.top_logprobs)
        step = f"judge/{kind}/{content_key(solution)}"
        [record] = await ctx.sample(step, 1, messages, params, role=self.role or "judge")
        try:
            logprobs = json.loads(record.logprobs_json) if record.logprobs_json else None
        except ValueError:
            logprobs = None
        return p_yes(logprobs)

    async def score(self, ctx: SamplingContext, text: str) -> float:
        return await self._ask(ctx, "outcome", self.outcome_prompt, text)

    async def score_steps(self, ctx: SamplingContext, steps: list[str]) -> float:
        return await self._ask(ctx, "process", self.process_prompt, "\n".join(steps))
