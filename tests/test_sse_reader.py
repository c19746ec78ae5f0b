"""The one SSE reader (`backends.sse.EventReader`) against hostile streams, strict and tolerant.

Both readers of streams stand on it: `merge_stream` (strict: a whole llama.cpp body of n choices)
and the OpenAI backend's live reader behind `infereco serve` (tolerant: text forwarded as it
arrives). What a stream means must not depend on how the network cut it into chunks, nor on its
line endings; comments and other fields are noise; `[DONE]` ends it; garbage is refused when
strict and passed over when tolerant. The last tests drive the live reader over a loopback socket.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infereco.backends.base import GenerationRequest
from infereco.backends.openai import OpenAIBackend
from infereco.backends.sse import EventReader, StreamError, merge_stream
from infereco.errors import BackendError

SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}


def _read(chunks: list[bytes], strict: bool) -> tuple[list[dict[str, Any]], bool]:
    """(events, done) of a stream delivered in these chunks."""
    reader = EventReader(strict=strict)
    events = [e for chunk in chunks for e in reader.feed(chunk)]
    return events + reader.close(), reader.done


def _cut(body: bytes, points: list[int]) -> list[bytes]:
    cuts = sorted({min(max(p, 0), len(body)) for p in points})
    return [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)])]


def _outcome(chunks: list[bytes], strict: bool) -> Any:
    try:
        return _read(chunks, strict)
    except StreamError:
        return "refused"


EVENTS = [
    {"choices": [{"index": 0, "delta": {"content": "Hel"}}]},
    {"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
    {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
]


def _body(eol: bytes = b"\n") -> bytes:
    """EVENTS with comments and fields, the last as a multi-line event (a blank line inside it,
    as a CR and LF read apart would make, would break it)."""
    lines = [b": keep-alive", b"event: message", b"id: 1", b"retry: 100"]
    for event in EVENTS[:-1]:
        lines += [b"data: " + json.dumps(event).encode(), b""]
    lines += [b"data: " + line for line in json.dumps(EVENTS[-1], indent=1).encode().splitlines()] + [b""]
    lines += [b"data: [DONE]", b""]
    return eol.join(lines) + eol


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
@pytest.mark.parametrize("strict", [True, False], ids=["strict", "tolerant"])
def test_every_cut_and_line_ending_reads_the_same_events(eol: bytes, strict: bool) -> None:
    body = _body(eol)
    assert _read([body], strict) == (EVENTS, True)
    assert _read([body[i : i + 1] for i in range(len(body))], strict) == (EVENTS, True)  # byte by byte
    for i in range(len(body) + 1):  # cut once anywhere: mid-line, mid-"data:", between CR and LF
        assert _read([body[:i], body[i:]], strict) == (EVENTS, True), i


def test_an_event_is_read_when_its_line_ends_not_at_the_blank_line() -> None:
    """`infereco serve` forwards text as it arrives: a line is an event as soon as it is whole."""
    reader = EventReader(strict=False)
    assert reader.feed(b'data: {"a": ') == []  # half a line: nothing yet
    assert reader.feed(b"1}") == []
    assert reader.feed(b"\r") == []  # a CR may be half of CRLF: wait for the next byte
    assert reader.feed(b"\n") == [{"a": 1}]
    assert reader.feed(b"\r\n") == [] and not reader.done


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "tolerant"])
def test_a_multi_line_event_is_its_data_lines_joined(strict: bool) -> None:
    pretty = json.dumps(EVENTS[0], indent=2).encode()
    body = b"".join(b"data: " + line + b"\r\n" for line in pretty.splitlines()) + b"\r\ndata: [DONE]\r\n\r\n"
    assert _read([body], strict) == ([EVENTS[0]], True)
    # events separated by one newline only (no blank line): each line its own event
    lines = b"\n".join(b"data: " + json.dumps(e).encode() for e in EVENTS) + b"\ndata: [DONE]\n"
    assert _read([lines], strict) == (EVENTS, True)


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "tolerant"])
def test_a_stream_without_done_is_not_done_and_nothing_after_done_is_read(strict: bool) -> None:
    body = _body()
    cut = body[: body.index(b"data: [DONE]")]
    assert _read([cut], strict) == (EVENTS, False)
    assert _read([cut.rstrip(b"\n")], strict) == (EVENTS, False)  # the last line unterminated: still read
    assert _read([body + b"data: <html>\n\nerror: late\n\n" + _body()], strict) == (EVENTS, True)
    with pytest.raises(StreamError, match="DONE"):
        merge_stream(cut)


GARBAGE = [
    (b"data: <html><body>502 Bad Gateway</body></html>", "not JSON"),
    (b'data: {"choices": [', "not JSON"),
    (b"data: [1, 2]", "not an object"),
    (b'data: "text"', "not an object"),
    (b"data: \xff\xfe", "not JSON"),
    (b"data: " + b"[" * 100_000, "not JSON"),  # nested past the recursion limit
    (b'data: {"error": {"message": "slot crashed"}}', "slot crashed"),
    (b'error: {"code": 500, "message": "slot crashed"}', "slot crashed"),
]


@pytest.mark.parametrize("line, says", GARBAGE, ids=[s + str(i) for i, (_, s) in enumerate(GARBAGE)])
def test_garbage_is_refused_when_strict_and_passed_over_when_tolerant(line: bytes, says: str) -> None:
    body = _body()
    at = body.index(b"data: ", body.index(b"data: ") + 1)  # between the first and second events
    hostile = body[:at] + line + b"\n\n" + body[at:]
    with pytest.raises(StreamError, match=says):
        _read([hostile], strict=True)
    with pytest.raises(StreamError, match=says):
        merge_stream(hostile)
    events, done = _read([hostile], strict=False)
    if line.startswith(b'data: {"error"'):
        assert events == [EVENTS[0], {"error": {"message": "slot crashed"}}, *EVENTS[1:]] and done
    else:
        assert (events, done) == (EVENTS, True)
    # garbage glued to the next event without a blank line: the event still counts when tolerant
    glued = body[:at] + line + b"\n" + body[at:]
    assert _read([glued], strict=False)[0][-2:] == EVENTS[-2:]


def test_empty_data_and_comment_only_events_are_no_events() -> None:
    body = b"data:\n\n: ping\n\ndata: \n\n" + _body()
    assert _read([body], strict=True) == (EVENTS, True)


# ---- properties: any framing, any cut ----

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
# (an "error" field is an error event, refused when strict: see the garbage tests)
_events = st.lists(st.dictionaries(st.text(max_size=6).filter(lambda k: k != "error"), _json_values, max_size=4), max_size=6)
_noise = st.sampled_from([b": ping", b"event: message", b"id: 7", b"retry: 1000", b"hello"])


@st.composite
def _framed(draw: st.DrawFn, garbage: bool) -> tuple[bytes, list[dict[str, Any]], bool]:
    """(body, its events, whether it holds garbage data) in one randomly chosen framing."""
    events = draw(_events)
    eol = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    lines: list[bytes] = []
    dirty = False
    for event in events:
        for _ in range(draw(st.integers(0, 2))):
            lines.append(draw(_noise))
        if garbage and draw(st.booleans()):
            lines += [b"data: " + draw(st.sampled_from([b"<html>", b"[1]", b"{", b"nan?", b"7"])), b""]
            dirty = True
        if draw(st.booleans()):  # a multi-line event
            lines += [b"data: " + line for line in json.dumps(event, indent=1).encode().splitlines()] + [b""]
        else:
            lines.append(b"data: " + json.dumps(event).encode())
            if draw(st.booleans()):
                lines.append(b"")
    lines += [b"data: [DONE]", b""]
    return eol.join(lines) + eol, events, dirty


@settings(max_examples=150, **SETTINGS)
@given(_framed(garbage=False), st.lists(st.integers(0, 4000), max_size=6))
def test_any_framing_and_cut_reads_the_events(framed: tuple[bytes, list[dict[str, Any]], bool], cuts: list[int]) -> None:
    body, events, _ = framed
    for strict in (True, False):
        assert _read(_cut(body, cuts), strict) == (events, True)


@settings(max_examples=150, **SETTINGS)
@given(_framed(garbage=True), st.lists(st.integers(0, 4000), max_size=6))
def test_garbage_anywhere_is_refused_strictly_and_skipped_tolerantly(
    framed: tuple[bytes, list[dict[str, Any]], bool], cuts: list[int]
) -> None:
    body, events, dirty = framed
    assert _read(_cut(body, cuts), strict=False) == (events, True)
    assert _outcome(_cut(body, cuts), strict=True) == ("refused" if dirty else (events, True))


@settings(max_examples=300, **SETTINGS)
@given(st.binary(max_size=300) | st.lists(st.sampled_from([b"data: ", b"{", b"}", b"[DONE]", b"\r", b"\n", b":", b'"a"',
                                                           b"error:", b" ", b"1", b"[", b"]"]), max_size=40).map(b"".join),
       st.lists(st.integers(0, 400), max_size=5))  # fmt: skip
def test_any_bytes_read_the_same_in_any_cut_and_fail_only_as_stream_errors(body: bytes, cuts: list[int]) -> None:
    assert _outcome(_cut(body, cuts), strict=True) == _outcome([body], strict=True)
    assert _read(_cut(body, cuts), strict=False) == _read([body], strict=False)  # tolerant never raises
    for api in ("chat", "completions"):
        try:
            merge_stream(body, api)
        except StreamError:
            pass


@settings(max_examples=200, **SETTINGS)
@given(st.lists(_json_values, max_size=5), st.sampled_from(["chat", "completions"]))
def test_merge_stream_refuses_odd_events_only_as_stream_errors(values: list[Any], api: str) -> None:
    """Events whose fields have any JSON shape: merged, or refused as a `StreamError`, never a crash."""
    events = [{"choices": v} if i % 2 else {"choices": [v], "usage": v} for i, v in enumerate(values)]
    events += [{"choices": [{"index": 0, "delta": v, "text": v, "logprobs": v, "finish_reason": "stop"}]} for v in values]
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    try:
        merged = merge_stream(body, api)
    except StreamError:
        return
    json.dumps(merged)  # what the backend parses next


# ---- the live (tolerant) reader over a socket ----


class _Script:
    """What the loopback server writes, chunk by chunk; "WAIT" waits until the test saw the text."""

    def __init__(self, parts: list[bytes | str]) -> None:
        self.parts = parts
        self.seen = threading.Event()
        self.released_in_time: bool | None = None
        self.requests = 0


def _handler(script: _Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            script.requests += 1
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            for part in script.parts:
                if part == "WAIT":
                    script.released_in_time = script.seen.wait(10)
                else:
                    assert isinstance(part, bytes)
                    self.wfile.write(part)
                    self.wfile.flush()

    return Handler


@contextmanager
def _serving(script: _Script) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        script.seen.set()
        server.shutdown()
        server.server_close()


def _stream(script: _Script) -> tuple[Any, list[str]]:
    pieces: list[str] = []

    def on_text(piece: str) -> None:
        pieces.append(piece)
        script.seen.set()

    async def go() -> Any:
        backend = OpenAIBackend(url, "m", max_retries=1, backoff_base_s=0.01, timeout_s=30)
        try:
            return await backend.generate(GenerationRequest(({"role": "user", "content": "hi"},), on_text=on_text))
        finally:
            await backend.aclose()

    with _serving(script) as url:
        return asyncio.run(go()), pieces


def _event(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event).encode() + b"\r\n\r\n"


def test_a_hostile_stream_reaches_the_client_piece_by_piece() -> None:
    first = _event(EVENTS[0])
    script = _Script([
        b": ping\r\n\r\nevent: message\r\n", first[:17], first[17:-3],  # the first event cut mid-line, its CRLF split
        first[-3:], "WAIT",  # the first piece must reach on_text before the rest is sent
        b"data: <html>502</html>\r\n\r\ndata: [1]\r\n\r\n", b"data: {\"choices\": [{\"index\": 0,\r\n",
        b"data:  \"delta\": {\"content\": \"!\"}}]}\r\n\r\n",  # a multi-line event
        _event(EVENTS[1]), _event(EVENTS[2]),  # and no [DONE]: the finish reason is the end
    ])  # fmt: skip
    (completion,), pieces = _stream(script)
    assert script.released_in_time is True and script.requests == 1
    assert pieces == ["Hel", "!", "lo"] and completion.text == "Hel!lo" and completion.finish_reason == "stop"
    assert (completion.prompt_tokens, completion.completion_tokens) == (3, 2)  # the stream's own usage


def test_a_stream_cut_after_text_is_a_lost_connection_not_retried() -> None:
    script = _Script([_event(EVENTS[0]), b'data: {"choices": [{"index": 0, "delta": {"content": "lo'])
    with pytest.raises(BackendError, match="connection lost.*after streaming began"):
        _stream(script)
    assert script.requests == 1  # part of the answer was with the client: another try could differ
