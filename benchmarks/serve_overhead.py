"""What `infereco serve` costs: latency added to a real request, and requests/s it sustains.

Two figures from one run, each against a baseline measured in the same run:

1. **Latency added** to a single-sample request to the embedded model (Qwen2.5-Coder-0.5B, Q4,
   llama.cpp's server started here with the embedded backend's own flags). The same chat request
   (greedy, fixed max_tokens, so both paths generate the same tokens) goes alternately straight to
   llama.cpp's server and through `infereco serve --strategy repeated --n 1` in front of that same
   server, with the official `openai` client; the figure is the median of each path and their
   ratio (target: at most 5% added at the median). The proxy path includes everything a served
   request does: validation, budget admission, the Runner's reservation, pricing, the store writes
   (problem, request with its sample, result) and the usage read back from the store.
2. **Requests/s** against an instant loopback upstream (benchmarks/runner_throughput.py's server,
   in its own process): raw keep-alive HTTP/1.1 clients (no HTTP library, so the load generator
   takes as little of the 2 cores as possible) post chat requests to `infereco serve` (repeated,
   N=1), which calls the upstream for each and stores it; the server alone (same clients, straight
   to the upstream) is the ceiling. Target: at least 1,000 req/s on 2 cores.

Run: python benchmarks/serve_overhead.py [--pairs 30] [--max-tokens 48] [--requests 6000]
     [--connections 64] [--skip-model]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import runner_throughput  # noqa: E402  (the instant upstream)

QUESTION = "Tom has 17 apples and buys 25 more. How many apples does he have?"


def start_serve(base_url: str, model: str, store: Path, *flags: str) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "infereco.cli", "serve", "--port", "0", "--backend", "openai", "--base-url", base_url,
           "--model", model, "--store", str(store), "--strategy", "repeated", "--n", "1", *flags]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    found = re.search(r"(http://127\.0\.0\.1:\d+/v1)", line)
    if not found:
        proc.kill()
        raise SystemExit(f"infereco serve did not start: {line}{proc.stderr.read()}")
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # type: ignore[union-attr]
    return proc, found.group(1)


def latency_added(pairs: int, max_tokens: int, store: Path) -> dict[str, float]:
    """Median latency of the same greedy request straight to llama.cpp's server and through the proxy."""
    import openai

    from infereco.backends.llamacpp import LlamaServer
    from infereco.backends.models import resolve_model

    name, path = resolve_model(None)
    server = LlamaServer(path)
    server.start()
    proxy = None
    try:
        proxy, proxy_url = start_serve(server.base_url, name, store, "--usd-per-hour", "0.10", "--max-retries", "0")
        direct = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0)
        served = openai.OpenAI(base_url=proxy_url, api_key="none", max_retries=0)
        body = {"model": name, "messages": [{"role": "user", "content": QUESTION}], "max_tokens": max_tokens,
                "temperature": 0.0}  # fmt: skip
        times: dict[str, list[float]] = {"direct": [], "served": []}
        tokens: dict[str, set[int]] = {"direct": set(), "served": set()}
        inside: list[float] = []  # each served request: the proxy's own time (its latency less the upstream call's)
        for i in range(pairs + 2):  # two warm-up pairs (the first loads the model's caches), alternating which goes first
            order = [("direct", direct), ("served", served)] if i % 2 == 0 else [("served", served), ("direct", direct)]
            for label, client in order:
                t0 = time.perf_counter()
                r = client.chat.completions.create(**body)  # type: ignore[arg-type]
                elapsed = time.perf_counter() - t0
                if i >= 2:
                    times[label].append(elapsed)
                    tokens[label].add(r.usage.completion_tokens if r.usage else -1)
                    if label == "served":
                        inside.append(proxy_time(store, r.infereco))  # type: ignore[attr-defined]
        d, s = statistics.median(times["direct"]), statistics.median(times["served"])
        # streamed: time to the first text, straight and through the proxy (which streams llama.cpp's tokens)
        ttft: dict[str, list[float]] = {"direct": [], "served": []}
        for i in range(max(2, pairs // 3)):
            for label, client in [("direct", direct), ("served", served)][:: 1 if i % 2 == 0 else -1]:
                t0, first = time.perf_counter(), None
                for chunk in client.chat.completions.create(**body, stream=True):  # type: ignore[arg-type]
                    if first is None and chunk.choices and chunk.choices[0].delta.content:
                        first = time.perf_counter() - t0
                ttft[label].append(first if first is not None else math.nan)
        return {"direct_median_s": d, "served_median_s": s, "added_ms": (s - d) * 1000, "added_pct": (s / d - 1) * 100,
                "completion_tokens_direct": sorted(tokens["direct"]), "completion_tokens_served": sorted(tokens["served"]),
                "pairs": pairs, "proxy_own_ms_median": statistics.median(inside) * 1000,
                "ttft_direct_median_s": statistics.median(ttft["direct"]),
                "ttft_served_median_s": statistics.median(ttft["served"])}  # type: ignore[dict-item]  # fmt: skip
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(timeout=30)
        server.stop()


def proxy_time(store: Path, info: dict[str, Any]) -> float:
    """Seconds a served request spent in the proxy: its latency less its upstream call's (from the store)."""
    import sqlite3

    with sqlite3.connect(store) as db:
        (upstream_s,) = db.execute("SELECT SUM(latency_s) FROM requests WHERE problem_id=?", (info["request_id"],)).fetchone()
    return float(info["latency_s"]) - float(upstream_s)


async def hammer(url: str, requests: int, connections: int, body: bytes, latencies: list[float] | None = None) -> float:
    """Requests/s of raw keep-alive HTTP/1.1 clients posting `body` to `url`'s chat endpoint (all must
    be 200); with `latencies`, each request's time is appended to it."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    raw = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
    per = requests // connections
    failures = 0

    async def client() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection(host, int(port))
        for _ in range(per):
            t0 = time.perf_counter()
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                failures += 1
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            if latencies is not None:
                latencies.append(time.perf_counter() - t0)
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    rate = per * connections / (time.perf_counter() - t0)
    if failures:
        raise SystemExit(f"{failures} requests were not answered 200")
    return rate


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(pids: dict[str, int], run: Any) -> tuple[float, dict[str, float]]:
    """Run `run()` (returning req/s and the request count) and the CPU each process used per request, in µs."""
    import resource

    before = {k: cpu_s(p) for k, p in pids.items()}
    self0 = resource.getrusage(resource.RUSAGE_SELF)
    rate, count = run()
    self1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = {k: (cpu_s(p) - before[k]) / count * 1e6 for k, p in pids.items()}
    cpu["client"] = ((self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime)) / count * 1e6
    return rate, cpu


def throughput(requests: int, connections: int, store: Path) -> dict[str, Any]:
    """Requests/s through the proxy, and the CPU each process spends per request.

    On a shared machine the wall-clock rate says mostly how busy the machine was; the CPU time per
    request does not depend on that, so the figure that answers "how many on 2 idle cores" is
    projected from it: the proxy is one thread (at most 1e6 / its µs per request), and the three
    processes (clients, proxy, upstream) share the 2 cores."""
    upstream, upstream_url = runner_throughput.start_server()
    body = json.dumps({"model": "instant", "messages": [{"role": "user", "content": "What is 2 + 3?"}],
                       "max_tokens": 16}).encode()  # fmt: skip
    out: dict[str, Any] = {}
    try:
        rate, cpu = measured({"upstream": upstream.pid},
                             lambda: (asyncio.run(hammer(upstream_url, requests, connections, body)), requests))  # fmt: skip
        out["upstream_alone"] = {"rps": round(rate), "cpu_us_per_request": {k: round(v) for k, v in cpu.items()}}
        proxy, proxy_url = start_serve(upstream_url, "instant", store, "--input-price", "0.15", "--output-price", "0.60",
                                       "--concurrency", str(connections))  # fmt: skip
        try:
            asyncio.run(hammer(proxy_url, min(500, requests), connections, body))  # warm-up
            # one request at a time, alternating: what the proxy adds to one request's latency (its hop
            # and all its work), with an upstream that takes no time
            alone: dict[str, list[float]] = {"direct": [], "served": []}
            for _ in range(10):
                asyncio.run(hammer(upstream_url, 20, 1, body, alone["direct"]))
                asyncio.run(hammer(proxy_url, 20, 1, body, alone["served"]))
            out["one_at_a_time_ms"] = {k: round(statistics.median(v) * 1000, 3) for k, v in alone.items()}
            out["one_at_a_time_ms"]["added"] = round(out["one_at_a_time_ms"]["served"] - out["one_at_a_time_ms"]["direct"], 3)
            rate, cpu = measured({"serve": proxy.pid, "upstream": upstream.pid},
                                 lambda: (asyncio.run(hammer(proxy_url, requests, connections, body)), requests))  # fmt: skip
        finally:
            proxy.terminate()
            proxy.wait(timeout=30)
        import sqlite3

        with sqlite3.connect(store) as db:
            stored = db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
        out["served"] = {
            "rps": round(rate), "stored_requests": stored, "cpu_us_per_request": {k: round(v) for k, v in cpu.items()},
            "projected_rps_2_idle_cores": round(min(1e6 / cpu["serve"], 2e6 / sum(cpu.values()))),
        }  # fmt: skip
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=30)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--requests", type=int, default=6000)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--skip-model", action="store_true", help="only the requests/s figure")
    args = ap.parse_args()
    out: dict[str, object] = {"load_average": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        out["throughput"] = throughput(args.requests, args.connections, Path(tmp) / "rps.db")
        print(json.dumps(out["throughput"], indent=2), flush=True)
        if not args.skip_model:
            lat = latency_added(args.pairs, args.max_tokens, Path(tmp) / "latency.db")
            # the headline: what the proxy adds to one request (measured against the instant upstream,
            # where nothing else varies) relative to a request to the embedded model
            lat["added_pct_of_direct"] = out["throughput"]["one_at_a_time_ms"]["added"] / (lat["direct_median_s"] * 1000) * 100  # type: ignore[index]
            out["latency"] = lat
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
