"""Speculative reasoning and adaptive sampling on the embedded models: accuracy against cost and wall time.

For each arithmetic level it runs, on the same problems:
- target only: majority of N on the target (Qwen2.5-Coder-0.5B, the default);
- drafter only: majority of N on the drafter (SmolLM2-135M);
- speculative: majority of N step-wise chains, SmolLM2 drafting each step, Qwen rating it 0-9 and
  rewriting it below the threshold;
- fixed N_MAX majority against adaptive sampling (at most N_MAX, rounds of 2, beta rule at 0.95) on Qwen.
Every run is stored (rerunning the script reuses the store and pays nothing), and the figure and
a JSON of the points go to --out. Wall time per problem runs from the first request's start to the
last request's end (model servers' start-up left out), divided by the problems.

Usage: python benchmarks/speculative_adaptive.py --levels 2,3,4 --limit 10 --out docs/img --store spec.db
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import infereco
from infereco.report import _colour, _usd_tick

DRAFTER = "smollm2-135m-instruct-q4"


def _per_model_tokens(store: Path, run_id: str) -> dict[str, int]:
    """Completion tokens by who wrote them: the drafter's steps (draft/...) and the target's (the rest)."""
    with sqlite3.connect(store) as conn:
        rows = conn.execute("SELECT step, completion_tokens FROM requests WHERE run_id=?", (run_id,)).fetchall()
    out = {"draft": 0, "target": 0}
    for step, tokens in rows:
        out["draft" if step.startswith("draft/") else "target"] += tokens
    return out


def _wall_s(store: Path, run_id: str, since: float) -> float:
    """Seconds from the first request's start to the last one's end, among those sent since `since`."""
    with sqlite3.connect(store) as conn:
        first, last = conn.execute(
            "SELECT MIN(created_at - latency_s), MAX(created_at) FROM requests WHERE run_id=? AND created_at >= ?",
            (run_id, since),
        ).fetchone()
    return (last - first) if first is not None else 0.0


def measure(label: str, level: int, store: Path, limit: int, **kwargs: Any) -> dict[str, Any]:
    since = time.time()
    result = infereco.run("arithmetic", level=level, limit=limit, store=store, max_tokens=128, **kwargs)
    wall = _wall_s(store, result.run_id, since)
    s, t = result.summary, result.totals
    problems = max(1, s["n_problems"])
    with sqlite3.connect(store) as conn:
        infos = [json.loads(i) for (i,) in conn.execute("SELECT info_json FROM results WHERE run_id=?", (result.run_id,))]
    used = [i.get("samples_used") for i in infos if "samples_used" in i]
    point = {
        "label": label, "level": level, "run_id": result.run_id, "problems": problems,
        "accuracy": s["final_accuracy"]["mean"], "accuracy_lo": s["final_accuracy"]["lo"], "accuracy_hi": s["final_accuracy"]["hi"],
        "usd_per_problem": t["cost_usd"] / problems, "busy_s_per_problem": t["busy_s"] / problems,
        "wall_s_per_problem": wall / problems, "reused_all": result.sent_requests == 0,
        "tokens": _per_model_tokens(store, result.run_id),
        "mean_samples_used": (sum(used) / len(used)) if used else None,
        "steps_by": _sum_steps_by(infos),
    }  # fmt: skip
    print(json.dumps(point), flush=True)
    return point


def _sum_steps_by(infos: list[dict[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for info in infos:
        for who, count in (info.get("steps_by") or {}).items():
            total[who] = total.get(who, 0) + count
    return total


def plot(points: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 5), dpi=100)
    by_usd, by_wall = fig.subplots(1, 2)
    markers = {"target only": "o", "drafter only": "v", "speculative": "*", "majority fixed": "s", "adaptive": "D"}
    levels = sorted({p["level"] for p in points})
    for p in points:
        colour = _colour(levels.index(p["level"]))
        err = [[p["accuracy"] - p["accuracy_lo"]], [p["accuracy_hi"] - p["accuracy"]]]
        for ax, x in ((by_usd, p["usd_per_problem"]), (by_wall, p["wall_s_per_problem"])):
            ax.errorbar([x], [p["accuracy"]], yerr=err, color=colour, marker=markers[p["label"]], markersize=8,
                        capsize=2, linestyle="none")  # fmt: skip
    for ax, label in ((by_usd, "USD per problem (every model's tokens and time)"), (by_wall, "wall seconds per problem")):
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("accuracy of the strategy's answer")
        ax.grid(True, alpha=0.3)
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    by_usd.xaxis.set_major_formatter(FuncFormatter(_usd_tick))
    handles = [Line2D([], [], color="grey", marker=m, linestyle="none", label=k) for k, m in markers.items()]
    handles += [Line2D([], [], color=_colour(i), linewidth=4, label=f"level {lv}") for i, lv in enumerate(levels)]
    by_wall.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside, covering no point
    fig.suptitle("Speculative steps (SmolLM2 drafts, Qwen rates) and adaptive sampling, embedded models", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="2,3,4")
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--n", type=int, default=4, help="chains (samples) for target/drafter/speculative")
    parser.add_argument("--n-max", type=int, default=16, help="fixed N and adaptive's maximum")
    parser.add_argument("--threshold", type=float, default=7.0)
    parser.add_argument("--store", type=Path, default=Path("speculative.db"))
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args()
    points = []
    for level in (int(x) for x in args.levels.split(",")):
        common = {"level": level, "store": args.store, "limit": args.limit}
        points.append(measure("target only", strategy="majority", n=args.n, **common))
        points.append(measure("drafter only", strategy="majority", n=args.n, model=DRAFTER, **common))
        points.append(measure("speculative", strategy="majority", n=args.n, draft_model=DRAFTER,
                              accept_threshold=args.threshold, **common))  # fmt: skip
        points.append(measure("majority fixed", strategy="majority", n=args.n_max, **common))
        points.append(measure("adaptive", strategy="adaptive", n=args.n_max, **common))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speculative-adaptive.json").write_text(json.dumps(points, indent=2))
    plot(points, args.out / "speculative-adaptive.png")
    print(f"wrote {args.out / 'speculative-adaptive.png'}")


if __name__ == "__main__":
    main()
