"""Every axis of every figure infereco draws has a label and at least two labelled ticks.

Each plot function is run on awkward data (a cost range narrower than one decade, a single-point
run, a range over many decades, an unpriced run, a human expert far off scale), and every figure it
saves is inspected as matplotlib laid it out: the tick labels that fall inside each axis's view.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure

from infereco import report
from infereco.cost_frontier import options_from_summaries
from infereco.metrics import summarize
from infereco.recommendation import recommend, settings_for_run
from infereco.sweep import SweepPoint, plot_sweep
from pools import make_pool


@pytest.fixture
def saved(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Figure]]:
    """Every Figure saved while the test runs."""
    figures: list[Figure] = []
    original = Figure.savefig

    def record(self: Figure, *args: Any, **kwargs: Any) -> Any:
        figures.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    yield figures


def labelled_ticks(ax: Any, which: str) -> list[str]:
    """The non-empty tick labels matplotlib shows inside the axis's view (major and minor)."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    lo, hi = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    span = (lambda v: math.log10(v)) if axis.get_scale() == "log" else (lambda v: v)
    tol = 1e-9 * max(1.0, abs(span(hi) - span(lo)))
    shown = []
    for ticker in (axis.major, axis.minor):
        locs = [v for v in ticker.locator() if lo > 0 or axis.get_scale() != "log"]
        inside = [v for v in locs if span(lo) - tol <= span(v) <= span(hi) + tol] if lo > 0 or axis.get_scale() != "log" else []
        ticker.formatter.set_locs(inside)
        shown += [ticker.formatter(v, i) for i, v in enumerate(inside)]
    return [t for t in shown if t.strip()]


def check(figures: list[Figure], expect: int) -> None:
    assert len(figures) == expect
    for fig in figures:
        fig.canvas.draw()
        for ax in fig.axes:
            if not ax.axison:
                continue
            for which in ("x", "y"):
                label = (ax.get_xlabel() if which == "x" else ax.get_ylabel()).strip()
                assert label, f"{ax.get_title()!r}: the {which} axis has no label"
                ticks = labelled_ticks(ax, which)
                assert len(set(ticks)) >= 2, f"{ax.get_title()!r} {which} ({label}): ticks {ticks}"


def _summaries(**kinds: Any) -> list[dict[str, Any]]:
    out = []
    for i, (label, (n, cost)) in enumerate(kinds.items()):
        pool = make_pool(30, n, seed=i, label=label, cost_per_sample=cost, with_final=True)
        out.append(summarize(pool, n_boot=50))
    return out


RANGES = {
    "narrow": dict(a=(16, 0.0004), b=(16, 0.0005)),  # ticks at 1, 2, 5 x 10^n do not fit twice
    "single point": dict(one=(1, 0.002)),  # a run of one sample per problem
    "wide": dict(cheap=(64, 1e-7), dear=(4, 3.0)),  # many decades
    "unpriced and priced": dict(free=(8, 0.0), paid=(8, 0.01)),
}


@pytest.mark.parametrize("case", list(RANGES))
def test_report_plots_label_every_axis(case: str, saved: list[Figure], tmp_path: Path) -> None:
    summaries = _summaries(**RANGES[case])
    pools = [make_pool(30, n, seed=i, label=k, cost_per_sample=c) for i, (k, (n, c)) in enumerate(RANGES[case].items())]
    found = [s for p in pools for s in settings_for_run(p, {"strategy": {"name": "majority"}, "backend": {"model": p.label}}, n_boot=50)]
    recs = recommend(found, 0.5) + recommend(found, 0.99)
    report.plot_accuracy_cost(summaries, tmp_path / "a.png", recommendations=recs)
    report.plot_cost_of_pass(summaries, tmp_path / "c.png")
    report.plot_scaling(summaries, tmp_path / "s.png")
    report.plot_cost(summaries, tmp_path / "k.png")
    check(saved, 4)


def test_unpriced_runs_only(saved: list[Figure], tmp_path: Path) -> None:
    summaries = _summaries(free=(8, 0.0), also_free=(4, 0.0))
    report.plot_accuracy_cost(summaries, tmp_path / "a.png")
    report.plot_cost_of_pass(summaries, tmp_path / "c.png")
    check(saved, 2)


@pytest.mark.parametrize("human", [None, 0.002, 250.0])
def test_frontier_labels_every_axis_and_keeps_a_far_human_off_the_scale(
    human: float | None, saved: list[Figure], tmp_path: Path
) -> None:
    summaries = _summaries(a=(8, 0.0004), b=(8, 0.0005))
    for s in summaries:
        s["config"] = {"backend": {"model": s["label"]}, "strategy": {"name": "majority"}, "task": {"name": "t"}}
    options = options_from_summaries(summaries, human_cost=human)
    report.plot_frontier(options, tmp_path / "f.png")
    check(saved, 1)
    [ax] = saved[0].axes
    lo, hi = ax.get_ylim()
    texts = " ".join(t.get_text() for t in ax.texts)
    if human == 250.0:  # a human expert 100,000x dearer than the models is an annotation, not a line
        assert hi < 1 and "off scale" in texts
    elif human is not None:
        assert lo <= human <= hi and "off scale" not in texts


def test_sweep_labels_every_axis(saved: list[Figure], tmp_path: Path) -> None:
    points = [
        SweepPoint(strategy=s, n=n, run_id="r", problems=20, accuracy=0.5 + 0.01 * n, accuracy_lo=0.4, accuracy_hi=0.7,
                   usd_per_problem=0.0004 + 0.00001 * n, tokens_per_problem=300 + n, completion_tokens_per_problem=100,
                   busy_s_per_problem=1.0, verifier_usd_per_problem=0.0)  # fmt: skip
        for s in ("majority", "bon") for n in (1, 2, 4)
    ]
    plot_sweep(points, tmp_path / "sweep.png", "narrow")
    check(saved, 1)


def test_dollar_ticks_are_readable() -> None:
    assert [report._usd_tick(x) for x in (0.0004, 0.00005, 12, 2.5, 1500, 3e-7, 0)] == [
        "$0.0004", "$0.00005", "$12", "$2.5", "$1.5k", "$3e-7", "$0",
    ]  # fmt: skip
    assert len(report.log_ticks(0.0004, 0.0006, 6)) >= 2
    assert report.log_ticks(1e-3, 1e-2, 6) == pytest.approx([1e-3, 2e-3, 5e-3, 1e-2])
    assert report.log_ticks(1e-4, 1e-2, 6) == pytest.approx([1e-4, 1e-3, 1e-2])  # 7 fine ticks: too many
    assert 2 <= len(report.log_ticks(1e-7, 10, 8)) <= 8
