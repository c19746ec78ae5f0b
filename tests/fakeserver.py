"""A tiny OpenAI-compatible server on 127.0.0.1 for tests: deterministic, counting, breakable.

It serves `/v1/chat/completions` and `/v1/completions` (a `prompt` string in, `choices[i].text`
out) with the same answers, and per-token logprobs in each API's format when asked for them.

It answers "What is A + B?"-style prompts with `Answer: A+B` (right) or `Answer: A+B+1` (wrong),
chosen from the request's seed and the choice index, so results are reproducible. It records every
request's idempotency key, and can be told to fail the first requests (429 with Retry-After, 500)
or to answer slowly, which is what the resume and retry tests need; `fail_after=K` serves K requests
and then refuses every later one with `fail_after_status` (an interrupted run). Run it as a script to
serve from a separate process: `python tests/fakeserver.py PORT [DELAY_S]`; `GET /stats` returns the
keys it served (in order) and the number of attempts, so another process can count requests.

Fault injection (`faults={"429": 0.05, "reset": 0.05, ...}`, rates per attempt): each attempt of a
request key draws its fate from a hash of (fault_seed, key, attempt number), so a run's faults do not
depend on the order concurrent requests arrive in. Kinds: 429 (with Retry-After), 500, 503, `reset`
(the answer is generated, then the connection is dropped with a TCP RST), `timeout` (generated, then
held past the client's timeout), `truncated` (half the body, then the connection closes), `invalid_json`
(a 200 whose body is not JSON), `no_usage` (a good answer without its `usage` field) and `slow` (a
good answer after `slow_s`). The server keeps its own bill: `billed` lists (key, prompt_tokens,
completion_tokens) of every answer it generated, whether or not the client received it, which is
what a provider would charge; `injected` counts faults by kind.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


FAULT_KINDS = ("429", "500", "503", "reset", "timeout", "truncated", "invalid_json", "no_usage", "slow")


class FakeModel:
    def __init__(self, *, delay_s: float = 0.0, p_correct: float = 0.7, fail_first: int = 0, fail_status: int = 429,
                 retry_after: str | None = "0", honour_n: bool = True, fail_after: int | None = None,
                 fail_after_status: int = 400, filler_max: int = 0, faults: dict[str, float] | None = None,
                 fault_seed: int = 0, timeout_hold_s: float = 1.0, slow_s: float = 0.05,
                 echo_auth: bool = False, logprobs: bool = True, mutate: Any = None) -> None:  # fmt: skip
        self.delay_s = delay_s
        #: False: a server that never returns logprobs, however it is asked (as some hosted APIs)
        self.logprobs = logprobs
        # answers get 0..filler_max extra words (random lengths), cut at the request's max_tokens
        self.filler_max = filler_max
        self.p_correct = p_correct
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.retry_after = retry_after
        self.honour_n = honour_n
        self.fail_after = fail_after
        self.fail_after_status = fail_after_status
        self.keys: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []  # the endpoint of every POST, in order
        self.attempts = 0
        self.admitted = 0
        self.lock = threading.Lock()
        self.faults = dict(faults or {})
        unknown = set(self.faults) - set(FAULT_KINDS)
        assert not unknown, f"unknown fault kinds {unknown}; known: {FAULT_KINDS}"
        assert sum(self.faults.values()) <= 1.0
        self.fault_seed = fault_seed
        # a careless server quotes the credentials it got in its error messages (secrets tests)
        self.echo_auth = echo_auth
        # a hostile server (tests/test_hostile.py): `mutate(answer, body) -> answer` rewrites each
        # good answer before it is sent (odd fields, absurd usage, fewer choices, max_tokens
        # ignored); it bills what the mutated answer's usage reports, as a provider would
        self.mutate = mutate
        self.timeout_hold_s = timeout_hold_s
        self.slow_s = slow_s
        self.tries: Counter[str] = Counter()  # attempts per request key
        self.injected: Counter[str] = Counter()  # faults by kind
        self.billed: list[tuple[str, int, int]] = []  # (key, prompt tokens, completion tokens) generated

    def fault(self, key: str) -> str | None:
        """The fault for this attempt of `key` (None: a clean answer); call with the lock held."""
        if not self.faults:
            return None
        self.tries[key] += 1
        h = int(hashlib.sha256(f"{self.fault_seed}|{key}|{self.tries[key]}".encode()).hexdigest()[:8], 16) / 2**32
        for kind in FAULT_KINDS:
            h -= self.faults.get(kind, 0.0)
            if h < 0:
                self.injected[kind] += 1
                return kind
        return None

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        completions_api = "prompt" in body  # /v1/completions: a prompt string, choices carry `text`
        prompt = body["prompt"] if completions_api else body["messages"][-1]["content"]
        numbers = [int(x) for x in re.findall(r"\d+", prompt)]
        truth = sum(numbers[:2]) if len(numbers) >= 2 else 0
        n = int(body.get("n", 1)) if self.honour_n else 1
        seed = int(body.get("seed") or 0)
        choices = []
        for i in range(n):
            h = int(hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            value = truth if h < self.p_correct else truth + 1 + int(h * 3)
            text = f"Adding the numbers step by step gives {value}.\nAnswer: {value}"
            if self.filler_max:
                filler = " ".join(["hmm"] * int(h * 1e6 % (self.filler_max + 1)))
                words = (filler + " " + text).split(" ")
                text = " ".join(words[-int(body.get("max_tokens", 10**6)):])  # the answer stays at the end
                while len(text.split()) > int(body.get("max_tokens", 10**6)):  # "x.\nAnswer:" is two tokens
                    text = text.split(" ", 1)[1]
            if completions_api:
                choice: dict[str, Any] = {"index": i, "finish_reason": "stop", "text": text}
            else:
                choice = {"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
            if self.logprobs and body.get("logprobs") not in (None, False):  # one token per word, as `usage` counts them
                words = text.split()
                choice["logprobs"] = (
                    {"tokens": words, "token_logprobs": [-0.5] * len(words)} if completions_api
                    else {"content": [{"token": w, "logprob": -0.5} for w in words]}
                )  # fmt: skip
            choices.append(choice)
        prompt_tokens = len(prompt.split()) + 10
        completion_tokens = sum(len((c.get("text") or c["message"]["content"]).split()) for c in choices)
        return {
            "id": "fake",
            "object": "chat.completion",
            "model": body.get("model", "fake"),
            "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }  # fmt: skip


def make_handler(model: FakeModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            if self.path.rstrip("/").endswith("/stats"):
                with model.lock:
                    self._send(200, {"keys": list(model.keys), "attempts": model.attempts,
                                     "injected": dict(model.injected), "billed": list(model.billed)})
                return
            self._send(200, {"status": "ok"})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            path = self.path.rstrip("/")
            # each endpoint takes only its own input, as a real server does: a client that sends a
            # prompt to /chat/completions (or messages to /completions) gets a 400, not an answer
            field = {"/v1/chat/completions": "messages", "/v1/completions": "prompt"}.get(path)
            with model.lock:
                model.paths.append(path)
            if field is None or field not in body:
                self._send(404 if field is None else 400, {"error": {"message": f"{path} needs {field!r}"}})
                return
            with model.lock:
                model.attempts += 1
                failing = model.attempts <= model.fail_first
                exhausted = not failing and model.fail_after is not None and model.admitted >= model.fail_after
                if not failing and not exhausted:
                    model.admitted += 1  # counted on arrival, so concurrent requests cannot overshoot
                model.headers.append(dict(self.headers))
            if exhausted:
                self._send(model.fail_after_status, {"error": {"message": "injected failure after quota"}})
                return
            if failing:
                headers = {"Retry-After": model.retry_after} if model.retry_after is not None else {}
                message = "injected failure"
                if model.echo_auth:
                    message = f"invalid credentials: {self.headers.get('Authorization', '')}"
                self._send(model.fail_status, {"error": {"message": message}}, headers)
                return
            key = self.headers.get("X-Infereco-Request-Key", "")
            with model.lock:
                fault = model.fault(key)
            if fault in ("429", "500", "503"):  # refused before any work: nothing billed
                headers = {"Retry-After": "0.01"} if fault == "429" else {}
                self._send(int(fault), {"error": {"message": f"injected {fault}"}}, headers)
                return
            if model.delay_s:
                time.sleep(model.delay_s)
            answer = model.answer(body)
            if model.mutate is not None:
                reported = model.mutate(answer, body)
                usage = reported.get("usage") if isinstance(reported, dict) else None
                if isinstance(usage, dict) and all(
                    isinstance(usage.get(k), (int, float)) and not isinstance(usage.get(k), bool)
                    for k in ("prompt_tokens", "completion_tokens")
                ):
                    answer = {**reported, "usage": {**answer["usage"], **usage}}  # it bills what it reports
                else:
                    answer = {**answer, "_send": reported}  # billed as generated; sent as mutated
            with model.lock:  # from here on the answer was generated: a provider bills it
                usage = answer["usage"]
                model.billed.append((key, usage["prompt_tokens"], usage["completion_tokens"]))
            answer = answer.pop("_send", answer) if "_send" in answer else answer
            if fault == "slow":
                time.sleep(model.slow_s)
            elif fault == "timeout":
                time.sleep(model.timeout_hold_s)  # the client gave up meanwhile
                self._reset()
                return
            elif fault == "reset":
                self._reset()
                return
            elif fault == "truncated":
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self._reset()
                return
            elif fault == "invalid_json":
                data = json.dumps(answer).encode()[:-7] + b"<html>"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            elif fault == "no_usage":
                answer = {k: v for k, v in answer.items() if k != "usage"}
            with model.lock:
                model.keys.append(key)
                model.bodies.append(body)
            try:
                self._send(200, answer)
            except OSError:
                pass  # the client timed out and hung up

        def _reset(self) -> None:
            """Drop the connection with a TCP RST (SO_LINGER 0), as a crashed proxy would."""
            self.close_connection = True
            try:
                self.wfile.flush()
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            except OSError:
                pass

    return Handler


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog (5) drops concurrent connects: a 1 s SYN retry each

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up mid-answer (killed, cancelled) is expected in these tests


class FakeServer:
    """Context manager: `with FakeServer() as srv: srv.base_url, srv.model.keys`."""

    def __init__(self, port: int = 0, **kwargs: Any) -> None:
        self.model = FakeModel(**kwargs)
        self.httpd = _HTTPServer(("127.0.0.1", port), make_handler(self.model))
        # a short poll interval makes shutdown() quick (the default waits up to 0.5 s per server)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def fake_server_process(delay_s: float = 0.0) -> Iterator[str]:
    """The fake server in a process of its own, so it outlives a killed client and keeps counting
    (GET /stats); yields its root URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, __file__, str(port), str(delay_s)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert "serving on" in line, line
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    port = int(sys.argv[1])
    delay = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    server = FakeServer(port, delay_s=delay)
    print(f"serving on {server.base_url}", flush=True)
    server.httpd.serve_forever()
