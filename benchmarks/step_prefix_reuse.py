"""Prompt tokens evaluated per generated token for the step-level searches (beam, pf) on the embedded model.

A step-level search sends the problem and the steps so far again at every step. llama.cpp reuses the
part a slot (or its RAM prompt cache) already holds and reports it as `cached_tokens`, which the store
keeps per request, so the figure is a count, not a timing: it does not depend on what else runs on
the machine. Also reported: the same figure for the steps after each problem's first (that first
request reads the problem itself, and on a cold server the system prompt too). Run from the repo root:
    PYTHONPATH=src python3 benchmarks/step_prefix_reuse.py [--strategies beam,pf] [--n 4] [--problems 2]
`--strategies majority --n 16 --problems 8` counts plain sampling the same way.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import infereco

FIRST_STEP = re.compile(r"(^|/)step/0/")
STEP_LEVEL = ("beam", "pf", "epf")


def measure(strategy: str, n: int, problems: int, max_steps: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "steps.db"
        t0 = time.perf_counter()
        search: dict[str, Any] | None = {"max_steps": max_steps, **({"width": 4} if strategy == "beam" else {})}
        if strategy not in STEP_LEVEL:
            search = None  # plain sampling (e.g. majority), to check a change to the server is neutral there
        infereco.run("arithmetic", level=3, limit=problems, strategy=strategy, n=n, store=db, max_tokens=64, search=search)
        wall = time.perf_counter() - t0
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT step, prompt_tokens, cached_prompt_tokens, completion_tokens FROM requests").fetchall()
    prompt, cached, completion = (sum(r[i] for r in rows) for i in (1, 2, 3))
    # the first step of each problem reads the problem itself (on a cold server, the system prompt too):
    # the later steps are the ones that can reuse a prefix that an earlier step of the search evaluated
    later = [r for r in rows if not FIRST_STEP.search(r[0]) and strategy in STEP_LEVEL]
    later_prompt, later_cached, later_completion = (sum(r[i] for r in later) for i in (1, 2, 3))
    return {
        "strategy": strategy, "n": n, "problems": problems, "requests": len(rows), "prompt": prompt, "cached": cached,
        "completion": completion, "sent_per_generated": round(prompt / completion, 3),
        "evaluated_per_generated": round((prompt - cached) / completion, 3),
        "later_requests": len(later), "later_evaluated": later_prompt - later_cached,
        "later_evaluated_per_generated": round((later_prompt - later_cached) / max(later_completion, 1), 3),
        "wall_s": round(wall, 1),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategies", default="beam,pf")
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--problems", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=6)
    args = ap.parse_args()
    for strategy in args.strategies.split(","):
        row = measure(strategy.strip(), args.n, args.problems, args.max_steps)
        print(json.dumps(row), flush=True)
        print(f"{row['strategy']}: prompt tokens evaluated per generated token {row['evaluated_per_generated']:.2f} "
              f"(sent {row['sent_per_generated']:.2f}; after the first step {row['later_evaluated_per_generated']:.2f})",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
