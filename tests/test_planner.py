"""The training + inference compute planner ("Beyond Chinchilla-Optimal"): hand-checkable identities."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from infereco import api
from infereco.errors import UserError
from infereco.planner import ScalingLaw, chinchilla_optimal, plan

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
LAW = (
    ScalingLaw()
)  # Chinchilla approach 3: E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28


def _d_for(n: np.ndarray, loss: float, law: ScalingLaw = LAW) -> np.ndarray:
    """D_train on the iso-loss curve for each N (NaN where infeasible)."""
    rest = loss - law.E - law.A / n**law.alpha
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rest > 0, (law.B / rest) ** (1 / law.beta), np.nan)


def _grid_optimum(
    loss: float, d_inf: float, law: ScalingLaw = LAW, lo: float = 7, hi: float = 14
) -> tuple[float, float]:
    """Brute force: the best N on a fine log grid (10^lo..10^hi) along the iso-loss curve."""
    n = np.logspace(lo, hi, 400_001)
    d = _d_for(n, loss, law)
    total = np.where(np.isnan(d), np.inf, 6 * n * d + 2 * n * d_inf)
    i = int(np.argmin(total))
    return float(n[i]), float(total[i])


def test_defaults_are_chinchilla_approach_3() -> None:
    assert (LAW.E, LAW.A, LAW.B, LAW.alpha, LAW.beta) == (
        1.69,
        406.4,
        410.7,
        0.34,
        0.28,
    )


@pytest.mark.parametrize("loss", [1.9, 2.0, 2.3, 3.0])
def test_no_inference_matches_closed_form_chinchilla(loss: float) -> None:
    p = plan(loss, 0.0)
    c = loss - 1.69
    # Lagrange on min N*D s.t. A/N^a + B/D^b = c: alpha*A/N^alpha = beta*B/D^beta
    n_star = (406.4 * 0.62 / (0.28 * c)) ** (1 / 0.34)
    d_star = (410.7 * 0.62 / (0.34 * c)) ** (1 / 0.28)
    assert p.n_params == pytest.approx(n_star, rel=1e-9)
    assert p.train_tokens == pytest.approx(d_star, rel=1e-9)
    assert chinchilla_optimal(loss) == pytest.approx((n_star, d_star), rel=1e-12)
    assert p.chinchilla.n_params == pytest.approx(n_star, rel=1e-9)
    assert p.flops_saving == pytest.approx(0.0, abs=1e-12)
    # the two terms balance at the optimum
    assert 0.34 * 406.4 / p.n_params**0.34 == pytest.approx(
        0.28 * 410.7 / p.train_tokens**0.28, rel=1e-9
    )


def test_no_inference_matches_brute_force_grid() -> None:
    p = plan(2.0, 0.0)
    n_grid, total_grid = _grid_optimum(2.0, 0.0)
    assert p.n_params == pytest.approx(n_grid, rel=1e-3)
    assert p.total_flops <= total_grid * (1 + 1e-12)


@pytest.mark.parametrize("d_inf", [1e10, 1e12, 1e13, 1e15])
def test_inference_optimum_matches_brute_force_grid(d_inf: float) -> None:
    p = plan(2.0, d_inf)
    n_grid, total_grid = _grid_optimum(2.0, d_inf)
    assert p.n_params == pytest.approx(n_grid, rel=1e-3)
    assert p.total_flops <= total_grid * (1 + 1e-12)  # never worse than any grid point
    # and a local check: nudging N either way (staying on the iso-loss curve) costs more
    for factor in (0.99, 1.01):
        n = p.n_params * factor
        d = float(_d_for(np.array([n]), 2.0)[0])
        assert 6 * n * d + 2 * n * d_inf > p.total_flops


@pytest.mark.parametrize("d_inf", [0.0, 1e-20, 1e9, 1e12, 1e14, 1e18, 1e30])
@pytest.mark.parametrize("loss", [1.8, 2.0, 2.5])
def test_loss_at_plan_equals_target(loss: float, d_inf: float) -> None:
    p = plan(loss, d_inf)
    assert LAW.loss(p.n_params, p.train_tokens) == pytest.approx(loss, rel=1e-6)
    assert p.optimal.loss == pytest.approx(loss, rel=1e-9)
    assert p.chinchilla.loss == pytest.approx(loss, rel=1e-9)


def test_more_inference_means_smaller_model_trained_longer() -> None:
    plans = [plan(2.0, d) for d in [0.0, 1e9, 1e11, 1e12, 1e13, 1e14, 1e16, 1e20]]
    n = [p.n_params for p in plans]
    d = [p.train_tokens for p in plans]
    assert all(a > b for a, b in pairwise(n)), n
    assert all(a < b for a, b in pairwise(d)), d
    assert all(
        a < b
        for a, b in zip(
            [p.tokens_per_param for p in plans], [p.tokens_per_param for p in plans[1:]]
        )
    )
    # and the saving over serving the Chinchilla-optimal model grows with demand
    savings = [p.flops_saving for p in plans]
    assert all(a < b for a, b in pairwise(savings)), savings
    # N never drops below the size that can reach the loss with infinite data
    n_min = (406.4 / (2.0 - 1.69)) ** (1 / 0.34)
    assert min(n) > n_min


@pytest.mark.parametrize("d_inf", [0.0, 1e12, 1e16])
def test_flops_identities(d_inf: float) -> None:
    p = plan(2.0, d_inf)
    for pt in (p, p.chinchilla):
        assert pt.train_flops == pytest.approx(
            6 * pt.n_params * pt.train_tokens, rel=1e-12
        )
        assert pt.inference_flops == pytest.approx(2 * pt.n_params * d_inf, rel=1e-12)
        assert pt.total_flops == pytest.approx(
            pt.train_flops + pt.inference_flops, rel=1e-12
        )
        assert pt.tokens_per_param == pytest.approx(
            pt.train_tokens / pt.n_params, rel=1e-12
        )
    assert p.total_flops <= p.chinchilla.total_flops * (1 + 1e-12)
    assert p.chinchilla.inference_flops == pytest.approx(
        2 * p.chinchilla.n_params * d_inf
    )


def test_costs_from_prices() -> None:
    p = plan(2.0, 1e12, usd_per_flop_train=2e-18, usd_per_flop_inference=5e-18)
    assert p.cost_usd == pytest.approx(
        2e-18 * p.train_flops + 5e-18 * p.inference_flops, rel=1e-12
    )
    c = p.chinchilla
    assert c.cost_usd == pytest.approx(
        2e-18 * c.train_flops + 5e-18 * c.inference_flops, rel=1e-12
    )
    assert plan(2.0, 1e12).cost_usd is None


def test_minimize_usd_is_flops_problem_with_scaled_demand() -> None:
    # dollars = p_t*(6ND + 2N*D_inf*p_i/p_t): the USD optimum is the FLOPs optimum at D_inf * p_i/p_t
    by_usd = plan(
        2.0,
        1e12,
        usd_per_flop_train=1e-18,
        usd_per_flop_inference=4e-18,
        minimize="usd",
    )
    by_flops = plan(2.0, 4e12)
    assert by_usd.n_params == pytest.approx(by_flops.n_params, rel=1e-9)
    assert by_usd.train_tokens == pytest.approx(by_flops.train_tokens, rel=1e-9)
    flop_opt = plan(2.0, 1e12, usd_per_flop_train=1e-18, usd_per_flop_inference=4e-18)
    assert by_usd.cost_usd <= flop_opt.cost_usd  # type: ignore[operator]
    assert by_usd.total_flops >= flop_opt.total_flops


def test_overridden_law_constants() -> None:
    law = ScalingLaw(E=1.0, A=100.0, B=200.0, alpha=0.5, beta=0.4)
    p = plan(1.5, 1e11, E=1.0, A=100.0, B=200.0, alpha=0.5, beta=0.4)
    assert law.loss(p.n_params, p.train_tokens) == pytest.approx(1.5, rel=1e-9)
    n_grid, _ = _grid_optimum(1.5, 1e11, law, lo=3, hi=9)
    assert p.n_params == pytest.approx(n_grid, rel=1e-3)
    c = 0.5
    assert p.chinchilla.n_params == pytest.approx(
        (100 * 0.9 / (0.4 * c)) ** 2, rel=1e-9
    )


@pytest.mark.parametrize("loss", [1.69, 1.5, 0.0, float("nan"), float("inf")])
def test_unreachable_target_names_the_flag(loss: float) -> None:
    with pytest.raises(UserError, match="--target-loss"):
        plan(loss, 1e12)


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"inference_tokens": -1.0}, "--inference-tokens"),
        ({"inference_tokens": float("inf")}, "--inference-tokens"),
        ({"A": 0.0}, "--A"),
        ({"B": -1.0}, "--B"),
        ({"alpha": 0.0}, "--alpha"),
        ({"beta": float("nan")}, "--beta"),
        (
            {"usd_per_flop_train": -1.0, "usd_per_flop_inference": 1.0},
            "--usd-per-flop-train",
        ),
        ({"usd_per_flop_train": 1e-18}, "--usd-per-flop-inference"),
        ({"minimize": "time"}, "--minimize"),
        ({"minimize": "usd"}, "--minimize usd"),
    ],
)
def test_bad_input_names_the_flag(kwargs: dict, flag: str) -> None:
    args = {"inference_tokens": 1e12, **kwargs}
    with pytest.raises(UserError, match=flag):
        plan(2.0, **args)


def test_api_reexport() -> None:
    assert api.plan is plan
    assert isinstance(api.plan(2.0, 1e12), api.Plan)
    d = plan(2.0, 1e12).to_dict()
    assert json.loads(json.dumps(d))["chinchilla"]["n_params"] == pytest.approx(
        plan(2.0, 0).n_params
    )


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infereco.cli", "plan", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_table_and_json() -> None:
    done = _cli("--target-loss", "2.0", "--inference-tokens", "1e12")
    assert done.returncode == 0, done.stderr
    assert "Chinchilla-optimal" in done.stdout and "inference-aware" in done.stdout
    assert "11.517" in done.stdout and "15.303" in done.stdout  # N in billions
    done = _cli("--target-loss", "2.0", "--inference-tokens", "1e12", "--usd-per-flop-train", "1e-18",
                "--usd-per-flop-inference", "1e-18", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    want = plan(2.0, 1e12, usd_per_flop_train=1e-18, usd_per_flop_inference=1e-18)
    assert got["n_params"] == pytest.approx(want.n_params)
    assert got["cost_usd"] == pytest.approx(want.cost_usd)
    done = _cli(
        "--target-loss",
        "1.5",
        "--inference-tokens",
        "1e12",
        "--E",
        "1.0",
        "--alpha",
        "0.3",
    )
    assert done.returncode == 0, done.stderr


def test_cli_unreachable_is_one_line_exit_2() -> None:
    done = _cli("--target-loss", "1.6", "--inference-tokens", "1e12")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--target-loss" in lines[0], done.stderr
