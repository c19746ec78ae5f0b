"""Presentation of run summaries: a terminal table, a scaling plot, JSON, a pandas frame.

Nothing here computes a metric: numbers come from `metrics.summarize` (or a `SamplePool` for raw
rows), so a table, a plot and a JSON file of the same run can never disagree. Infinite values (a
cost-of-pass with zero successes) are floats until they are written: "∞" in tables, "inf" in JSON.
"""

from __future__ import annotations

import json
import math
import textwrap
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

__all__ = [
    "SUMMARY_COLUMNS",
    "plot_cost",
    "plot_accuracy_cost",
    "plot_cost_of_pass",
    "plot_scaling",
    "pool_to_pandas",
    "summary_cells",
    "summary_table",
    "to_jsonable",
    "write_json",
]


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


# (header, justify) of the summary table; the HTML report uses the same columns.
SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run", "left"),
    ("problems", "right"),
    ("N", "right"),
    ("accuracy (pass@1)", "right"),
    ("coverage (pass@N)", "right"),
    ("majority@N", "right"),
    ("strategy's answer", "right"),
    ("tokens", "right"),
    ("cost", "right"),
    ("$/pass single", "right"),
    ("$/pass majority@N", "right"),
)


def run_label(s: Mapping[str, Any]) -> str:
    """A run's label, marked when the run is unfinished or compared on part of its problems, so no
    table presents 9 problems of 40 as a finished run."""
    text = str(s.get("label", "?"))
    status = s.get("run_status") or {}
    if status.get("status") == "interrupted":
        text += f" [interrupted: {status.get('problems_done')}/{status.get('problems_planned')} problems]"
    elif status.get("status") == "empty":
        text += " [empty: no samples]"
    compared = s.get("compared_on")
    if compared and compared.get("problems") != compared.get("of"):
        text += f" (on the {compared['problems']} of its {compared['of']} problems all runs share)"
    return text


def summary_cells(s: Mapping[str, Any]) -> list[str]:
    """One run's row of the summary table as display strings, in `SUMMARY_COLUMNS` order.

    Shared by the terminal table and the HTML report so the two can never show different numbers.
    """
    cop = s.get("cost_of_pass", {})
    return [
        run_label(s),
        str(s.get("n_problems", "?")),
        str(s.get("n_samples", "?")),
        _rate(s.get("accuracy")),
        _rate(s.get("coverage")),
        _rate(s.get("majority_at_n")),
        _rate(s.get("final_accuracy")),
        _count(s.get("tokens", {}).get("total")),
        _usd(s.get("cost", {}).get("total_usd")),
        _usd(cop.get("single_sample")),
        _usd(cop.get("majority_at_n")),
    ]


def summary_table(summaries: Sequence[Mapping[str, Any]], title: str | None = None) -> Table:
    """One row per run (its label) with accuracy, coverage, majority, tokens, cost and cost-of-pass.

    Rates show the mean and the bootstrap CI; cost-of-pass is dollars per correct answer, ∞ when the
    strategy never succeeds. Accepts summaries fresh from `summarize` or read back from JSON.
    """
    table = Table(title=title or "Runs", title_justify="left")
    for header, justify in SUMMARY_COLUMNS:
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for s in summaries:
        table.add_row(*summary_cells(s))
    return table


def curve_table(summary: Mapping[str, Any]) -> Table:
    """How one run scales with k: pass@k, majority@k and their cost per problem and per correct answer.

    All rows come from the one stored pool (unbiased estimators), not from separate runs.
    """
    ks = list(summary.get("ks", []))
    table = Table(title=f"Scaling with k: {summary.get('label', '?')}", title_justify="left")
    for header in ("k", "coverage pass@k", "majority@k", "$ per problem", "$/pass majority@k", "$/pass oracle@k"):
        table.add_column(header, justify="right")
    pass_k, maj_k = summary.get("pass_at_k", {}), summary.get("majority_at_k", {})
    cop = summary.get("cost_of_pass_at_k", {})
    per_sample = _number(summary.get("cost", {}).get("per_sample_usd"))

    def at(part: Mapping[str, Any], i: int) -> dict[str, Any]:
        return {key: (part.get(key) or [None] * len(ks))[i] for key in ("mean", "lo", "hi")}

    for i, k in enumerate(ks):
        table.add_row(
            str(k),
            _rate(at(pass_k, i)),
            _rate(at(maj_k, i)),
            _usd(per_sample * k),
            _usd(at(cop.get("majority_at_k", {}), i)["mean"]),
            _usd(at(cop.get("oracle_pass_at_k", {}), i)["mean"]),
        )
    return table


