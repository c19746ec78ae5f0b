"""Sampling throughput on the embedded model: a naive sequential loop vs infereco's path.

Both draw N samples of one arithmetic problem from the same llama.cpp server process with the same
prompt, max_tokens and temperature, so the only difference is how the samples are requested:
- naive: one request per sample, each waiting for the last (how a first sampling script looks);
- infereco: the backend's path, one request asking for `n` samples, decoded together in the
  server's parallel slots with the prompt processed once.
Prints completion tokens/s for both and the ratio, measured in one run. Run:
    python benchmarks/sampling_throughput.py [--n 16] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from infereco.backends.base import GenerationRequest
from infereco.backends.llamacpp import LlamaCppBackend
from infereco.tasks import arithmetic_task


async def measure(n: int, max_tokens: int, rounds: int) -> dict[str, float]:
    task = arithmetic_task(level=3, limit=1)
    messages = tuple(task.messages(task.problems[0]))
    backend = LlamaCppBackend(slots=n)
    await backend.start()
    try:
        warm = GenerationRequest(messages, n=1, max_tokens=8, temperature=0.8, seed=0)
        await backend.generate(warm)  # load pages, warm caches
        naive_tokens = batch_tokens = 0
        naive_s = batch_s = 0.0
        for r in range(rounds):
            t0 = time.perf_counter()
            for i in range(n):
                req = GenerationRequest(messages, n=1, max_tokens=max_tokens, temperature=0.8, seed=1000 * r + i)
                naive_tokens += sum(c.completion_tokens for c in await backend.generate(req))
            naive_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            req = GenerationRequest(messages, n=n, max_tokens=max_tokens, temperature=0.8, seed=1000 * r)
            batch_tokens += sum(c.completion_tokens for c in await backend.generate(req))
            batch_s += time.perf_counter() - t0
    finally:
        await backend.aclose()
    naive_tps, batch_tps = naive_tokens / naive_s, batch_tokens / batch_s
    return {
        "n": n,
        "max_tokens": max_tokens,
        "rounds": rounds,
        "naive_tokens": naive_tokens,
        "naive_s": round(naive_s, 2),
        "naive_tok_per_s": round(naive_tps, 2),
        "infereco_tokens": batch_tokens,
        "infereco_s": round(batch_s, 2),
        "infereco_tok_per_s": round(batch_tps, 2),
        "ratio": round(batch_tps / naive_tps, 2),
        "samples_per_s_ratio": round((n * rounds / batch_s) / (n * rounds / naive_s), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    result = asyncio.run(measure(args.n, args.max_tokens, args.rounds))
    print(json.dumps(result, indent=2))
    print(f"naive loop {result['naive_tok_per_s']} tok/s, infereco {result['infereco_tok_per_s']} tok/s: {result['ratio']}x")


if __name__ == "__main__":
    main()
