"""The Backend contract: one obvious entry point, `await backend.generate(request)`.

A backend turns one `GenerationRequest` (a chat prompt plus sampling parameters, possibly asking for
`n` samples at once) into `n` `Completion`s, each with the tokens it used and the time it took.
Backends know nothing of stores, budgets or strategies; the Runner owns those.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

Message = dict[str, str]


@dataclass(frozen=True)
class GenerationRequest:
    """What to ask the model for.

    `key` is the request's idempotency key (run, problem, step, sample range); backends pass it to
    the server as a header so server logs can be joined with the store. `seed` makes sampling
    repeatable where the server honours it.

    `retry_gate`, when set, is asked before every retry, with whether the failed attempt may have
    been billed (the server may have generated an answer the client never got: a timeout, a dropped
    connection, a garbled body). It returns False to forbid the retry (the budget cannot cover it);
    the backend then raises `RetryRefused`. That is how the Runner counts retries in its ledger and
    keeps budgets hard while a backend retries on its own.

    `on_text`, when set on a one-sample request, asks the backend to stream: it is called with
    each piece of text as the server produces it (`infereco serve` forwards them to its client).
    The request still returns its whole `Completion`, so nothing downstream changes. A backend
    that cannot stream may ignore it; one that can must not retry once a piece was passed on.

    `affinity`, when set, names a family of requests that share a long prefix (the problem and the
    steps so far of one step-level search). A backend that can keep such a family where its prefix
    stays cached may route every request of it there (the embedded llama.cpp server: one slot per
    family, see `backends.slots`); any other backend ignores it. It changes where a request runs,
    never what it asks for.
    """

    messages: tuple[Message, ...]
    n: int = 1
    max_tokens: int = 256
    temperature: float = 0.8
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0
    key: str = ""
    retry_gate: Callable[[bool], bool] | None = field(default=None, compare=False, repr=False)
    on_text: Callable[[str], None] | None = field(default=None, compare=False, repr=False)
    affinity: str = field(default="", compare=False)


class RetryRefused(Exception):
    """A retry that the request's `retry_gate` did not allow (its budget cannot cover another try).

    The gate only refuses after a try that may have been billed, so that try is charged.
    """

    maybe_billed = True


@dataclass(frozen=True)
class Completion:
    """One sampled answer with its share of the request's usage.

    Token counts are this completion's share: a request's prompt is billed once however many
    samples it asks for, so `prompt_tokens` of the `n` completions of one request add up to the
    request's prompt tokens (integers, spread as evenly as possible).
    """

    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int = 0
    reasoning_tokens: int = 0
    latency_s: float = 0.0
    #: prompt tokens written to the provider's cache (billed apart by Anthropic; part of `prompt_tokens`)
    cache_write_tokens: int = 0
    logprobs: list[dict[str, Any]] | None = field(default=None, compare=False)


@runtime_checkable
class Backend(Protocol):
    """Anything that can sample completions for a chat prompt."""

    #: short kind name, e.g. "openai", "llamacpp", "replay"
    kind: str
    #: the model's name as the server knows it
    model: str

    async def generate(self, request: GenerationRequest) -> list[Completion]:
        """Sample `request.n` completions; raise `BackendError` with a one-line reason on failure."""
        ...

    def describe(self) -> dict[str, Any]:
        """A JSON-able identity (kind, model, endpoint; never a secret) stored with the run."""
        ...

    def max_samples_per_request(self) -> int:
        """How many samples one request may ask for (`n`); 1 if the server ignores `n`."""
        ...

    def max_concurrency(self) -> int:
        """How many requests are worth keeping in flight at once."""
        ...

    async def aclose(self) -> None:
        """Release connections and any process the backend started."""
        ...


def split_evenly(total: int, parts: int) -> list[int]:
    """Split an integer total into `parts` integers that differ by at most one and sum to it."""
    if parts <= 0:
        return []
    base, extra = divmod(max(total, 0), parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def split_by_weight(total: int, weights: list[float]) -> list[int]:
    """Split an integer total in proportion to weights (largest remainder), keeping the exact sum.

    Used when a server reports completion tokens for a whole request but not per choice.
    """
    if not weights:
        return []
    total = max(total, 0)
    wsum = float(sum(max(w, 0.0) for w in weights))
    if wsum <= 0:
        return split_evenly(total, len(weights))
    raw = [total * max(w, 0.0) / wsum for w in weights]
    floors = [int(r) for r in raw]
    remainder = total - sum(floors)
    order = sorted(range(len(raw)), key=lambda i: raw[i] - floors[i], reverse=True)
    for i in order[:remainder]:
        floors[i] += 1
    return floors