# (header, justify) of the recommendation table; the HTML page, CSV and LaTeX use the same columns.
RECOMMENDATION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("target", "right"),
    ("cheapest setting reaching it", "left"),
    ("accuracy [CI]", "right"),
    ("$ per problem [CI]", "right"),
    ("$ per correct answer [CI]", "right"),
    ("runner-up of each model", "left"),
)


def _usd_ci(mean: float, lo: float, hi: float) -> str:
    return f"{_usd(mean)} [{_usd(lo)}, {_usd(hi)}]"


def recommendation_cells(rec: Any) -> list[str]:
    """One target's row: the choice with its CIs and the runner-ups, or "none reaches" and the closest."""
    how = "" if rec.confidence is None else f" (lower bound at {rec.confidence:.0%})"
    target = f"{rec.target:.2f}{how}"
    if rec.choice is None:
        c = rec.closest
        if c is None:
            return [target, "none reaches it: nothing to estimate", "–", "–", "–", "–"]
        value = c.accuracy if rec.confidence is None else c.lower_bound(rec.confidence)
        return [
            target, f"none reaches it; closest: {c.label}: {c.method} ({value:.2f})",
            f"{c.accuracy:.2f} [{c.accuracy_lo:.2f}, {c.accuracy_hi:.2f}]", _usd_ci(c.usd_per_problem, c.usd_lo, c.usd_hi),
            _usd_ci(c.cost_of_pass, c.cop_lo, c.cop_hi), "–",
        ]  # fmt: skip
    c = rec.choice
    others = "; ".join(f"{r.label}: {r.method} {_usd(r.usd_per_problem)}" for r in rec.runners_up) or "–"
    return [
        target, f"{c.label}: {c.method}", f"{c.accuracy:.2f} [{c.accuracy_lo:.2f}, {c.accuracy_hi:.2f}]",
        _usd_ci(c.usd_per_problem, c.usd_lo, c.usd_hi), _usd_ci(c.cost_of_pass, c.cop_lo, c.cop_hi), others,
    ]  # fmt: skip


def recommendation_table(recommendations: Sequence[Any], title: str | None = None) -> Table:
    """The cheapest setting per target accuracy (see `recommendation.py`), a row per (task, target)."""
    tasks = list(dict.fromkeys(r.task for r in recommendations))
    suffix = f" on {tasks[0]}" if len(tasks) == 1 and tasks[0] else ""
    table = Table(title=title or f"Cheapest way to reach each accuracy{suffix}", title_justify="left")
    for header, justify in RECOMMENDATION_COLUMNS:
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for rec in recommendations:
        table.add_row(*recommendation_cells(rec))
    return table


def efficiency_table(summaries: Sequence[Mapping[str, Any]]) -> Table:
    """Per run: requests, latency, FLOPs estimate and the idealized-runtime fit, shown only when it
    predicts held-out requests (`fits.runtime_fit_verdict`); otherwise "no reliable fit" and why."""
    from infereco.fits import runtime_fit_verdict

    table = Table(title="Efficiency", title_justify="left")
    for header in ("run", "requests", "latency mean / p90", "FLOPs", "runtime ≈ a + b·prompt + c·output", "judged on held-out requests"):
        table.add_column(header, justify="left" if header == "run" else "right")
    for s in summaries:
        eff = s.get("efficiency") or {}
        lat = eff.get("latency_s") or {}
        fit = eff.get("runtime_fit")
        shown, why = runtime_fit_verdict(fit)
        fit_text = f"{fit['a']:.3g} + {fit['b']:.3g}·p + {fit['c']:.3g}·o s" if shown and fit else "no reliable fit"
        flops = eff.get("flops")
        table.add_row(
            str(s.get("label", "?")),
            str(eff.get("requests", "–")),
            f"{_number(lat.get('mean')):.2f} / {_number(lat.get('p90')):.2f} s" if lat and eff.get("requests") else "–",
            f"{flops:.3g}" if flops else "– (model size unknown)",
            fit_text,
            why,
        )
    return table


