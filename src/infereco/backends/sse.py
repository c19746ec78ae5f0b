"""A streamed (SSE) OpenAI-style answer merged back into the one JSON object a plain request gets.

Why stream at all: llama.cpp's server, asked for `n > 1` choices in one request, reports `usage`
for the first choice only. Streamed with `stream_options.include_usage`, every choice ends with
its own usage chunk: the server's own count of the tokens it generated for that choice (the
end-of-generation token and a matched stop string included), which neither the text nor its
logprobs give exactly, and without the cost of logprobs (~8% of decode speed on 2 cores: sorting
the vocabulary for every token). The merged object has the shape of a non-streamed answer, plus
`usage` on each choice, so one parser reads both.

llama.cpp writes each finished choice as a chunk with its `finish_reason` and `index`, followed at
once by a chunk with empty `choices` and the `usage` of that choice (both come from the same
result, written back to back); that is how a usage chunk is tied to its choice.
"""

from __future__ import annotations

import json
from typing import Any


class StreamError(ValueError):
    """A stream that is not a whole answer: cut short, not JSON, or an error event mid-stream."""


def merge_stream(body: bytes, api: str = "chat") -> dict[str, Any]:
    """The events of an SSE body as one completion object (`choices` sorted by index).

    Each choice gets `usage` when the stream gave it one; the top-level `usage` then holds the
    first choice's prompt counts (the prompt is processed once for all choices) and the sum of
    the choices' completion tokens. Raises `StreamError` if the stream did not end with `[DONE]`.
    """
    choices: dict[int, dict[str, Any]] = {}
    texts: dict[int, list[str]] = {}
    last_finished: int | None = None
    done = False
    extra: dict[str, Any] = {}
    for raw in body.split(b"\n"):
        line = raw.strip()
        if not line or line.startswith(b":"):
            continue  # blank separators and comments (keep-alive pings)
        if line.startswith(b"error:"):
            raise StreamError(f"error event in the stream: {line[6:].decode('utf-8', 'replace').strip()[:160]}")
        if not line.startswith(b"data:"):
            continue  # `event:`, `id:`, `retry:` fields carry nothing we use
        data = line[5:].strip()
        if data == b"[DONE]":
            done = True
            break
        try:
            event = json.loads(data)
        except ValueError:
            raise StreamError(f"a stream event is not JSON: {data[:80]!r}") from None
        if not isinstance(event, dict):
            raise StreamError("a stream event is not an object")
        if "error" in event:
            raise StreamError(f"error event in the stream: {str(event['error'])[:160]}")
        for key in ("id", "model", "created", "system_fingerprint"):
            if key in event:
                extra.setdefault(key, event[key])
        if isinstance(event.get("timings"), dict):
            extra["timings"] = event["timings"]
        for choice in event.get("choices") or []:
            if not isinstance(choice, dict):
                raise StreamError("a streamed choice is not an object")
            index = choice.get("index", 0)
            if not isinstance(index, int):
                raise StreamError(f"a streamed choice has index {index!r}")
            merged = choices.setdefault(index, {"index": index, "finish_reason": None, "logprobs": None})
            piece = (choice.get("delta") or {}).get("content") if api == "chat" else choice.get("text")
            if isinstance(piece, str):
                texts.setdefault(index, []).append(piece)
            lp = choice.get("logprobs")
            if isinstance(lp, dict):
                _merge_logprobs(merged, lp)
            if choice.get("finish_reason"):
                merged["finish_reason"] = choice["finish_reason"]
                last_finished = index
        usage = event.get("usage")
        if isinstance(usage, dict) and not event.get("choices") and last_finished is not None:
            choices[last_finished]["usage"] = usage
    if not done:
        raise StreamError("the stream ended before [DONE]")
    out: list[dict[str, Any]] = []
    for index in sorted(choices):
        choice = choices[index]
        text = "".join(texts.get(index, []))
        if api == "chat":
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        out.append(choice)
    result: dict[str, Any] = {**extra, "choices": out}
    usages = [c.get("usage") for c in out]
    if out and all(isinstance(u, dict) for u in usages):
        first = usages[0]
        assert isinstance(first, dict)
        total = {k: v for k, v in first.items() if k in ("prompt_tokens", "prompt_tokens_details")}
        counts = [u.get("completion_tokens") for u in usages if isinstance(u, dict)]
        if all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
            total["completion_tokens"] = sum(counts)  # type: ignore[arg-type]
        result["usage"] = total
    return result


def _merge_logprobs(merged: dict[str, Any], lp: dict[str, Any]) -> None:
    """Append one chunk's per-token logprobs (chat `content` list, or completions' parallel lists)."""
    have = merged.get("logprobs")
    if isinstance(lp.get("content"), list):
        if not isinstance(have, dict):
            have = merged["logprobs"] = {"content": []}
        have.setdefault("content", []).extend(lp["content"])
    elif isinstance(lp.get("tokens"), list):
        if not isinstance(have, dict):
            have = merged["logprobs"] = {"tokens": [], "token_logprobs": [], "top_logprobs": []}
        for key in ("tokens", "token_logprobs", "top_logprobs"):
            values = lp.get(key)
            have.setdefault(key, []).extend(values if isinstance(values, list) else [None] * len(lp["tokens"]))
