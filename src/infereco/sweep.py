"""Sweeps: several strategies at several budgets on one task, compared by accuracy against full cost.

A point is (strategy, N): the accuracy of the strategy's own answers, and what it cost per problem,
every verifier call included. Strategies that draw one pool of samples (majority, bon, weighted,
bom) extend the same run as N grows, so the cost at N counts only samples 0..N-1 and the verifier
calls on them; a search (beam, pf, epf) at each N is a run of its own and costs what that run cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from infereco.store import Store
from infereco.strategies.base import content_key


@dataclass(frozen=True)
class SweepPoint:
    strategy: str
    n: int
    run_id: str
    problems: int
    accuracy: float
    accuracy_lo: float
    accuracy_hi: float
    usd_per_problem: float
    tokens_per_problem: float  # prompt + completion, every role
    completion_tokens_per_problem: float
    busy_s_per_problem: float  # machine time, every role
    verifier_usd_per_problem: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def point_cost(db: Store, run_id: str, n: int, pooled: bool) -> dict[str, float]:
    """USD, tokens and machine seconds spent per problem by a strategy at N (see module doc)."""
    rows = db.conn.execute(
        "SELECT problem_id, step, start_index, n, cost_usd, prompt_tokens, completion_tokens, busy_s FROM requests "
        "WHERE run_id=?",
        (run_id,),
    ).fetchall()
    problems = max(1, db.conn.execute("SELECT COUNT(*) FROM problems WHERE run_id=?", (run_id,)).fetchone()[0])
    used_texts: set[tuple[str, str]] = set()
    if pooled:  # which verifier steps judged samples 0..N-1 (they are named by the judged text)
        for pid, text in db.conn.execute(
            "SELECT problem_id, text FROM samples WHERE run_id=? AND step='sample' AND sample_index < ?", (run_id, n)
        ):
            used_texts.add((pid, content_key(text)))
    total = {"usd": 0.0, "tokens": 0.0, "completion": 0.0, "busy_s": 0.0, "verifier_usd": 0.0}
    for pid, step, start, count, usd, prompt, completion, busy in rows:
        share = 1.0
        verifier = step.startswith(("judge/", "reward/"))
        if pooled and step == "sample":
            share = max(0, min(start + count, n) - start) / count  # the part of the request below N
        elif pooled and verifier:
            share = 1.0 if (pid, step.rsplit("/", 1)[-1]) in used_texts else 0.0
        total["usd"] += share * usd
        total["tokens"] += share * (prompt + completion)
        total["completion"] += share * completion
        total["busy_s"] += share * busy
        if verifier:
            total["verifier_usd"] += share * usd
    return {k: v / problems for k, v in total.items()}


def plot_sweep(points: Sequence[SweepPoint], path: str | Path, title: str = "") -> Path:
    """Accuracy (with CI) against USD per problem, one line per strategy, each point labelled by N."""
    from matplotlib.figure import Figure

    from infereco.report import _colour, _usd_tick

    fig = Figure(figsize=(12, 5), dpi=100)
    by_usd, by_tokens = fig.subplots(1, 2)
    strategies = list(dict.fromkeys(p.strategy for p in points))
    for i, name in enumerate(strategies):
        line = sorted((p for p in points if p.strategy == name), key=lambda p: p.n)
        colour = _colour(i)
        for ax, x in ((by_usd, [p.usd_per_problem for p in line]), (by_tokens, [p.tokens_per_problem for p in line])):
            y = [p.accuracy for p in line]
            err = [[p.accuracy - p.accuracy_lo for p in line], [p.accuracy_hi - p.accuracy for p in line]]
            ax.errorbar(x, y, yerr=err, color=colour, marker="o", markersize=4, capsize=2, alpha=0.9,
                        label=name if ax is by_usd else None)  # fmt: skip
            for p, xi in zip(line, x, strict=True):
                ax.annotate(f"{p.n}", (xi, p.accuracy), textcoords="offset points", xytext=(4, 4), fontsize=7,
                            color=colour)  # fmt: skip
    for ax, label in ((by_usd, "USD per problem (verifier calls included)"), (by_tokens, "tokens per problem (all models)")):
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("accuracy of the strategy's answer")
        ax.grid(True, alpha=0.3)
    from matplotlib.ticker import EngFormatter, FuncFormatter

    from infereco.report import _label_log_axis

    for ax, values in ((by_usd, [p.usd_per_problem for p in points]), (by_tokens, [p.tokens_per_problem for p in points])):
        shown = [v for v in values if v > 0]
        if shown:  # explicit limits, so the ticks below are placed on the final range
            ax.set_xlim(min(shown) / 1.5, max(shown) * 1.5)
    _label_log_axis(by_usd, "x", FuncFormatter(_usd_tick), max_ticks=8)  # at least two labelled ticks
    _label_log_axis(by_tokens, "x", EngFormatter(sep=""), max_ticks=8)
    by_usd.legend(fontsize=9, loc="best")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=100)
    return target
