"""A loopback chat-completions upstream for the `infereco serve` tests: plain and streamed answers.

Answers come from `FakeModel` (deterministic by seed; "Answer: N" for prompts with two numbers),
so a test knows what each sample says. It keeps its own bill (`billed`: request key, prompt and
completion tokens of every answer it generated), which is what the tests compare the proxy's usage
with. A streamed answer is sent word by word; with `hold_after_first`, the upstream sends the first
word and then waits (up to `hold_s`) until the test calls `release()`: a proxy that buffers instead
of streaming cannot deliver that first word, and `released_in_time` stays False. With
`break_after_first`, a streamed answer stops after its first word (the connection closes).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fakeserver import FakeModel


class Upstream:
    def __init__(self, *, fail_status: int | None = None, delay_s: float = 0.0, hold_after_first: bool = False,
                 hold_s: float = 10.0, p_correct: float = 0.7, break_after_first: bool = False) -> None:  # fmt: skip
        self.model = FakeModel(p_correct=p_correct)
        self.fail_status = fail_status
        self.delay_s = delay_s
        self.hold_after_first = hold_after_first
        self.hold_s = hold_s
        self.break_after_first = break_after_first  # a streamed answer cut after its first word
        self.lock = threading.Lock()
        self.billed: list[tuple[str, int, int]] = []
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._release = threading.Event()
        self.released_in_time: bool | None = None

    def release(self) -> None:
        self._release.set()

    def bill_for(self, request_id: str) -> tuple[int, int, int]:
        """(requests, prompt tokens, completion tokens) the upstream generated for one served request."""
        rows = [b for b in self.billed if f"/{request_id}|" in b[0]]
        return len(rows), sum(r[1] for r in rows), sum(r[2] for r in rows)


def _handler(up: Upstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            with up.lock:
                up.bodies.append(body)
                up.headers.append(dict(self.headers))
                up.in_flight += 1
                up.max_in_flight = max(up.max_in_flight, up.in_flight)
            try:
                if up.delay_s:
                    time.sleep(up.delay_s)
                if up.fail_status is not None:
                    self._json(up.fail_status, {"error": {"message": "upstream is down (injected)"}})
                    return
                answer = up.model.answer(body)
                key = self.headers.get("X-Infereco-Request-Key", "")
                usage = answer["usage"]
                with up.lock:
                    up.billed.append((key, usage["prompt_tokens"], usage["completion_tokens"]))
                if body.get("stream"):
                    self._stream(body, answer)
                else:
                    self._json(200, answer)
            finally:
                with up.lock:
                    up.in_flight -= 1

        def _stream(self, body: dict[str, Any], answer: dict[str, Any]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            text = answer["choices"][0]["message"]["content"]
            words = text.split(" ")
            pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]

            def event(payload: dict[str, Any]) -> None:
                self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
                self.wfile.flush()

            base = {"id": "up", "object": "chat.completion.chunk", "model": body.get("model")}
            event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
            for i, piece in enumerate(pieces):
                event({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
                if i == 0 and up.hold_after_first:
                    up.released_in_time = up._release.wait(up.hold_s)
                if i == 0 and up.break_after_first:
                    return  # the connection closes mid-answer
            event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if (body.get("stream_options") or {}).get("include_usage"):
                event({**base, "choices": [], "usage": answer["usage"]})
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@contextmanager
def upstream(**kwargs: Any) -> Iterator[tuple[Upstream, str]]:
    """An `Upstream` on a free loopback port; yields it and its base URL (http://127.0.0.1:PORT/v1)."""
    up = Upstream(**kwargs)
    server = _Server(("127.0.0.1", 0), _handler(up))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield up, f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        up.release()
        server.shutdown()
        server.server_close()
