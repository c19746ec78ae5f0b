"""Exact per-choice token counts without logprobs, against a loopback server that behaves like
llama.cpp's: `usage` of a plain answer counts the first of n choices only; a streamed answer
(`stream_options.include_usage`) ends every choice with a usage chunk of its own."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from infereco.backends.base import GenerationRequest
from infereco.backends.openai import OpenAIBackend
from infereco.backends.sse import StreamError, merge_stream
from infereco.errors import BackendError

MESSAGES = ({"role": "user", "content": "What is 2 + 3?"},)
PROMPT_TOKENS = 17


def _tokens(seed: int, index: int) -> list[str]:
    """The choice's generated tokens: lengths vary by choice, the last one is the end token."""
    k = 2 + (seed * 7 + index * 5) % 9
    return [f"w{j} " for j in range(k)] + ["<eos>"]


class LlamaLike:
    """State shared by the handler threads: what was asked, and which faults to play."""

    def __init__(self, *, props: bool = True, cut_first_streams: int = 0, error_event: bool = False,
                 hangs_up: bool = False) -> None:
        self.props = props
        # as llama.cpp's server does: a chunked stream with no "Connection: close", then the socket closed
        self.hangs_up = hangs_up
        self.cut_first_streams = cut_first_streams
        self.error_event = error_event
        self.bodies: list[dict[str, Any]] = []
        self.gets: list[str] = []
        self.lock = threading.Lock()

    def choices(self, body: dict[str, Any]) -> list[list[str]]:
        return [_tokens(int(body.get("seed") or 0), i) for i in range(int(body.get("n", 1)))]


def _handler(model: LlamaLike) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, status: int, payload: Any) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:  # noqa: N802
            with model.lock:
                model.gets.append(self.path)
            if self.path == "/props" and model.props:
                self._json(200, {"default_generation_settings": {"n_ctx": 512}, "total_slots": 4, "build_info": "b1"})
            else:
                self._json(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with model.lock:
                model.bodies.append(body)
                cut = body.get("stream") and model.cut_first_streams > 0
                if cut:
                    model.cut_first_streams -= 1
            choices = model.choices(body)
            if not body.get("stream"):
                first = choices[0]
                self._json(200, {
                    "choices": [{"index": i, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "".join(t[:-1])}} for i, t in enumerate(choices)],
                    "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": len(first)},  # llama.cpp: choice 0 only
                    "timings": {"predicted_n": len(first)},
                })  # fmt: skip
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            if model.hangs_up:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Connection", "close")
            self.end_headers()
            events: list[dict[str, Any]] = []
            # interleave the choices token by token, as parallel slots do; each ends with its usage
            for step in range(max(len(t) for t in choices)):
                for i, toks in enumerate(choices):
                    if step < len(toks) - 1:
                        events.append({"choices": [{"index": i, "delta": {"content": toks[step]}, "finish_reason": None}]})
                    elif step == len(toks) - 1:
                        events.append({"choices": [{"index": i, "delta": {}, "finish_reason": "stop"}]})
                        events.append({"choices": [], "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": len(toks),
                                                                "prompt_tokens_details": {"cached_tokens": 5}}})  # fmt: skip
            lines = [f"data: {json.dumps(e)}\n\n" for e in events]
            if model.error_event:
                lines.insert(2, 'error: {"code": 500, "message": "slot crashed"}\n\n')
            if cut:
                lines = lines[: len(lines) // 2]  # the connection drops mid-answer
            else:
                lines.append("data: [DONE]\n\n")
            raw = "".join(lines).encode()
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(raw), raw) if model.hangs_up else raw)
            self.close_connection = True

    return Handler


@contextmanager
def llama_like(**kwargs: Any) -> Iterator[tuple[str, LlamaLike]]:
    model = LlamaLike(**kwargs)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(model))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", model
    finally:
        server.shutdown()
        server.server_close()


def _generate(backend: OpenAIBackend, *requests: GenerationRequest) -> list[Any]:
    async def go() -> list[Any]:
        try:
            return [await backend.generate(r) for r in requests]
        finally:
            await backend.aclose()

    return asyncio.run(go())


