"""A scripted OpenAI-compatible chat server on 127.0.0.1: `reply(messages, index, seed)` decides each
completion's text. It records every request, so tests can count what was sent and to which role."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from loopback import JsonHandler, serving

Reply = Callable[[list[dict[str, str]], int, int], str]


@contextmanager
def chat_server(reply: Reply) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Yields (base URL ending in /v1, the list of request bodies it received)."""
    received: list[dict[str, Any]] = []

    class Handler(JsonHandler):
        def answer(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
            received.append(body)
            n, seed = int(body.get("n", 1)), int(body.get("seed") or 0)
            texts = [reply(body["messages"], i, seed) for i in range(n)]
            choices = []
            for i, text in enumerate(texts):
                choice: dict[str, Any] = {"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
                if body.get("logprobs"):
                    choice["logprobs"] = {"content": [{"token": w, "logprob": -0.5} for w in text.split()]}
                choices.append(choice)
            prompt_tokens = sum(len(m["content"].split()) for m in body["messages"]) + 5
            completion = sum(len(t.split()) for t in texts)
            return {"id": "x", "object": "chat.completion", "model": body.get("model", "m"), "choices": choices,
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                              "total_tokens": prompt_tokens + completion}}  # fmt: skip

    with serving(Handler) as url:
        yield url + "/v1", received
