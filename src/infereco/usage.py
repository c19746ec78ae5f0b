"""What a request used, in one convention, whichever provider reported it.

Providers count the same tokens differently, and a price is only right if the counts are read the
way the provider meant them:

| provider (wire format) | prompt | cache reads | cache writes | completion | reasoning |
| --- | --- | --- | --- | --- | --- |
| OpenAI (`usage`) | `prompt_tokens`, cached included | `prompt_tokens_details.cached_tokens` | (not billed) | `completion_tokens`, reasoning included | `completion_tokens_details.reasoning_tokens` |
| Anthropic (`usage`) | `input_tokens` + both cache fields (input excludes them) | `cache_read_input_tokens` | `cache_creation_input_tokens` | `output_tokens`, thinking included | (not reported apart) |
| Gemini (`usageMetadata`) | `promptTokenCount`, cached included | `cachedContentTokenCount` | (not billed per token) | `candidatesTokenCount` + `thoughtsTokenCount` | `thoughtsTokenCount` |

`TokenUsage` uses the convention of the first row and of genai-prices' `Usage`: prompt tokens
include cache reads and writes, completion tokens include reasoning tokens. Gateways that speak the
OpenAI format for other providers sometimes add cache writes: `prompt_tokens_details.cache_write_tokens`
(OpenRouter) or a top-level `cache_creation_input_tokens` (LiteLLM); both are read. Some gateways
leave reasoning tokens out of `completion_tokens` (Gemini behind an OpenAI-format proxy); that shows
as `total_tokens` = prompt + completion + reasoning, and then reasoning is added to completion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TokenUsage:
    """Tokens of one request. `cached` and `cache_write` are parts of `prompt`; `reasoning` is part of `completion`."""

    prompt: int = 0
    cached: int = 0
    cache_write: int = 0
    completion: int = 0
    reasoning: int = 0

    def __post_init__(self) -> None:
        for name in ("prompt", "cached", "cache_write", "completion", "reasoning"):
            if getattr(self, name) < 0:
                raise ValueError(f"token count {name} is negative")

    @property
    def uncached_prompt(self) -> int:
        """Prompt tokens billed at the full input price."""
        return max(self.prompt - self.cached - self.cache_write, 0)

    @property
    def total(self) -> int:
        return self.prompt + self.completion


def _count(value: Any) -> int | None:
    """A token count, or None when absent or not a non-negative whole number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return None
    if value != int(value):
        return None
    return int(value)


def _get(data: Any, *path: str) -> int | None:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return _count(data)


@dataclass(frozen=True)
class ReportedUsage:
    """The counts an answer reported (None: not reported), already mapped to `TokenUsage`'s convention.

    `format` names the convention it was read in ("openai", "anthropic", "gemini"), for error messages
    and tests; an answer without usage has format "none" and every count None.
    """

    format: str
    prompt: int | None = None
    cached: int | None = None
    cache_write: int | None = None
    completion: int | None = None
    reasoning: int | None = None


def read_usage(answer: Any) -> ReportedUsage:
    """The usage of one answer (a parsed JSON body) in `TokenUsage`'s convention.

    Reads OpenAI's `usage`, Anthropic's `usage` (input without cache tokens) and Gemini's
    `usageMetadata` (thinking tokens apart from the answer's); see the module docstring.
    """
    if not isinstance(answer, dict):
        return ReportedUsage("none")
    usage = answer.get("usage")
    meta = answer.get("usageMetadata")
    if not isinstance(meta, dict) and isinstance(usage, dict) and "promptTokenCount" in usage:
        meta = usage
    if isinstance(meta, dict) and not (isinstance(usage, dict) and "prompt_tokens" in usage):
        thoughts = _get(meta, "thoughtsTokenCount")
        candidates = _get(meta, "candidatesTokenCount")
        completion = None if candidates is None and thoughts is None else (candidates or 0) + (thoughts or 0)
        return ReportedUsage(
            "gemini", prompt=_get(meta, "promptTokenCount"), cached=_get(meta, "cachedContentTokenCount"),
            cache_write=None, completion=completion, reasoning=thoughts,
        )  # fmt: skip
    if not isinstance(usage, dict):
        return ReportedUsage("none")
    if "prompt_tokens" not in usage and "input_tokens" in usage:
        base = _get(usage, "input_tokens")
        reads = _get(usage, "cache_read_input_tokens")
        writes = _get(usage, "cache_creation_input_tokens")
        prompt = None if base is None else base + (reads or 0) + (writes or 0)
        return ReportedUsage(
            "anthropic", prompt=prompt, cached=reads, cache_write=writes, completion=_get(usage, "output_tokens"),
            reasoning=_get(usage, "output_tokens_details", "thinking_tokens"),
        )  # fmt: skip
    writes = _get(usage, "prompt_tokens_details", "cache_write_tokens")
    if writes is None:
        writes = _get(usage, "prompt_tokens_details", "cache_creation_tokens")
    if writes is None:
        writes = _get(usage, "cache_creation_input_tokens")
    prompt, completion = _get(usage, "prompt_tokens"), _get(usage, "completion_tokens")
    reasoning = _get(usage, "completion_tokens_details", "reasoning_tokens")
    total = _get(usage, "total_tokens")
    if reasoning and prompt is not None and completion is not None and total == prompt + completion + reasoning:
        completion += reasoning  # a gateway that left reasoning out of completion_tokens (seen with Gemini)
    return ReportedUsage(
        "openai", prompt=prompt, cached=_get(usage, "prompt_tokens_details", "cached_tokens"),
        cache_write=writes, completion=completion, reasoning=reasoning,
    )  # fmt: skip