# ----------------------------------------------------------------------------------------------
# plots: shared pieces

Run = SamplePool | Mapping[str, Any]

# How each way of spending samples is drawn in every plot: (summary key, line style, legend text).
_COVERAGE = ("pass_at_k", "-", "coverage pass@k (oracle)")
_MAJORITY = ("majority_at_k", "--", "majority@k (deployable)")
_SINGLE = ("single_sample", ":", "single sample")
# Where a band with an infinite upper bound is drawn to: far above any real cost, cut by the axes.
_SKY = 1e30


def _summaries(
    runs: Sequence[Run], ks: ArrayLike | None, n_boot: int, seed: int
) -> list[Mapping[str, Any]]:
    """Each run as a summary: pools are summarised here, summaries (fresh or from JSON) kept."""
    return [
        r if isinstance(r, Mapping) else summarize(r, ks, n_boot=n_boot, seed=seed) for r in runs
    ]


def _numbers(values: Any) -> np.ndarray:
    """A list from a summary (floats, or "inf"/None once read back from JSON) as float64."""
    return np.array([_number(v) for v in values], dtype=np.float64)


def _curve(part: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, lo, hi) arrays of one curve of a summary."""
    return _numbers(part["mean"]), _numbers(part["lo"]), _numbers(part["hi"])


def _colour(i: int) -> str:
    """The i-th run's colour: the same run has the same colour in every plot of a report."""
    from matplotlib import rcParams
    from matplotlib.colors import to_hex

    colours = rcParams["axes.prop_cycle"].by_key()["color"]
    return to_hex(colours[i % len(colours)])


