"""HumanEval on the embedded model: pass@1 greedy on all 164 problems, then pass@k at T=0.8.

    python benchmarks/humaneval.py                       # the figures in docs/tasks.md
    python benchmarks/humaneval.py --problems 10 --n 4   # a quicker look

Both runs go through `infereco.run` exactly as `infereco run --task humaneval` does (EvalPlus's chat
prompt, the sanitizer, the tests in the sandbox) into one store, so a rerun reuses every sample and
only recomputes the figures. It prints one JSON object: pass@1 greedy with its 95% CI, pass@k for
k = 1..N at T=0.8 with CIs, tokens, machine time and cost.
"""

from __future__ import annotations

import argparse
import json
import time

import infereco as ie
from infereco.api import make_backend
from infereco.metrics import summarize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default="humaneval.db")
    parser.add_argument("--problems", type=int, default=None, help="greedy run: first N problems (default all 164)")
    parser.add_argument("--sampled-problems", type=int, default=40, help="T=0.8 run: first N problems")
    parser.add_argument("--n", type=int, default=8, help="T=0.8 run: samples per problem")
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (1 on a crowded machine: no spinning barriers)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per request (a crowded CPU decodes slowly)")
    parser.add_argument("--skip-sampled", action="store_true")
    parser.add_argument("--skip-greedy", action="store_true", help="only the T=0.8 run (e.g. in a second process)")
    args = parser.parse_args()

    out: dict[str, object] = {"model": "qwen2.5-coder-0.5b-instruct (Q4_K_M GGUF, llama.cpp)", "max_tokens": args.max_tokens}
    started = time.perf_counter()
    if not args.skip_greedy:
        greedy(args, out, started)
    if not args.skip_sampled:
        sampled(args, out)
    print(json.dumps(out, indent=2, default=str))


def greedy(args: argparse.Namespace, out: dict[str, object], started: float) -> None:
    backend = make_backend("llamacpp", concurrency=args.concurrency, threads=args.threads, timeout_s=args.timeout)
    greedy = ie.run("humaneval", limit=args.problems, strategy="repeated", n=1, temperature=0.0,
                    max_tokens=args.max_tokens, backend=backend, store=args.store)  # fmt: skip
    g = greedy.summary
    out["greedy"] = {
        "problems": g["n_problems"], "pass@1": g["accuracy"], "completion_tokens_mean": g["tokens"]["completion_mean"],
        "completion_tokens": greedy.totals.get("completion_tokens"), "cost_usd": greedy.totals.get("cost_usd"),
        "seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip


def sampled(args: argparse.Namespace, out: dict[str, object]) -> None:
    started = time.perf_counter()
    sampled = ie.run("humaneval", limit=args.sampled_problems, strategy="majority", n=args.n, temperature=0.8,
                     max_tokens=args.max_tokens, store=args.store,
                     backend=make_backend("llamacpp", concurrency=max(1, args.concurrency // 4), threads=args.threads,
                                          timeout_s=args.timeout))  # fmt: skip
    s = summarize(sampled.pool, ks=list(range(1, args.n + 1)))
    out["sampled"] = {
        "problems": s["n_problems"], "n": args.n, "temperature": 0.8, "ks": s["ks"],
        "pass_at_k": s["pass_at_k"], "majority_at_k": s["majority_at_k"],
        "completion_tokens_mean": s["tokens"]["completion_mean"],
        "completion_tokens": sampled.totals.get("completion_tokens"), "cost_usd": sampled.totals.get("cost_usd"),
        "seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip


if __name__ == "__main__":
    main()
