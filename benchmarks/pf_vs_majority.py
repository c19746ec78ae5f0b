"""Tokens generated per solved problem: particle filtering against majority vote at matched accuracy.

Reads the sweep.json that `infereco sweep` writes (run one first, e.g.
`infereco sweep --level 3 --limit 20 --strategies majority,pf --budgets 1,2,4,8 --out sweep/`) and,
for every PF budget, finds what majority vote spends to reach the same accuracy: its tokens per
problem interpolated on log(tokens) between the two budgets that bracket that accuracy. Prints a
markdown table for docs/benchmarks.md. Tokens are generated (completion) tokens of every model call,
every step and verifier call included (`--all-tokens`: prompt tokens too, which a step-level search
sends again at every step); "per solved problem" divides by accuracy.

Usage: python benchmarks/pf_vs_majority.py sweep/sweep.json [--other pf|beam|epf|bon|...]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def tokens_at(curve: list[tuple[float, float]], accuracy: float) -> float | None:
    """Tokens per problem at which a (tokens, accuracy) curve first reaches `accuracy`, or None."""
    points = sorted(curve)
    if not points or accuracy > max(a for _, a in points):
        return None
    if accuracy <= points[0][1]:
        return points[0][0]
    for (t0, a0), (t1, a1) in zip(points, points[1:]):
        if a0 < accuracy <= a1:
            w = (accuracy - a0) / (a1 - a0)
            return math.exp(math.log(t0) + w * (math.log(t1) - math.log(t0)))
        if a1 >= accuracy:  # a non-monotone stretch: the first budget that reaches it
            return t1
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_json", type=Path, nargs="+")
    parser.add_argument("--other", default="pf", help="the strategy to compare with majority (default pf)")
    parser.add_argument("--all-tokens", action="store_true", help="count prompt tokens too")
    args = parser.parse_args()
    field = "tokens_per_problem" if args.all_tokens else "completion_tokens_per_problem"
    kind = "tokens" if args.all_tokens else "generated tokens"
    print(f"| sweep | {args.other} N | accuracy | {args.other} {kind}/problem | per solved | "
          f"majority {kind}/problem at that accuracy | per solved | majority / {args.other} |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for path in args.sweep_json:
        points = json.loads(path.read_text())
        majority = [(p[field], p["accuracy"]) for p in points if p["strategy"] == "majority"]
        for p in sorted((p for p in points if p["strategy"] == args.other), key=lambda p: p["n"]):
            acc, tokens = p["accuracy"], p[field]
            mine = tokens / acc if acc > 0 else math.inf
            theirs = tokens_at(majority, acc) if acc > 0 else None
            if acc == 0:
                cells = ["nothing solved", "–", "–"]
            elif theirs is None:
                cells = ["not reached", "–", "–"]
            else:
                cells = [f"{theirs:,.0f}", f"{theirs / acc:,.0f}", f"{theirs / tokens:.2f}x"]
            print(f"| {path.parent.name} | {p['n']} | {acc:.2f} | {tokens:,.0f} | {mine:,.0f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
