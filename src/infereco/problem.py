"""A `Problem` is one question with its reference answer; it is immutable so it can key a store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One item of a task.

    `id` is stable across runs (it keys stored samples), `prompt` is the user-visible question,
    `answer` the reference answer as text, `metadata` free-form facts such as difficulty or source.
    """

    id: str
    prompt: str
    answer: str
    metadata: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
