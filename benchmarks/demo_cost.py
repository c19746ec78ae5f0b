"""The demo's cost with the cores as they are, or with K more CPU-bound processes competing.

    python benchmarks/demo_cost.py --out /tmp/demo-idle              # the cores as they are
    python benchmarks/demo_cost.py --out /tmp/demo-busy --busy 2     # plus two `yes > /dev/null`

Runs `infereco demo --out DIR --json` (a fresh DIR: nothing reused) and prints one JSON line: the
stored cost (idealized runtime), the wall-time cost the same samples would have had before
(`busy_s` × $0.10/h), completion tokens, wall seconds and the load average. Compare two lines:
the stored cost should agree within 2% whatever the load; the wall-time cost does not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--busy", type=int, default=0, help="CPU-bound `yes > /dev/null` processes to run alongside")
    parser.add_argument("--limit", type=int, default=30)
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    hogs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(args.busy)]
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "infereco.cli", "demo", "--out", str(args.out), "--json",
                               "--limit", str(args.limit)], capture_output=True, text=True)  # fmt: skip
    finally:
        for hog in hogs:
            hog.terminate()
            hog.wait()
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(proc.stderr)
    with sqlite3.connect(args.out / "demo.db") as conn:
        cost, busy_s, compute_s, completion, samples = conn.execute(
            "SELECT SUM(cost_usd), SUM(busy_s), SUM(compute_s), SUM(completion_tokens), "
            "(SELECT COUNT(*) FROM samples) FROM requests"
        ).fetchone()
    print(json.dumps({
        "busy_processes": args.busy, "samples": samples, "completion_tokens": completion, "cost_usd": cost,
        "compute_s": compute_s, "wall_cost_usd": busy_s * 0.10 / 3600, "busy_s": busy_s, "elapsed_s": round(elapsed, 1),
        "load_before": load_before, "load_after": os.getloadavg()[0],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