def test_every_choice_gets_the_servers_own_count_learned_before_the_first_request() -> None:
    with llama_like() as (url, model):
        backend = OpenAIBackend(url, "m", backoff_base_s=0.01)
        first, second = _generate(backend, GenerationRequest(MESSAGES, n=6, seed=1), GenerationRequest(MESSAGES, n=3, seed=2))
    assert model.gets == ["/props"]  # asked once, before the first request, not per request
    assert all(b.get("stream") is True and b["stream_options"] == {"include_usage": True} for b in model.bodies)
    assert all("logprobs" not in b for b in model.bodies)  # counting needs no logprobs
    for out, seed in ((first, 1), (second, 2)):
        assert [c.completion_tokens for c in out] == [len(_tokens(seed, i)) for i in range(len(out))]
        assert [c.text for c in out] == ["".join(_tokens(seed, i)[:-1]) for i in range(len(out))]
        assert sum(c.prompt_tokens for c in out) == PROMPT_TOKENS  # the prompt is counted once per request
        assert sum(c.cached_prompt_tokens for c in out) == 5


def test_one_choice_is_not_streamed_and_other_servers_are_not_probed_again() -> None:
    with llama_like(props=False) as (url, model):
        backend = OpenAIBackend(url, "m", backoff_base_s=0.01)
        (single,), _, _ = _generate(
            backend, GenerationRequest(MESSAGES, n=1, seed=4), GenerationRequest(MESSAGES, n=4, seed=4),
            GenerationRequest(MESSAGES, n=4, seed=5),
        )  # fmt: skip
    assert single.completion_tokens == len(_tokens(4, 0))
    assert model.gets == ["/props"]  # one probe: a 404 says "not llama.cpp" for good
    # the first n>1 answer carried llama.cpp's `timings` after all: from then on, it streams
    assert [bool(b.get("stream")) for b in model.bodies] == [False, False, True]


def test_a_stream_cut_short_is_retried_and_counted_once() -> None:
    with llama_like(cut_first_streams=1) as (url, model):
        backend = OpenAIBackend(url, "m", llamacpp=True, backoff_base_s=0.01, max_retries=2)
        (out,) = _generate(backend, GenerationRequest(MESSAGES, n=5, seed=3))
    assert len(model.bodies) == 2 and model.gets == []  # told it is llama.cpp: nothing to learn
    assert [c.completion_tokens for c in out] == [len(_tokens(3, i)) for i in range(5)]


def test_an_error_event_mid_stream_is_a_one_line_backend_error() -> None:
    with llama_like(error_event=True) as (url, _):
        backend = OpenAIBackend(url, "m", llamacpp=True, backoff_base_s=0.01, max_retries=1)
        with pytest.raises(BackendError) as err:
            _generate(backend, GenerationRequest(MESSAGES, n=2, seed=3))
    assert "slot crashed" in str(err.value) and "\n" not in str(err.value)


def test_merge_stream_ties_usage_to_its_choice_and_refuses_partial_streams() -> None:
    events = [
        {"choices": [{"index": 1, "delta": {"content": "a"}}]},
        {"choices": [{"index": 0, "delta": {"content": "b"}, "logprobs": {"content": [{"token": "b", "logprob": -1.0}]}}]},
        {"choices": [{"index": 1, "delta": {}, "finish_reason": "length"}]},
        {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}, "timings": {"x": 1}},
    ]
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events).encode()
    merged = merge_stream(body + b": ping\n\ndata: [DONE]\n\n")
    assert [c["message"]["content"] for c in merged["choices"]] == ["b", "a"]
    assert [c["usage"]["completion_tokens"] for c in merged["choices"]] == [2, 4]
    assert [c["finish_reason"] for c in merged["choices"]] == ["stop", "length"]
    assert merged["usage"] == {"prompt_tokens": 9, "completion_tokens": 6} and merged["timings"] == {"x": 1}
    assert merged["choices"][0]["logprobs"] == {"content": [{"token": "b", "logprob": -1.0}]}
    with pytest.raises(StreamError, match="DONE"):
        merge_stream(body)
    with pytest.raises(StreamError, match="not JSON"):
        merge_stream(b"data: {\"choices\": [\n\ndata: [DONE]\n\n")
    text = merge_stream(b'data: {"choices": [{"index": 0, "text": "x"}]}\n\ndata: [DONE]\n\n', api="completions")
    assert text["choices"][0]["text"] == "x" and "usage" not in text


def test_a_server_that_hangs_up_after_each_stream_fails_no_request() -> None:
    """llama.cpp's server closes the connection after a streamed answer without a `Connection:
    close`; a kept-alive connection then failed every other request (retried, and charged as a try
    that may have been billed). Streams to llama.cpp ask for their own connection."""
    with llama_like(hangs_up=True) as (url, model):
        backend = OpenAIBackend(url, "m", max_retries=0, llamacpp=True)
        requests = [GenerationRequest(messages=MESSAGES, n=3, seed=s) for s in range(6)]
        answers = _generate(backend, *requests)
    assert [len(a) for a in answers] == [3] * 6  # every one answered on its first and only try
    assert len(model.bodies) == 6
