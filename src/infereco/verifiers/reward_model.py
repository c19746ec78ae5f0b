"""A reward model (outcome or process) served behind an HTTP endpoint, e.g. vLLM's pooling API.

Expected exchange (vLLM `vllm serve <reward model> --runner pooling`, endpoint `/pooling`):

    POST <url>  {"model": "<name>", "messages": [{"role": "user", "content": <problem>},
                                                 {"role": "assistant", "content": <solution or steps>}]}
    200         {"data": [{"index": 0, "data": <score>}], "usage": {"prompt_tokens": 123}}

`<score>` may be a number, a list of numbers, or a list of lists (one row per token or per step,
as process reward models give): the last number of the last row is the score of the whole text.
Scores outside [0, 1] are read as logits and mapped through a sigmoid. The model is called through
`RewardModelBackend`, a Backend like any other, so each call is a stored, priced request of the run
(prompt tokens from `usage`, no completion tokens) and is not repeated on resume.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from infereco.backends.base import Completion, GenerationRequest
from infereco.backends.openai import HTTPAnswer, OpenAIBackend, _count
from infereco.budget import prompt_token_bound
from infereco.errors import BackendError
from infereco.strategies.base import SamplingContext, SamplingParams, content_key


def _last_number(value: Any) -> float | None:
    while isinstance(value, list) and value:
        value = value[-1]
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def to_unit(score: float) -> float:
    """A score in [0, 1]: probabilities pass through, logits go through a sigmoid."""
    if 0.0 <= score <= 1.0:
        return score
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, score))))


class RewardModelBackend(OpenAIBackend):
    """POSTs chat messages to a reward-model endpoint; each "completion" is the score as text."""

    kind = "reward"

    def __init__(self, url: str, model: str, **options: Any) -> None:
        super().__init__(url, model, max_n=1, **options)

    def _path(self) -> str:
        return ""  # the URL names the endpoint itself, e.g. http://host:8000/pooling

    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        return {"model": self.model, "messages": [dict(m) for m in request.messages]}

    def _parse(self, response: HTTPAnswer, request: GenerationRequest, latency: float) -> list[Completion]:
        url = str(response.request.url)
        try:
            data = response.json()
            score = _last_number(data["data"][0]["data"])
        except (ValueError, KeyError, IndexError, TypeError, RecursionError, OverflowError):
            score = None
        if score is None or not math.isfinite(score):
            raise BackendError(f"{url}: answer has no numeric score at data[0].data (see infereco.verifiers.reward_model)")
        usage = data.get("usage") if isinstance(data, dict) and isinstance(data.get("usage"), dict) else {}
        return [Completion(text=json.dumps(to_unit(score)), finish_reason="stop",
                           prompt_tokens=_count(usage.get("prompt_tokens"), prompt_token_bound(request.messages)),
                           completion_tokens=0, latency_s=latency)]  # fmt: skip


@dataclass(frozen=True)
class RemoteRewardModel:
    """Scores by a served reward model (role "reward"); `model` is its name, for the run's identity."""

    model: str = "reward-model"
    name: str = "reward"
    role: str | None = "reward"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model}

    async def _ask(self, ctx: SamplingContext, kind: str, solution: str) -> float:
        messages = [{"role": "user", "content": ctx.problem.prompt}, {"role": "assistant", "content": solution}]
        step = f"reward/{kind}/{content_key(solution)}"
        [record] = await ctx.sample(step, 1, messages, SamplingParams(max_tokens=1, temperature=0.0), role="reward")
        return float(record.text)

    async def score(self, ctx: SamplingContext, text: str) -> float:
        return await self._ask(ctx, "outcome", text)

    async def score_steps(self, ctx: SamplingContext, steps: list[str]) -> float:
        return await self._ask(ctx, "process", "\n".join(steps))
