"""The cost `infereco run --backend openai` stores for a hosted model is genai-prices' `calc_price` of the usage.

A loopback server plays 25 hosted models of OpenAI, Anthropic and Google. It answers each request
with a usage chosen by the test, in the provider's own wire format (OpenAI counts cached tokens
inside `prompt_tokens`; Anthropic's `input_tokens` leaves out cache reads and writes; Gemini reports
`thoughtsTokenCount` apart from `candidatesTokenCount`), below and above the model's tier boundary,
with and without cache reads, cache writes and reasoning tokens. Every stored request must cost
exactly what `calc_price` says for that usage at the request's date, and its samples must add up to it.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage, calc_price

from infereco.cli import main
from loopback import JsonHandler, serving

MODELS = {
    "openai": ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-5", "gpt-5-mini", "o3", "o4-mini",
               "gpt-5.4", "gpt-5.5", "gpt-5.6-terra"],
    "anthropic": ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1", "claude-3-5-haiku-latest",
                  "claude-opus-4-6", "claude-sonnet-4-6", "claude-haiku-5-5"],
    "google": ["gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.0-flash",
               "gemini-3-pro-preview", "gemini-3.1-pro-preview", "gemini-1.5-pro"],
}  # fmt: skip
#: per model, 4 requests: (prompt incl. cache, cache reads, cache writes, completion incl. reasoning, reasoning);
#: T is the model's tier boundary (or 200k for untiered models), so two usages lie below it and two above
CASES = [
    lambda t: (1_200, 0, 0, 300, 0),
    lambda t: (9_000, 6_000, 1_500, 800, 500),
    lambda t: (t + 5_000, 0, 0, 400, 0),
    lambda t: (t + 20_000, 150_000 if t > 150_000 else t // 2, 2_000, 2_000, 1_500),
]
TIER = {"gpt-5.4": 272_000, "gpt-5.5": 272_000, "gpt-5.6-terra": 272_000, "claude-sonnet-4-5": 200_000,
        "claude-haiku-5-5": 100_000, "gemini-2.5-pro": 200_000, "gemini-3-pro-preview": 200_000,
        "gemini-3.1-pro-preview": 200_000, "gemini-1.5-pro": 128_000}  # fmt: skip


def wire_usage(provider: str, prompt: int, cached: int, writes: int, completion: int, reasoning: int) -> dict[str, Any]:
    """The usage as each provider reports it (the fields of the answer's body)."""
    if provider == "anthropic":  # input excludes cache reads and writes; thinking is inside output
        return {"usage": {"input_tokens": prompt - cached - writes, "cache_read_input_tokens": cached,
                          "cache_creation_input_tokens": writes, "output_tokens": completion}}  # fmt: skip
    if provider == "google":  # thinking apart from the answer's tokens; no per-token cache writes
        return {"usageMetadata": {"promptTokenCount": prompt, "cachedContentTokenCount": cached,
                                  "candidatesTokenCount": completion - reasoning, "thoughtsTokenCount": reasoning,
                                  "totalTokenCount": prompt + completion}}  # fmt: skip
    details: dict[str, int] = {"cached_tokens": cached}
    if writes:
        details["cache_write_tokens"] = writes  # as OpenAI-format gateways report them
    return {"usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                      "prompt_tokens_details": details,
                      "completion_tokens_details": {"reasoning_tokens": reasoning}}}  # fmt: skip


def billed_usage(provider: str, prompt: int, cached: int, writes: int, completion: int, reasoning: int) -> Usage:
    """What the provider bills, in genai-prices' terms (input includes cache reads and writes)."""
    if provider == "google":
        writes = 0  # not reported per token
    if provider == "anthropic":
        reasoning = 0  # not reported apart
    fields = {"input_tokens": prompt, "output_tokens": completion, "cache_read_tokens": cached,
              "cache_write_tokens": writes, "output_reasoning_tokens": reasoning}  # fmt: skip
    return Usage(**{k: v for k, v in fields.items() if v})


class Provider(JsonHandler):
    """Answers as the model named in the request; the n-th request of each model gets usage case n."""

    lock = threading.Lock()
    seen: dict[str, int] = {}
    reported: dict[str, tuple[str, str, tuple[int, ...]]] = {}  # request key -> (provider, model, usage)

    def answer(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        model = body["model"]
        provider = next(p for p, names in MODELS.items() if model in names)
        with self.lock:
            case = self.seen.get(model, 0)
            self.seen[model] = case + 1
            usage = CASES[case % len(CASES)](TIER.get(model, 200_000))
            self.reported[self.headers["X-Infereco-Request-Key"].split("/", 1)[1]] = (provider, model, usage)
        choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Answer: 3"}}
        return {"id": "x", "object": "chat.completion", "model": model, "choices": [choice], **wire_usage(provider, *usage)}


def test_at_least_20_hosted_models_of_three_providers() -> None:
    assert sum(len(v) for v in MODELS.values()) >= 20 and all(len(v) >= 5 for v in MODELS.values())


@pytest.mark.parametrize("model", [m for names in MODELS.values() for m in names])
def test_stored_cost_is_calc_price_of_the_reported_usage(tmp_path: Path, model: str) -> None:
    store = tmp_path / "runs.db"
    with serving(Provider) as root:
        main(["run", "--backend", "openai", "--base-url", f"{root}/v1", "--model", model, "--task", "arithmetic",
              "--limit", str(len(CASES)), "--n", "1", "--store", str(store), "--quiet"])  # fmt: skip
    with sqlite3.connect(store) as conn:
        rows = conn.execute(
            "SELECT request_key, cost_usd, sent_at, price_source, price_version, prompt_tokens, cached_prompt_tokens, "
            "cache_write_tokens, completion_tokens, reasoning_tokens FROM requests"
        ).fetchall()
        sample_costs = dict(conn.execute("SELECT request_key, SUM(cost_usd) FROM samples GROUP BY request_key").fetchall())
    assert len(rows) == len(CASES)
    tiers_crossed = set()
    for key, cost, sent_at, source, version, *stored_usage in rows:
        provider, name, usage = Provider.reported[key]
        assert name == model
        bill = billed_usage(provider, *usage)
        when = datetime.fromtimestamp(sent_at, tz=timezone.utc)
        expected = calc_price(bill, model_ref=model, genai_request_timestamp=when)
        assert expected.provider.id == provider
        assert cost == pytest.approx(float(expected.total_price), rel=1e-9, abs=1e-15), (usage, provider)
        assert sample_costs[key] == pytest.approx(cost, rel=1e-9)
        assert source.startswith("genai-prices") and f"{provider}/" in source and version.startswith("genai-prices")
        prompt, cached, writes, completion, reasoning = usage
        assert stored_usage[0] == prompt and stored_usage[1] == cached and stored_usage[3] == completion
        tiers_crossed.add(prompt > TIER.get(model, 200_000))
    assert tiers_crossed == {False, True}


def test_the_issue_example_is_billed_at_the_base_tier_with_cache_reads() -> None:
    """10,000 prompt tokens (8,000 cached) and 500 completion tokens to claude-sonnet-4-5: $0.0159, not $0.0713."""
    from infereco.prices import genai_price
    from infereco.usage import TokenUsage

    price = genai_price("claude-sonnet-4-5")
    assert price is not None
    assert price.charge(TokenUsage(prompt=10_000, cached=8_000, completion=500)).usd == pytest.approx(0.0159)
