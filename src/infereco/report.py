"""Presentation of run summaries: a terminal table, a scaling plot, JSON, a pandas frame.

Nothing here computes a metric: numbers come from `metrics.summarize` (or a `SamplePool` for raw
rows), so a table, a plot and a JSON file of the same run can never disagree. Infinite values (a
cost-of-pass with zero successes) are floats until they are written: "∞" in tables, "inf" in JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike
from rich.table import Table

from infereco.metrics import summarize
from infereco.pool import SamplePool

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["plot_scaling", "pool_to_pandas", "summary_table", "to_jsonable", "write_json"]


# ----------------------------------------------------------------------------------------------
# JSON


def to_jsonable(obj: Any) -> Any:
    """A copy of `obj` that `json.dumps` writes as strict JSON.

    numpy scalars and arrays become Python numbers and lists, tuples become lists, infinities become
    the strings "inf" / "-inf" (JSON has no infinity, and a cost-of-pass of infinity is a real
    answer), NaN becomes null (an undefined value, e.g. a curve past a problem's sample count).
    """
    if isinstance(obj, Mapping):
        return {str(key): to_jsonable(value) for key, value in obj.items()}
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(value) for value in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON: {obj!r}")


def write_json(
    summaries: Sequence[Mapping[str, Any]] | Mapping[str, Any], path: str | Path
) -> Path:
    """Write one summary or a list of them as indented strict JSON; returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_jsonable(summaries), indent=2, allow_nan=False, ensure_ascii=False)
    target.write_text(text + "\n", encoding="utf-8")
    return target


# ----------------------------------------------------------------------------------------------
# terminal table


def _number(value: Any) -> float:
    """A summary value as a float, accepting the JSON spellings of infinity and undefined."""
    if value is None:
        return math.nan
    if isinstance(value, str):
        return {"inf": math.inf, "-inf": -math.inf}.get(value, math.nan)
    return float(value)


def _rate(est: Mapping[str, Any] | None) -> str:
    """A rate with its CI, compactly: "0.62 [0.51, 0.73]"."""
    if not est:
        return "–"
    mean, lo, hi = (_number(est.get(key)) for key in ("mean", "lo", "hi"))
    if math.isnan(mean):
        return "–"
    if math.isnan(lo) or math.isnan(hi):
        return f"{mean:.2f}"
    return f"{mean:.2f} [{lo:.2f}, {hi:.2f}]"


def _usd(value: Any) -> str:
    """Money with as many digits as it needs: $12.3, $0.000123, $1.2e-05; ∞ for infinity."""
    x = _number(value)
    if math.isnan(x):
        return "–"
    if math.isinf(x):
        return "∞"
    if x == 0:
        return "$0"
    if abs(x) >= 100:
        return f"${x:,.0f}"
    if abs(x) >= 1e-4:
        return f"${x:.3g}"
    return f"${x:.2e}"


def _count(value: Any) -> str:
    """Token counts: 950, 12.3k, 4.56M."""
    x = _number(value)
    if math.isnan(x):
        return "–"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.0f}"


def summary_table(summaries: Sequence[Mapping[str, Any]], title: str | None = None) -> Table:
    """One row per run (its label) with accuracy, coverage, majority, tokens, cost and cost-of-pass.

    Rates show the mean and the bootstrap CI; cost-of-pass is dollars per correct answer, ∞ when the
    strategy never succeeds. Accepts summaries fresh from `summarize` or read back from JSON.
    """
    table = Table(title=title or "Runs", title_justify="left")
    for header, justify in [
        ("run", "left"),
        ("problems", "right"),
        ("N", "right"),
        ("accuracy (pass@1)", "right"),
        ("coverage (pass@N)", "right"),
        ("majority@N", "right"),
        ("tokens", "right"),
        ("cost", "right"),
        ("$/pass single", "right"),
        ("$/pass majority@N", "right"),
    ]:
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for s in summaries:
        cop = s.get("cost_of_pass", {})
        table.add_row(
            str(s.get("label", "?")),
            str(s.get("n_problems", "?")),
            str(s.get("n_samples", "?")),
            _rate(s.get("accuracy")),
            _rate(s.get("coverage")),
            _rate(s.get("majority_at_n")),
            _count(s.get("tokens", {}).get("total")),
            _usd(s.get("cost", {}).get("total_usd")),
            _usd(cop.get("single_sample")),
            _usd(cop.get("majority_at_n")),
        )
    return table


