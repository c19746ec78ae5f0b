"""The records a run writes: one per request sent and one per sample received.

They are plain values that flow one way, Runner → Store; the Store's schema mirrors them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SampleRecord:
    """One stored completion with the verdict of the task's checker and what it cost."""

    problem_id: str
    step: str
    index: int
    request_key: str
    text: str
    finish_reason: str | None
    answer: str | None
    correct: bool
    prompt_tokens: int
    cached_prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    latency_s: float
    cost_usd: float
    seed: int | None
    logprobs_json: str | None = None


@dataclass(frozen=True)
class RequestRecord:
    """One request as sent: its key, the samples it asked for, and its measured usage.

    `attempts` counts the HTTP tries it took (1 = no retry). `unconfirmed_usd`/`unconfirmed_tokens`
    are the worst-case charge of failed tries that may still have been billed (the server may have
    generated an answer that was lost to a timeout or a dropped connection); budgets count them.
    """

    key: str
    problem_id: str
    step: str
    start_index: int
    n: int
    seed: int | None
    latency_s: float
    busy_s: float
    prompt_tokens: int
    cached_prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    attempts: int = 1
    unconfirmed_usd: float = 0.0
    unconfirmed_tokens: int = 0
    #: the rest of the usage a price needs (parts of prompt and completion tokens: see `infereco.usage`)
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    #: idealized seconds of machine time (runtime-priced local models), beside the wall-time `busy_s`
    compute_s: float = 0.0
    #: the backend role that served it (main, judge, reward, draft): which price applies
    role: str = "main"
    #: where its price came from and that data's version (`infereco reprice` rewrites both)
    price_source: str = ""
    price_version: str = ""
    #: when it was sent (Unix time): the date whose prices apply
    sent_at: float | None = None


@dataclass(frozen=True)
class ProblemResult:
    """A strategy's final answer for one problem."""

    problem_id: str
    answer: str | None
    correct: bool | None
    info_json: str = "{}"
    #: how many samples the strategy used; a later run of the same config with another N re-solves
    n: int = 0
