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


_NOT_JSON = object()


class EventReader:
    """The JSON events of a server-sent-event body, read from its bytes as they arrive.

    The one place that knows SSE framing, for both readers of streams: `merge_stream` (strict,
    a whole body) and the OpenAI backend's live reader for `infereco serve` (tolerant, chunk by
    chunk, forwarding text as it comes). `feed(chunk)` returns the events the chunk completes;
    `close()` those the end of the body completes; `done` turns True at `data: [DONE]`, and
    nothing after it is read. Framing: lines end in LF, CRLF or CR, and a chunk may end anywhere,
    even between CR and LF; blank lines end events; `:` comments (keep-alive pings) and `event:`,
    `id:`, `retry:` fields are skipped. A `data:` line that is a JSON value by itself is an event
    at once (text reaches the client as it arrives, and servers that separate events by one
    newline are read); otherwise `data:` lines gather until the blank line and are read joined by
    newlines (a multi-line event), or, when that is no JSON either, each on its own.

    `strict`: a payload that is not JSON or not an object, an `error:` line (llama.cpp's) or an
    event with an `error` field raises `StreamError`. Tolerant: the first two are skipped, and an
    `error` event is passed on like any other (its reader decides what it means).
    """

    def __init__(self, *, strict: bool) -> None:
        self.strict = strict
        self.done = False
        self._partial = bytearray()  # the unterminated end of the last chunk
        self._data: list[bytes] = []  # the data lines of an event not yet whole

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        """The events this chunk completes, in order."""
        out: list[dict[str, Any]] = []
        if self.done:
            return out
        if b"\n" not in chunk and b"\r" not in chunk and not self._partial.endswith(b"\r"):
            self._partial += chunk  # no line ends here: a long line dripping in stays linear
            return out
        lines = (bytes(self._partial) + chunk).splitlines(keepends=True)
        self._partial = bytearray()
        if lines and not lines[-1].endswith(b"\n"):
            self._partial += lines.pop()  # unterminated, or a CR whose LF may come in the next chunk
        for line in lines:
            self._line(line, out)
            if self.done:
                self._partial = bytearray()
                break
        return out

    def close(self) -> list[dict[str, Any]]:
        """The events the end of the body completes: its unterminated last line and last event."""
        out: list[dict[str, Any]] = []
        if not self.done:
            partial, self._partial = bytes(self._partial), bytearray()
            if partial:
                self._line(partial, out)
            self._dispatch(out)
        return out

    def _line(self, raw: bytes, out: list[dict[str, Any]]) -> None:
        line = raw.strip()
        if not line:
            self._dispatch(out)  # a blank line: the event is whole
        elif line.startswith(b"error:"):
            if self.strict:
                self._dispatch(out)
                raise StreamError(f"error event in the stream: {line[6:].decode('utf-8', 'replace').strip()[:160]}")
        elif line.startswith(b"data:"):
            data = line[5:].strip()
            if data == b"[DONE]":
                self._dispatch(out)
                self.done = True
            elif self._data or (event := _loads(data)) is _NOT_JSON:
                self._data.append(data)
            else:
                self._emit(event, out)
        # else: a comment (":" ping) or a field (`event:`, `id:`, `retry:`) that carries nothing we use

    def _dispatch(self, out: list[dict[str, Any]]) -> None:
        """Read the gathered data lines of one event (see the class docstring)."""
        pieces, self._data = self._data, []
        if not any(pieces):
            return  # an event without data is no event (the SSE rule)
        event = _loads(b"\n".join(pieces)) if len(pieces) > 1 else _NOT_JSON
        if event is not _NOT_JSON:
            self._emit(event, out)
            return
        for data in pieces:  # no JSON joined: one event per line without blank lines between
            event = _loads(data) if data else None
            if event is _NOT_JSON:
                if self.strict:
                    raise StreamError(f"a stream event is not JSON: {data[:80]!r}")
            elif data:
                self._emit(event, out)

    def _emit(self, event: Any, out: list[dict[str, Any]]) -> None:
        if not isinstance(event, dict):
            if self.strict:
                raise StreamError("a stream event is not an object")
        elif self.strict and "error" in event:
            raise StreamError(f"error event in the stream: {str(event['error'])[:160]}")
        else:
            out.append(event)


def _loads(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # (UnicodeDecodeError is a ValueError)
        return _NOT_JSON


def merge_stream(body: bytes, api: str = "chat") -> dict[str, Any]:
    """The events of an SSE body as one completion object (`choices` sorted by index).

    Each choice gets `usage` when the stream gave it one; the top-level `usage` then holds the
    first choice's prompt counts (the prompt is processed once for all choices) and the sum of
    the choices' completion tokens. Raises `StreamError` if the stream did not end with `[DONE]`,
    or on anything `EventReader` refuses when strict.
    """
    choices: dict[int, dict[str, Any]] = {}
    texts: dict[int, list[str]] = {}
    last_finished: int | None = None
    extra: dict[str, Any] = {}
    reader = EventReader(strict=True)
    for event in [*reader.feed(body), *reader.close()]:
        for key in ("id", "model", "created", "system_fingerprint"):
            if key in event:
                extra.setdefault(key, event[key])
        if isinstance(event.get("timings"), dict):
            extra["timings"] = event["timings"]
        streamed = event.get("choices") or []
        if not isinstance(streamed, list):
            raise StreamError("a stream event's choices are not a list")
        for choice in streamed:
            if not isinstance(choice, dict):
                raise StreamError("a streamed choice is not an object")
            index = choice.get("index", 0)
            if not isinstance(index, int):
                raise StreamError(f"a streamed choice has index {index!r}")
            merged = choices.setdefault(index, {"index": index, "finish_reason": None, "logprobs": None})
            delta = (choice.get("delta") or {}) if api == "chat" else {"content": choice.get("text")}
            if not isinstance(delta, dict):
                raise StreamError("a streamed choice's delta is not an object")
            piece = delta.get("content")
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
    if not reader.done:
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