# ----------------------------------------------------------------------------------------------
# plot


def plot_scaling(
    pools: Sequence[SamplePool | Mapping[str, Any]],
    path: str | Path,
    ks: ArrayLike | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> Path:
    """Write a 1200x500 PNG of how accuracy grows with samples and with money, a colour per run.

    Left: coverage (pass@k, solid) and majority@k (dashed) against k on a log2 axis, with bootstrap
    CI bands. Right: the same curves against the cost of k samples per problem (k x mean cost per
    sample), so runs with different prices can be compared on one axis. Each run is a pool
    (summarised here with ks / n_boot / seed) or a summary the caller already has, used as is.
    Returns the path.
    """
    # A bare Figure renders with Agg without touching pyplot's global backend or figure list.
    from matplotlib import rcParams
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(12, 5), dpi=100)
    by_k, by_cost = fig.subplots(1, 2)
    colours = rcParams["axes.prop_cycle"].by_key()["color"]
    legend: list[Line2D] = []
    level = 0.95
    for i, run in enumerate(pools):
        s = run if isinstance(run, Mapping) else summarize(run, ks, n_boot=n_boot, seed=seed)
        k = np.asarray(s["ks"], dtype=np.float64)
        if k.size == 0:
            continue
        colour = colours[i % len(colours)]
        level = float(s.get("level", level))
        legend.append(Line2D([], [], color=colour, linewidth=6, alpha=0.6, label=s["label"]))
        per_sample = _number(s["cost"]["per_sample_usd"])
        spend = k * per_sample
        for key, style in (("pass_at_k", "-"), ("majority_at_k", "--")):
            mean, lo, hi = (
                np.array([_number(v) for v in s[key][part]]) for part in ("mean", "lo", "hi")
            )
            by_k.plot(k, mean, style, color=colour, marker="o", markersize=3)
            by_k.fill_between(k, lo, hi, color=colour, alpha=0.15, linewidth=0)
            if per_sample > 0:
                by_cost.plot(spend, mean, style, color=colour, marker="o", markersize=3)
                by_cost.fill_between(spend, lo, hi, color=colour, alpha=0.15, linewidth=0)
    by_k.set_xscale("log", base=2)
    by_k.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    by_k.set_xlabel("samples per problem, k (log scale)")
    by_k.set_ylabel("share of problems solved")
    by_k.set_title("Accuracy vs samples")
    by_cost.set_xscale("log")
    by_cost.set_xlabel("cost of k samples per problem, USD (log scale)")
    by_cost.set_ylabel("share of problems solved")
    by_cost.set_title("Accuracy vs money")
    for ax in (by_k, by_cost):
        ax.set_ylim(0, 1.02)
        ax.grid(True, which="major", alpha=0.3)
    legend += [
        Line2D([], [], color="black", linestyle="-", label="coverage (pass@k)"),
        Line2D([], [], color="black", linestyle="--", label="majority@k"),
    ]
    by_k.legend(handles=legend, fontsize=9, loc="lower right")
    fig.suptitle(
        f"Repeated sampling: coverage (pass@k) and majority vote, {level:.0%} bootstrap bands"
    )
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    return target


# ----------------------------------------------------------------------------------------------
# pandas


def pool_to_pandas(pool: SamplePool) -> pd.DataFrame:
    """One row per real sample: problem_id, sample_index, answer_id, correct, tokens, cost, latency.

    pandas is optional (the `pandas` extra), so it is imported only here.
    """
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "pool_to_pandas needs pandas: pip install 'infereco[pandas]'"
        ) from exc
    rows, cols = np.nonzero(np.asarray(pool.valid, dtype=bool))
    ids = np.asarray(pool.problem_ids, dtype=object)
    return pd.DataFrame(
        {
            "problem_id": ids[rows] if rows.size else np.zeros(0, dtype=object),
            "sample_index": cols.astype(np.int64),
            "answer_id": np.asarray(pool.answers)[rows, cols].astype(np.int64),
            "correct": np.asarray(pool.correct, dtype=bool)[rows, cols],
            "prompt_tokens": np.asarray(pool.prompt_tokens)[rows, cols].astype(np.int64),
            "completion_tokens": np.asarray(pool.completion_tokens)[rows, cols].astype(np.int64),
            "cost_usd": np.asarray(pool.cost_usd, dtype=np.float64)[rows, cols],
            "latency_s": np.asarray(pool.latency_s, dtype=np.float64)[rows, cols],
        }
    )