def _legend_handles(
    labels: Sequence[tuple[str, str]], styles: Sequence[tuple[str, str, str]]
) -> list[Any]:
    """Legend entries: a thick colour swatch per run, then a black line per curve style."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=c, linewidth=6, alpha=0.6, label=textwrap.fill(label, 30))
        for label, c in labels
    ]
    handles += [
        Line2D([], [], color="black", linestyle=ls, label=text)  # type: ignore[arg-type]
        for _, ls, text in styles
    ]
    return handles


def _save(fig: Any, target: Path, handles: Sequence[Any], notes: Sequence[str]) -> Path:
    """Write the figure with its legend right of the axes (curves stay uncovered however many
    runs there are) and the notes (what was left out and why) under them."""
    bottom = 0.0
    if notes:
        text = "\n".join(notes)
        # parse_math=False: a note like "cost is $0 ... $" must not turn into mathtext.
        fig.text(
            0.01,
            0.01,
            text,
            fontsize=8.5,
            color="#444444",
            va="bottom",
            ha="left",
            parse_math=False,
        )
        bottom = min(0.4, 0.03 + 0.032 * len(notes))
    legend = fig.legend(
        handles=handles, loc="upper right", fontsize=9, bbox_to_anchor=(0.995, 0.93)
    )
    fig.canvas.draw()  # the legend's width is known only once drawn
    width = legend.get_window_extent().width / (fig.get_figwidth() * fig.dpi)
    fig.tight_layout(rect=(0, bottom, 1 - width - 0.01, 1))
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=100)
    return target


def _usd_tick(x: float, _: Any = None) -> str:
    """A dollar tick label a reader can read: $0.002, $0.00005, $12, $1.5k; never scientific notation
    down to a hundredth of a cent (a micro-dollar is written $1e-06: nobody reads six zeros)."""
    if x == 0:
        return "$0"
    if abs(x) >= 1000:
        return f"${x / 1000:g}k"
    if abs(x) >= 1e-5:
        text = f"{x:.6f}".rstrip("0").rstrip(".")
        return f"${text}"
    return f"${x:.0e}".replace("e-0", "e-")


def _nice(x: float) -> float:
    """x rounded to two significant digits (a tick a reader can read)."""
    if x <= 0 or not math.isfinite(x):
        return x
    digits = 1 - int(math.floor(math.log10(x)))
    return round(x, digits)


def log_ticks(lo: float, hi: float, max_ticks: int) -> list[float]:
    """Major tick positions for a log axis over [lo, hi]: 1, 2 and 5 x 10^n when at most `max_ticks`
    of them fall inside, else powers of ten (thinned to `max_ticks`), and always at least two: a
    range too narrow to hold two of either gets three evenly spaced (in log) values rounded to
    two significant digits, so a reader never faces an axis with one label or none."""
    if not (0 < lo < hi and math.isfinite(hi)):
        return []
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    decades = [10.0**e for e in range(first, last + 1)]
    fine = [m * d for d in decades for m in (1.0, 2.0, 5.0) if lo <= m * d <= hi]
    if 2 <= len(fine) <= max_ticks:
        return fine
    coarse = [d for d in decades if lo <= d <= hi]
    if len(coarse) >= 2:
        step = max(1, math.ceil(len(coarse) / max_ticks))
        return coarse[::step]
    ticks = sorted({_nice(x) for x in np.geomspace(lo, hi, 5)[1:-1]} | set(fine))
    ticks = [t for t in ticks if lo <= t <= hi]
    if len(ticks) < 2:  # rounding merged them: use the values as they are
        ticks = [float(x) for x in np.geomspace(lo, hi, 4)[1:-1]]
    return ticks


def _label_log_axis(ax: Any, which: str, formatter: Any, max_ticks: int) -> None:
    """Label a log axis (whose limits are final) with `formatter` at `log_ticks` (at least two
    labelled ticks, whatever the range); minor ticks stay unlabelled (their labels overlap)."""
    from matplotlib.ticker import FixedLocator, NullFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    lo, hi = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    ticks = log_ticks(lo, hi, max_ticks)
    if ticks:
        axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(formatter)
    axis.set_minor_formatter(NullFormatter())


# ----------------------------------------------------------------------------------------------
# plot: accuracy vs samples


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
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(12, 5), dpi=100)
    by_k, by_cost = fig.subplots(1, 2)
    labels: list[tuple[str, str]] = []
    level = 0.95
    for i, s in enumerate(_summaries(pools, ks, n_boot, seed)):
        k = _numbers(s["ks"])
        if k.size == 0:
            continue
        colour, level = _colour(i), float(s.get("level", level))
        labels.append((str(s["label"]), colour))
        per_sample = _number(s["cost"]["per_sample_usd"])
        spend = k * per_sample
        for key, style, _ in (_COVERAGE, _MAJORITY):
            mean, lo, hi = _curve(s[key])
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
    _label_log_axis(by_cost, "x", FuncFormatter(_usd_tick), max_ticks=6)
    fig.suptitle(
        f"Repeated sampling: coverage (pass@k) and majority vote, {level:.0%} bootstrap bands"
    )
    return _save(fig, Path(path), _legend_handles(labels, (_COVERAGE, _MAJORITY)), [])


# ----------------------------------------------------------------------------------------------
# plot: accuracy vs cost, the report's one view of what money buys


def _merge_marks(recommendations: Sequence[Any]) -> list[tuple[Any, list[str]]]:
    """The chosen settings of the recommendations, each once, with the targets it was chosen for."""
    marks: dict[tuple[str, str], tuple[Any, list[str]]] = {}
    for rec in recommendations:
        if rec.choice is None:
            continue
        key = (rec.choice.run_id, rec.choice.method)
        marks.setdefault(key, (rec.choice, []))[1].append(f"≥{rec.target:g}")
    return list(marks.values())


def plot_accuracy_cost(
    runs: Sequence[Run],
    path: str | Path,
    ks: ArrayLike | None = None,
    *,
    recommendations: Sequence[Any] = (),
    n_boot: int = 1000,
    seed: int = 0,
) -> Path:
    """Write a 1200x550 PNG of accuracy against what k samples per problem cost, a colour per run,
    each point marked with its k, and the recommended settings starred.

    Majority@k (dashed, what you can deploy) and coverage pass@k (solid, an oracle's ceiling) with
    bootstrap bands, against dollars per problem (k x mean cost of a sample; log axis). When no run
    is priced the axis is tokens per problem instead; a run without a price among priced ones is
    named under the axes. A star is the cheapest setting reaching a target accuracy
    (`recommend.recommend`), labelled with the targets it was chosen for. Returns the path.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import EngFormatter, FuncFormatter

    fig = Figure(figsize=(12, 5.5), dpi=100)
    ax = fig.subplots(1, 1)
    labels: list[tuple[str, str]] = []
    notes: list[str] = []
    level = 0.95
    summaries = _summaries(runs, ks, n_boot, seed)
    priced = any(_per_problem_costs(s)[0] > 0 for s in summaries if s.get("ks"))
    xs: list[float] = []
    for i, s in enumerate(summaries):
        label, k = str(s.get("label", "?")), _numbers(s.get("ks", []))
        if k.size == 0:
            notes.append(f"{label}: no samples on every problem, nothing to plot")
            continue
        usd, tokens = _per_problem_costs(s)
        unit = usd if priced else tokens
        if not unit > 0:
            notes.append(f"{label}: cost is $0 (no price given), not on the dollar axis")
            continue
        colour, level = _colour(i), float(s.get("level", level))
        labels.append((label, colour))
        x = k * unit
        xs += x.tolist()
        for key, style, alpha in ((_MAJORITY[0], _MAJORITY[1], 0.18), (_COVERAGE[0], _COVERAGE[1], 0.07)):
            mean, lo, hi = _curve(s[key])
            ax.plot(x, mean, style, color=colour, marker="o", markersize=6 if k.size == 1 else 4)
            ax.fill_between(x, lo, hi, color=colour, alpha=alpha, linewidth=0)
        for xi, yi, ki in zip(x, _curve(s["majority_at_k"])[0], k):
            if math.isfinite(yi):
                ax.annotate(f"k={int(ki)}", (xi, yi), fontsize=7, xytext=(3, -10), textcoords="offset points",
                            color=colour)  # fmt: skip
    handles = _legend_handles(labels, (_MAJORITY, _COVERAGE))  # the same line styles as every other figure
    marks = _merge_marks(recommendations) if priced else []
    for choice, targets in marks:
        ax.plot([choice.usd_per_problem], [choice.accuracy], marker="*", ms=17, color="#d4a000", mec="black",
                ls="none", zorder=5)  # fmt: skip
        ax.annotate(f"{', '.join(targets)}: {choice.method}", (choice.usd_per_problem, choice.accuracy), fontsize=8,
                    xytext=(8, 6), textcoords="offset points", fontweight="bold")  # fmt: skip
        xs.append(choice.usd_per_problem)
    if marks:
        handles.append(Line2D([], [], marker="*", ms=12, color="#d4a000", mec="black", ls="none",
                              label="cheapest setting reaching\nthe target accuracy"))  # fmt: skip
    if recommendations and not priced:
        notes.append("no run is priced: recommendations are not marked on a token axis")
    finite = [v for v in xs if math.isfinite(v) and v > 0]
    ax.set_xscale("log")
    if finite:
        lo, hi = min(finite), max(finite)
        ax.set_xlim(lo / 1.6, hi * 1.6)
    else:
        ax.set_xlim(1e-4, 1e-2) if priced else ax.set_xlim(10, 1000)
        ax.text(0.5, 0.5, "nothing priced to plot", transform=ax.transAxes, ha="center")
    ax.set_ylim(0, 1.04)
    ax.set_ylabel("share of problems solved")
    if priced:
        ax.set_xlabel("cost of k samples per problem, USD (log scale)")
        _label_log_axis(ax, "x", FuncFormatter(_usd_tick), max_ticks=8)
    else:
        ax.set_xlabel("tokens of k samples per problem, prompt + completion (log scale)")
        _label_log_axis(ax, "x", EngFormatter(sep=""), max_ticks=8)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(f"Accuracy vs cost per problem: k samples, majority vote and coverage, {level:.0%} bootstrap bands")
    return _save(fig, Path(path), handles, notes)


# ----------------------------------------------------------------------------------------------
# cost plots


def _per_problem_costs(s: Mapping[str, Any]) -> tuple[float, float]:
    """(USD, tokens) one sample costs on average: the unit of the cost axes."""
    tokens = s.get("tokens", {})
    per_sample_tokens = _number(tokens.get("prompt_mean")) + _number(tokens.get("completion_mean"))
    return _number(s.get("cost", {}).get("per_sample_usd")), per_sample_tokens


def plot_cost(
    runs: Sequence[Run],
    path: str | Path,
    ks: ArrayLike | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> Path:
    """Write a 1200x500 PNG of accuracy against what k samples per problem cost, a colour per run.

    Left: coverage (pass@k) and majority@k against dollars per problem (k x mean cost of a sample);
    right: the same against tokens per problem (k x mean prompt + completion tokens of a sample).
    Dollars depend on a price, tokens do not, so the right panel still compares runs that were
    priced differently or not at all. Runs without a price ($0) are left out of the dollar panel
    and named under it. Bands are bootstrap CIs. Returns the path.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import EngFormatter, FuncFormatter

    fig = Figure(figsize=(12, 5), dpi=100)
    by_usd, by_tokens = fig.subplots(1, 2)
    labels: list[tuple[str, str]] = []
    notes: list[str] = []
    level = 0.95
    for i, s in enumerate(_summaries(runs, ks, n_boot, seed)):
        k = _numbers(s["ks"])
        if k.size == 0:
            notes.append(f"{s.get('label', '?')}: no samples on every problem, nothing to plot")
            continue
        colour, level = _colour(i), float(s.get("level", level))
        labels.append((str(s.get("label", "?")), colour))
        usd, tokens = _per_problem_costs(s)
        if not usd > 0:
            notes.append(
                f"{s.get('label', '?')}: cost is $0 (no price given), left out of the $ panel"
            )
        for key, style, _ in (_COVERAGE, _MAJORITY):
            mean, lo, hi = _curve(s[key])
            for ax, unit in ((by_usd, usd), (by_tokens, tokens)):
                if unit > 0:
                    ax.plot(k * unit, mean, style, color=colour, marker="o", markersize=3)
                    ax.fill_between(k * unit, lo, hi, color=colour, alpha=0.15, linewidth=0)
    by_usd.set_xscale("log")
    by_usd.set_xlabel("cost of k samples per problem, USD (log scale)")
    by_usd.set_title("Accuracy vs dollars per problem")
    by_tokens.set_xscale("log")
    by_tokens.set_xlabel("tokens of k samples per problem, prompt + completion (log scale)")
    by_tokens.set_title("Accuracy vs tokens per problem")
    for ax in (by_usd, by_tokens):
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("share of problems solved")
        ax.grid(True, which="major", alpha=0.3)
    _label_log_axis(by_usd, "x", FuncFormatter(_usd_tick), max_ticks=6)
    _label_log_axis(by_tokens, "x", EngFormatter(sep=""), max_ticks=6)
    fig.suptitle(f"Accuracy vs cost: what k samples per problem buy, {level:.0%} bootstrap bands")
    return _save(fig, Path(path), _legend_handles(labels, (_COVERAGE, _MAJORITY)), notes)


def _cost_of_pass_curves(
    s: Mapping[str, Any],
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Cost-of-pass (mean, lo, hi) over the summary's ks for coverage, majority and one sample.

    Uses the summary's paired-bootstrap `cost_of_pass_at_k`; a summary written before that field
    existed falls back to k x cost per sample over the rate's CI (cost taken as fixed).
    """
    k = _numbers(s["ks"])
    stored = s.get("cost_of_pass_at_k")
    if stored:
        single = tuple(
            np.full(k.size, _number(stored["single_sample"][p])) for p in ("mean", "lo", "hi")
        )
        return {
            "pass_at_k": _curve(stored["oracle_pass_at_k"]),
            "majority_at_k": _curve(stored["majority_at_k"]),
            "single_sample": single,  # type: ignore[dict-item]
        }
    per_sample = _number(s.get("cost", {}).get("per_sample_usd"))
    acc = s.get("accuracy") or {}
    single_rate = tuple(np.full(k.size, _number(acc.get(p))) for p in ("mean", "lo", "hi"))
    out = {}
    for key, rates, spend in (
        ("pass_at_k", _curve(s["pass_at_k"]), k),
        ("majority_at_k", _curve(s["majority_at_k"]), k),
        ("single_sample", single_rate, np.ones(k.size)),
    ):
        mean, lo, hi = rates
        cost = spend * per_sample
        out[key] = (_safe_div(cost, mean), _safe_div(cost, hi), _safe_div(cost, lo))
    return out


def _safe_div(cost: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """cost / rate with infinity for a zero rate (no success, no pass at any price)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(rate == 0, np.inf, cost / rate)


def _plot_cop_curve(
    ax: Any,
    k: np.ndarray,
    curve: tuple[np.ndarray, np.ndarray, np.ndarray],
    style: str,
    colour: str,
) -> np.ndarray:
    """Draw one cost-of-pass curve and its band on a log axis; return the mask of k not drawn.

    Infinite or zero points cannot sit on a log axis: they are left out of the line, and an
    infinite upper bound becomes a band reaching past the top of the axes (drawn up to `_SKY`,
    which the axis limits cut).
    """
    mean, lo, hi = curve
    drawable = np.isfinite(mean) & (mean > 0)
    ax.plot(np.where(drawable, k, np.nan), np.where(drawable, mean, np.nan), style, color=colour,
            marker="o", markersize=7 if k.size == 1 else 3)  # fmt: skip  (a lone point must be seen)
    band = drawable & (lo > 0)
    band_lo, band_hi = (
        np.where(band, lo, np.nan),
        np.where(band, np.where(np.isinf(hi), _SKY, hi), np.nan),
    )
    ax.fill_between(k, band_lo, band_hi, color=colour, alpha=0.15, linewidth=0)
    return ~drawable


def _gap_notes(
    label: str, k: np.ndarray, gaps: Mapping[str, tuple[np.ndarray, np.ndarray]]
) -> list[str]:
    """Say which cost-of-pass points of a run were not drawn, in as few lines as it takes."""
    if all(mask.all() and np.isinf(mean).all() for mask, mean in gaps.values()):
        return [f"{label}: no success at any N, cost-of-pass is ∞ everywhere; not plotted"]
    notes = []
    for text, (mask, mean) in gaps.items():
        if mask.any():
            why = "∞ (no success)" if np.isinf(mean[mask]).all() else "∞ or undefined"
            at = ", ".join(str(int(x)) for x in k[mask])
            notes.append(f"{label}, {text}: {why} at N = {at}; not plotted")
    return notes


def plot_cost_of_pass(
    runs: Sequence[Run],
    path: str | Path,
    ks: ArrayLike | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> Path:
    """Write a 1200x550 PNG of cost-of-pass (USD per correct answer) against samples N, per run.

    Cost-of-pass = cost of one attempt / its success rate: one sample (dotted, flat: it does not
    depend on N), majority vote over N samples (dashed) and coverage pass@N (solid; an oracle that
    needs a perfect verifier, so a lower bound). The run whose curve is lowest at some N is the
    cheapest way to a correct answer there. Both axes are logarithmic; bands are paired-bootstrap
    CIs. Infinite values (a way that never succeeded) cannot be plotted: they are left out and
    listed under the axes, as are runs without a price. Returns the path.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(12, 5.5), dpi=100)
    ax = fig.subplots(1, 1)
    labels: list[tuple[str, str]] = []
    notes: list[str] = []
    finite: list[np.ndarray] = []
    level = 0.95
    for i, s in enumerate(_summaries(runs, ks, n_boot, seed)):
        label, k = str(s.get("label", "?")), _numbers(s["ks"])
        if k.size == 0:
            notes.append(f"{label}: no samples on every problem, nothing to plot")
            continue
        if not _number(s.get("cost", {}).get("per_sample_usd")) > 0:
            notes.append(f"{label}: cost is $0 (no price given), cost-of-pass not plotted")
            continue
        colour, level = _colour(i), float(s.get("level", level))
        labels.append((label, colour))
        curves = _cost_of_pass_curves(s)
        gaps = {}
        for key, style, text in (_COVERAGE, _MAJORITY, _SINGLE):
            gaps[text] = (_plot_cop_curve(ax, k, curves[key], style, colour), curves[key][0])
            values = np.concatenate(curves[key])
            finite.append(values[np.isfinite(values) & (values > 0)])
        notes += _gap_notes(label, k, gaps)
    shown = np.concatenate(finite) if finite else np.zeros(0)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.set_yscale("log")
    if shown.size:
        ax.set_ylim(shown.min() / 1.5, shown.max() * 1.5)
    else:  # nothing on the log axes: give them limits, or matplotlib cannot place a tick
        ax.set_xlim(1, 2)
        ax.set_ylim(1e-3, 1)
        ax.text(0.5, 0.5, "no finite, priced cost-of-pass", transform=ax.transAxes, ha="center")
    ax.set_xlabel("samples per problem, N (log scale)")
    ax.set_ylabel("USD per correct answer (log scale)")
    ax.set_title(
        f"Cost-of-pass vs N: cost of an attempt / its success rate, {level:.0%} bootstrap bands"
    )
    ax.grid(True, which="major", alpha=0.3)
    _label_log_axis(ax, "y", FuncFormatter(_usd_tick), max_ticks=12)
    handles = _legend_handles(labels, (_COVERAGE, _MAJORITY, _SINGLE))
    return _save(fig, Path(path), handles, notes)


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


def plot_frontier(options: Sequence[Any], path: str | Path) -> Path:
    """Cost-of-pass against accuracy for every (run, k) option; the frontier option starred.

    One line per run through its k = 1, 2, 4, … options (log y); options that never succeed are
    listed under the axes instead of plotted; a human-expert baseline is a horizontal line.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    from infereco.cost_frontier import HUMAN, frontier

    fig = Figure(figsize=(12, 5.5))
    ax = fig.add_subplot(1, 1, 1)
    best = frontier(options)
    labels = [lab for lab in dict.fromkeys(o.label for o in options) if lab != HUMAN]
    handles: list[Any] = []
    notes: list[str] = []
    for i, label in enumerate(labels):
        mine = sorted((o for o in options if o.label == label), key=lambda o: o.k)
        finite = [o for o in mine if math.isfinite(o.cost_of_pass)]
        colour = _colour(i)
        if finite:
            ax.plot([o.accuracy for o in finite], [o.cost_of_pass for o in finite], "o-", color=colour, ms=4)
            for o in finite:
                ax.annotate(f"k={o.k}", (o.accuracy, o.cost_of_pass), fontsize=7, xytext=(3, 3), textcoords="offset points")
        lost = [o.k for o in mine if not math.isfinite(o.cost_of_pass)]
        if lost:
            notes.append(f"{label}: never right at k = {', '.join(map(str, lost))} (cost-of-pass ∞), not plotted")
        handles.append(Line2D([], [], color=colour, marker="o", label=textwrap.fill(label, 34)))
    model_costs = [o.cost_of_pass for o in options if o.label != HUMAN and math.isfinite(o.cost_of_pass) and o.cost_of_pass > 0]
    human = [o for o in options if o.label == HUMAN]
    lo, hi = (min(model_costs), max(model_costs)) if model_costs else (math.nan, math.nan)
    if human:
        cost = human[0].cost_of_pass
        # far off the models' scale (over 10x beyond their range), a line would squash every curve
        # into a sliver: the expert is then an annotation at the edge it lies beyond
        if model_costs and not lo / 10 <= cost <= hi * 10:
            above = cost > hi
            ax.annotate(f"human expert: {_usd_tick(cost)} per answer (off scale, {'above' if above else 'below'})",
                        xy=(0.99, 0.98 if above else 0.02), xycoords="axes fraction", ha="right",
                        va="top" if above else "bottom", fontsize=9, color="#555555",
                        bbox={"boxstyle": "round", "fc": "white", "ec": "#999999"})  # fmt: skip
            notes.append(f"human expert at {_usd_tick(cost)} per answer is off this scale; not drawn as a line")
        else:
            ax.axhline(cost, color="#555555", ls=":", lw=1.2)
            handles.append(Line2D([], [], color="#555555", ls=":", label=f"human expert {_usd_tick(cost)}"))
            model_costs.append(cost)
    if best is not None:
        ax.plot([best.accuracy], [best.cost_of_pass], marker="*", ms=18, color="#d4a000", mec="black", ls="none")
        handles.append(Line2D([], [], marker="*", ms=12, color="#d4a000", mec="black", ls="none",
                              label=textwrap.fill(f"frontier: {best.label} k={best.k}", 34)))  # fmt: skip
    if model_costs:
        ax.set_yscale("log")
        ax.set_ylim(min(model_costs) / 1.6, max(model_costs) * 1.6)
        _label_log_axis(ax, "y", FuncFormatter(_usd_tick), max_ticks=10)
    ax.set_xlabel("accuracy (majority@k, share of problems solved)")
    ax.set_ylabel("USD per correct answer (log scale)")
    ax.set_title("Cost-of-pass frontier: the cheapest way to a correct answer among these runs")
    ax.set_xlim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    return _save(fig, Path(path), handles, notes)
