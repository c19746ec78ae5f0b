"""Report outputs: the table renders, the PNG is a real image, JSON is strict and round-trips."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from infereco.metrics import summarize
from infereco.report import (
    plot_cost,
    plot_cost_of_pass,
    plot_scaling,
    pool_to_pandas,
    summary_table,
    to_jsonable,
    write_json,
)
from pools import make_pool, pool_from_answers


@pytest.fixture(scope="module")
def pools() -> list:
    return [
        make_pool(30, 16, seed=1, label="cheap model", cost_per_sample=0.0002, with_final=True),
        make_pool(30, 8, p_correct=0.0, seed=2, label="never right", cost_per_sample=0.01),
        make_pool(30, [6 + i % 5 for i in range(30)], seed=3, label="ragged"),
    ]


@pytest.fixture(scope="module")
def summaries(pools: list) -> list[dict]:
    return [summarize(p, n_boot=200) for p in pools]


def _render(table: object) -> str:
    console = Console(record=True, width=220)
    console.print(table)
    return console.export_text()


def test_summary_table_rows_and_infinity(summaries: list[dict]) -> None:
    table = summary_table(summaries)
    assert table.row_count == 3
    text = _render(table)
    for label in ("cheap model", "never right", "ragged"):
        assert label in text
    assert "∞" in text  # cost-of-pass of a run that never succeeds
    acc = summaries[0]["accuracy"]
    assert f"{acc['mean']:.2f} [{acc['lo']:.2f}, {acc['hi']:.2f}]" in text


def test_summary_table_reads_json_back(summaries: list[dict], tmp_path: Path) -> None:
    path = write_json(summaries, tmp_path / "runs.json")
    loaded = json.loads(path.read_text(encoding="utf-8"))
    assert _render(summary_table(loaded)) == _render(summary_table(summaries))


def test_plot_scaling_writes_png(pools: list, tmp_path: Path) -> None:
    import matplotlib.image as mpimg

    path = plot_scaling(pools, tmp_path / "plots" / "scaling.png", n_boot=100)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    height, width = mpimg.imread(path).shape[:2]
    assert (width, height) == (1200, 500)


def test_plot_scaling_accepts_summaries_read_from_json(
    summaries: list[dict], tmp_path: Path
) -> None:
    loaded = json.loads(write_json(summaries, tmp_path / "s.json").read_text(encoding="utf-8"))
    path = plot_scaling(loaded, tmp_path / "from_json.png")
    assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 10_000


def test_json_round_trip_with_inf(summaries: list[dict], tmp_path: Path) -> None:
    path = write_json(summaries, tmp_path / "out" / "s.json")

    def no_constants(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    text = path.read_text(encoding="utf-8")
    loaded = json.loads(text, parse_constant=no_constants)
    assert loaded[1]["cost_of_pass"]["single_sample"] == "inf"
    assert loaded[1]["cost_of_pass"]["majority_at_n"] == "inf"
    assert loaded[0]["accuracy"] == pytest.approx(summaries[0]["accuracy"])
    assert loaded[0]["pass_at_k"]["mean"] == pytest.approx(summaries[0]["pass_at_k"]["mean"])
    assert loaded[2]["ks"] == summaries[2]["ks"]


def test_to_jsonable_types() -> None:
    value = {
        "a": np.float32(1.5),
        "b": np.arange(3),
        "c": (math.inf, -math.inf, math.nan),
        "d": np.bool_(True),
        1: [np.int64(7), None, "x"],
    }
    assert to_jsonable(value) == {
        "a": 1.5,
        "b": [0, 1, 2],
        "c": ["inf", "-inf", None],
        "d": True,
        "1": [7, None, "x"],
    }
    with pytest.raises(TypeError):
        to_jsonable({"x": object()})


def test_pool_to_pandas() -> None:
    pool = pool_from_answers([[0, 1, -1], [2]], {0})
    frame = pool_to_pandas(pool)
    assert len(frame) == 4  # real samples only, padding dropped
    assert list(frame.columns) == [
        "problem_id",
        "sample_index",
        "answer_id",
        "correct",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "latency_s",
    ]
    assert frame["problem_id"].tolist() == ["p0", "p0", "p0", "p1"]
    assert frame["answer_id"].tolist() == [0, 1, -1, 2]
    assert frame["correct"].tolist() == [True, False, False, False]
    assert frame["cost_usd"].sum() == pytest.approx(4 * 0.001)


def _png_size(path: Path) -> tuple[int, int]:
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    height, width = mpimg.imread(path).shape[:2]
    return width, height


def test_plot_cost_and_cost_of_pass_from_pools(pools: list, tmp_path: Path) -> None:
    free = make_pool(20, 8, seed=5, label="free", cost_per_sample=0.0)
    runs = [*pools, free]
    assert _png_size(plot_cost(runs, tmp_path / "a" / "cost.png", n_boot=100)) == (1200, 500)
    assert _png_size(plot_cost_of_pass(runs, tmp_path / "b" / "cop.png", n_boot=100)) == (1200, 550)


def test_cost_plots_accept_summaries_from_json_with_inf(summaries: list[dict], tmp_path: Path) -> None:
    loaded = json.loads(write_json(summaries, tmp_path / "s.json").read_text(encoding="utf-8"))
    assert loaded[1]["cost_of_pass_at_k"]["majority_at_k"]["mean"][0] == "inf"  # never right
    assert _png_size(plot_cost(loaded, tmp_path / "cost.png")) == (1200, 500)
    assert _png_size(plot_cost_of_pass(loaded, tmp_path / "cop.png")) == (1200, 550)


def test_cost_of_pass_plot_reads_summaries_without_the_curves(summaries: list[dict], tmp_path: Path) -> None:
    """A summary.json written before cost_of_pass_at_k existed: curves from the rate CIs."""
    old = [{k: v for k, v in s.items() if k != "cost_of_pass_at_k"} for s in summaries]
    assert _png_size(plot_cost_of_pass(old, tmp_path / "cop.png")) == (1200, 550)


def test_cost_plots_with_nothing_to_show(tmp_path: Path) -> None:
    """Only runs that never succeed, cost nothing, or have no samples: a labelled, empty figure."""
    runs = [
        make_pool(10, 4, p_correct=0.0, label="never", cost_per_sample=0.01),
        make_pool(10, 4, label="free", cost_per_sample=0.0),
        pool_from_answers([[0, 1], []], label="unsampled"),
    ]
    assert _png_size(plot_cost_of_pass(runs, tmp_path / "cop.png", n_boot=50)) == (1200, 550)
    assert _png_size(plot_cost(runs, tmp_path / "cost.png", n_boot=50)) == (1200, 500)


def test_curve_table_has_one_row_per_k_with_cost_growing_linearly(summaries: list[dict]) -> None:
    from infereco.report import curve_table

    s = summaries[0]
    table = curve_table(s)
    assert table.row_count == len(s["ks"])
    text = _render(table)
    per_sample = s["cost"]["per_sample_usd"]
    assert f"${per_sample * s['ks'][-1]:.3g}" in text  # $ per problem at the largest k = k x per sample
    never = _render(curve_table(summaries[1]))
    assert "∞" in never  # majority of a run that is never right costs infinitely much per pass
