"""Runner throughput: how many requests per second infereco itself sustains, with full bookkeeping.

A server that answers instantly runs in its own process (a minimal asyncio HTTP/1.1 server with
keep-alive, not http.server, which would be the bottleneck), so what is left is infereco's cost per
request. Three figures from one run, on the same server:
- server alone: a raw asyncio socket client (no HTTP library) against the server, its ceiling;
- backend alone: `OpenAIBackend.generate` called concurrently, no Runner, no store (httpx + JSON);
- runner: `Runner.run` on PROBLEMS x N (one request per sample, `max_n=1`): keys, seeds, budget
  reservation, pricing, checker, every request with its samples written to SQLite (group commits:
  the responses of one event-loop turn share a transaction) before its cost is committed, results,
  progress; the store is a fresh file on local disk (and, for comparison, an in-memory database).
`--profile` adds a cProfile of the runner pass (top functions by own time); `--ray` adds the same
sweep through `--executor ray` on a local Ray cluster of 2 CPUs (needs `infereco[ray]`). Run:
    python benchmarks/runner_throughput.py [--problems 1000] [--n 4] [--concurrency 64] [--ray]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_ANSWER_TEXT = "Adding the numbers gives 5.\nAnswer: 5"


# -- the instant server ---------------------------------------------------------------------------
class _InstantHTTP(asyncio.Protocol):
    """Answers every POST at once with an OpenAI chat completion of `n` choices (keep-alive)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buf[:head_end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                length = int(head[at + 15 : head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0 else None].strip())
            end = head_end + 4 + length
            if len(self.buf) < end:
                return
            body, self.buf = self.buf[head_end + 4 : end], self.buf[end:]
            try:
                n = int(json.loads(body).get("n", 1)) if body else 1
            except ValueError:
                n = 1
            choices = [
                {"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": _ANSWER_TEXT}}
                for i in range(n)
            ]
            payload = json.dumps(
                {"id": "x", "object": "chat.completion", "model": "instant", "choices": choices,
                 "usage": {"prompt_tokens": 20, "completion_tokens": 8 * n, "total_tokens": 20 + 8 * n}}
            ).encode()  # fmt: skip
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(payload), payload)
            )


def serve(port: int) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_InstantHTTP, "127.0.0.1", port, backlog=1024)
        print("ready", flush=True)
        await server.serve_forever()

    asyncio.run(main())


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    return proc, f"http://127.0.0.1:{port}/v1"


# -- the three measurements -----------------------------------------------------------------------
async def server_alone(url: str, requests: int, connections: int) -> float:
    """Requests/s a raw keep-alive socket client gets: the server's own ceiling."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    body = json.dumps({"model": "instant", "messages": [{"role": "user", "content": "What is 2 + 3?"}]}).encode()
    raw = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    per = requests // connections

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        for _ in range(per):
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    return per * connections / (time.perf_counter() - t0)


async def backend_alone(url: str, requests: int, concurrency: int) -> float:
    """Requests/s of `OpenAIBackend.generate` alone: the HTTP client and JSON, no Runner, no store."""
    from infereco.backends.base import GenerationRequest
    from infereco.backends.openai import OpenAIBackend

    backend = OpenAIBackend(url, "instant", concurrency=concurrency, max_n=1)
    messages = ({"role": "user", "content": "What is 2 + 3?"},)
    todo = iter(range(requests))

    async def worker() -> None:
        for i in todo:
            await backend.generate(GenerationRequest(messages, n=1, max_tokens=16, seed=i, key=f"k{i}"))

    try:
        await backend.generate(GenerationRequest(messages))  # connect
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return requests / (time.perf_counter() - t0)
    finally:
        await backend.aclose()


def runner_pass(url: str, problems: int, n: int, concurrency: int, store: Path, profile: bool) -> dict[str, float | str]:
    """Requests/s of a whole Runner.run with the SQLite store, pricing and the checker."""
    from infereco.backends.openai import OpenAIBackend
    from infereco.prices import Price
    from infereco.runner import Runner, RunSpec
    from infereco.store import Store
    from infereco.strategies import SamplingParams, make_strategy
    from infereco.tasks import get_task

    backend = OpenAIBackend(url, "instant", concurrency=concurrency, max_n=1)
    spec = RunSpec(get_task("arithmetic", level=3, limit=problems), make_strategy("majority", n, 0, None), SamplingParams(max_tokens=16))
    price = Price(input_per_mtok=1.0, output_per_mtok=2.0, source="benchmark")
    profiler = cProfile.Profile() if profile else None
    with Store(store) as db:
        runner = Runner(spec, backend, db, price)

        async def go() -> None:
            try:
                await runner.run()
            finally:
                await backend.aclose()

        t0 = time.perf_counter()
        if profiler:
            profiler.enable()
        asyncio.run(go())
        if profiler:
            profiler.disable()
        elapsed = time.perf_counter() - t0
        totals = db.totals(runner.run_id)
    out: dict[str, float | str] = {
        "requests": totals["requests"], "samples": totals["samples"], "seconds": round(elapsed, 2),
        "req_per_s": round(totals["requests"] / elapsed, 0),
    }  # fmt: skip
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        out["profile"] = text.getvalue()
    return out


def ray_pass(url: str, problems: int, n: int, concurrency: int, store: Path) -> dict[str, float]:
    """Requests/s of the same sweep through the Ray executor (workers + one writing driver), Ray's
    start excluded (a cluster is started once and reused)."""
    import ray

    from infereco.api import run

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 1024 * 1024)
    try:
        t0 = time.perf_counter()
        result = run(
            "arithmetic", level=3, limit=problems, n=n, backend="openai", base_url=url, model="instant", max_n=1,
            concurrency=concurrency, max_tokens=16, input_price=1.0, output_price=2.0, store=store, executor="ray",
        )  # fmt: skip
        elapsed = time.perf_counter() - t0
    finally:
        ray.shutdown()
    requests = result.totals["requests"]
    return {"requests": requests, "seconds": round(elapsed, 2), "req_per_s": round(requests / elapsed, 0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=1000)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--profile", action="store_true", help="also profile a runner pass (slower: cProfile overhead)")
    ap.add_argument("--ray", action="store_true", help="also run the sweep with --executor ray (local cluster)")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return
    proc, url = start_server()
    try:
        requests = args.problems * args.n
        result: dict[str, object] = {"problems": args.problems, "n": args.n, "concurrency": args.concurrency}
        result["server_alone_req_per_s"] = round(asyncio.run(server_alone(url, requests, 16)), 0)
        result["backend_alone_req_per_s"] = round(asyncio.run(backend_alone(url, requests, args.concurrency)), 0)
        with tempfile.TemporaryDirectory() as tmp:
            run = runner_pass(url, args.problems, args.n, args.concurrency, Path(tmp) / "bench.db", False)
            result["runner"] = run
            # the same with the store in memory: what the file writes (WAL) add
            memory = runner_pass(url, args.problems, args.n, args.concurrency, Path(":memory:"), False)
            result["runner_store_in_memory_req_per_s"] = memory["req_per_s"]
            if args.ray:
                result["ray_executor"] = ray_pass(url, args.problems, args.n, args.concurrency, Path(tmp) / "ray.db")
            if args.profile:
                prof = runner_pass(url, args.problems, args.n, args.concurrency, Path(tmp) / "prof.db", True)
                print(prof.pop("profile"))
                result["runner_under_cprofile"] = prof
        result["cpus"] = os.cpu_count()
        print(json.dumps(result, indent=2))
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
