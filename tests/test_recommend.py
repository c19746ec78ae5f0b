"""`infereco recommend`: the cheapest setting reaching a target accuracy, on a store sampled from two
loopback servers of known accuracy and price.

"small" answers right with probability 0.55 per sample and is cheap; "big" answers right with
probability 0.92 and costs 25 times as much per token. The expected choice for each target is
computed here independently of infereco's estimators: majority@k by enumerating every k-subset of
each problem's stored samples (ties split evenly), cost per problem as k x the problem's mean
sample cost, both read straight from SQLite.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

import infereco
from infereco import api
from infereco.recommendation import Setting
from fakeserver import FakeServer

ROOT = Path(__file__).resolve().parents[1]
N = 6
PROBLEMS = 40
SMALL_PRICE = (0.10, 0.40)  # USD per 1M prompt / completion tokens
BIG_PRICE = (2.50, 10.0)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("recommend") / "two-models.db"
    for model, p, (inp, outp) in (("small", 0.55, SMALL_PRICE), ("big", 0.92, BIG_PRICE)):
        with FakeServer(p_correct=p) as fake:
            infereco.run(
                "arithmetic", level=1, limit=PROBLEMS, strategy="majority", n=N, backend="openai", model=model,
                base_url=fake.base_url, input_price=inp, output_price=outp, store=path, label=f"{model} / majority",
                concurrency=4,
            )  # fmt: skip
    return path


def _exact_settings(path: Path) -> dict[tuple[str, int], tuple[float, float]]:
    """(model, k) -> (majority@k, USD per problem) from the raw rows, by brute force."""
    with sqlite3.connect(path) as conn:
        runs = dict(conn.execute("SELECT run_id, json_extract(config_json, '$.backend.model') FROM runs"))
        rows = conn.execute("SELECT run_id, problem_id, answer, correct, cost_usd FROM samples WHERE step='sample'")
        by_problem: dict[tuple[str, str], list[tuple[str | None, bool, float]]] = defaultdict(list)
        for run_id, pid, answer, correct, cost in rows:
            by_problem[(run_id, pid)].append((answer, bool(correct), cost))
    out: dict[tuple[str, int], tuple[float, float]] = {}
    for run_id, model in runs.items():
        problems = [v for (r, _), v in by_problem.items() if r == run_id]
        assert len(problems) == PROBLEMS and all(len(v) == N for v in problems)
        for k in range(1, N + 1):
            acc, usd = 0.0, 0.0
            for samples in problems:
                right = {a for a, ok, _ in samples if ok and a is not None}
                subsets = list(itertools.combinations(samples, k))
                score = 0.0
                for subset in subsets:
                    votes = Counter(a for a, _, _ in subset if a is not None)
                    if not votes:
                        continue
                    top = max(votes.values())
                    tied = [a for a, c in votes.items() if c == top]
                    score += sum(a in right for a in tied) / len(tied)
                acc += score / len(subsets)
                usd += k * sum(c for _, _, c in samples) / len(samples)
            out[(model, k)] = (acc / len(problems), usd / len(problems))
    return out


def _expected(exact: dict[tuple[str, int], tuple[float, float]], target: float) -> tuple[str, int] | None:
    reaching = [(usd, -acc, k, model) for (model, k), (acc, usd) in exact.items() if acc >= target - 1e-12]
    if not reaching:
        return None
    _, _, k, model = min(reaching)
    return model, k


def test_store_holds_two_models_of_known_accuracy_and_price(store: Path) -> None:
    exact = _exact_settings(store)
    assert 0.4 < exact[("small", 1)][0] < 0.7 and 0.82 < exact[("big", 1)][0] <= 1.0
    assert exact[("big", 1)][1] > 2 * exact[("small", N)][1]  # big's one sample costs more than small's N
    # voting helps the weak model: majority@k climbs with k
    assert exact[("small", N - 1)][0] > exact[("small", 1)][0] + 0.08


def test_recommend_picks_the_cheapest_setting_for_each_target(store: Path) -> None:
    exact = _exact_settings(store)
    small = [exact[("small", k)][0] for k in range(1, N + 1)]
    big_best = max(exact[("big", k)][0] for k in range(1, N + 1))
    # a target only a vote of the small model reaches, below its N; one only the big model reaches
    vote_target = next(acc for k, acc in enumerate(small, start=1) if 1 < k < N and acc > small[0] + 0.05)
    targets = {
        "single small sample": small[0] - 0.01,
        "small model's vote below N": vote_target,
        "big model": (max(small) + exact[("big", 1)][0]) / 2,
        "unreachable": min(1.0, big_best + 0.02),
    }
    assert targets["big model"] > max(small)
    for why, target in targets.items():
        [rec] = infereco.recommend(store, target)
        want = _expected(exact, target)
        if want is None:
            assert why == "unreachable"
            assert rec.choice is None and not rec.reached and "none reaches" in rec.headline()
            best_acc = max(acc for acc, _ in exact.values())
            assert rec.closest is not None and rec.closest.accuracy == pytest.approx(best_acc, abs=1e-9)
            assert rec.closest.model == "big"
            continue
        assert rec.choice is not None, why
        assert (rec.choice.model, rec.choice.k) == want, (why, target, rec.choice)
        acc, usd = exact[want]
        assert rec.choice.accuracy == pytest.approx(acc, abs=1e-9)  # exact: C(6, k) subsets are enumerated
        assert rec.choice.usd_per_problem == pytest.approx(usd, rel=1e-9)
        assert rec.choice.accuracy_lo <= rec.choice.accuracy <= rec.choice.accuracy_hi
        assert rec.choice.usd_lo <= rec.choice.usd_per_problem <= rec.choice.usd_hi
        assert rec.choice.cop_lo <= rec.choice.cost_of_pass <= rec.choice.cop_hi
        assert rec.choice.cost_of_pass == pytest.approx(usd / acc, rel=1e-9)
        if why == "small model's vote below N":
            assert rec.choice.model == "small" and 1 < rec.choice.k < N
            assert rec.choice.method == f"majority@{rec.choice.k}"
            # the runner-up of the other model is its own cheapest reaching setting
            [big] = [r for r in rec.runners_up if r.model == "big"]
            assert (big.model, big.k) == _expected({k: v for k, v in exact.items() if k[0] == "big"}, target)
        if why == "single small sample":
            assert rec.choice.method == "single sample"
        if why == "big model":
            assert rec.choice.model == "big" and all(r.model != "big" or r.k > rec.choice.k for r in rec.runners_up)


def test_confidence_requires_the_lower_bound_to_reach_the_target(store: Path) -> None:
    exact = _exact_settings(store)
    target = exact[("small", 1)][0]
    [plain] = infereco.recommend(store, target)
    [sure] = infereco.recommend(store, target, confidence=0.95)
    assert plain.choice is not None and sure.choice is not None
    assert sure.choice.lower_bound(0.95) >= target
    assert plain.choice.lower_bound(0.95) < target  # the point estimate alone only just reaches it
    assert sure.choice.usd_per_problem > plain.choice.usd_per_problem  # certainty costs more


def test_every_k_up_to_n_is_a_candidate(store: Path) -> None:
    found = api.settings(api.load_results(store))
    assert all(isinstance(s, Setting) for s in found)
    assert sorted((s.model, s.k) for s in found) == sorted((m, k) for m in ("small", "big") for k in range(1, N + 1))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "infereco.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_cli_recommend_text_json_and_errors(store: Path) -> None:
    exact = _exact_settings(store)
    target = exact[("small", 1)][0] - 0.01
    done = _cli("recommend", str(store), "--target-accuracy", f"{target}")
    assert done.returncode == 0, done.stderr
    assert "cheapest to reach" in done.stdout and "small / majority" in done.stdout and "single sample" in done.stdout
    done = _cli("recommend", str(store), "--target-accuracy", "1", "--json")
    assert done.returncode == 0, done.stderr
    [rec] = json.loads(done.stdout)
    assert rec["reached"] in (False, True) and rec["target_accuracy"] == 1
    if not rec["reached"]:
        assert rec["choice"] is None and rec["closest"]["model"] == "big" and "none reaches" in rec["headline"]
    for bad, needle in ((["--target-accuracy", "1.5"], "--target-accuracy"),
                        (["--target-accuracy", "0.5", "--confidence", "2"], "--confidence")):  # fmt: skip
        done = _cli("recommend", str(store), *bad)
        assert done.returncode == 2 and len(done.stderr.splitlines()) == 1 and needle in done.stderr, done.stderr
    done = _cli("recommend", str(store.parent / "missing.db"), "--target-accuracy", "0.5")
    assert done.returncode == 2 and "no such store" in done.stderr


def test_report_shows_the_recommendation(store: Path, tmp_path: Path) -> None:
    done = _cli("report", str(store), "--target-accuracy", "0.6", "--target-accuracy", "0.9", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "Cheapest way to reach each accuracy" in done.stdout
    lines = (tmp_path / "recommendations.csv").read_text().splitlines()
    assert lines[0].startswith("target,cheapest setting reaching it") and len(lines) == 3
    tex = (tmp_path / "recommendations.tex").read_text()
    assert r"\begin{tabular}" in tex and r"\$" in tex
    with sqlite3.connect(store) as conn:
        [small] = [r for (r,) in conn.execute("SELECT run_id FROM runs WHERE label LIKE 'small%'")]
    done = _cli("report", str(store), "--run", small[:8], "--target-accuracy", "0.99")
    assert done.returncode == 0, done.stderr
    assert "none reaches it; closest: small / majority" in done.stdout.replace("\n", " ") or "none reaches" in done.stdout


def test_vote_sizes_are_every_k_then_a_fine_grid() -> None:
    from infereco.recommendation import EVERY_K_UP_TO, candidate_ks

    assert candidate_ks(16).tolist() == list(range(1, 17))
    big = candidate_ks(1000).tolist()
    assert big[:EVERY_K_UP_TO] == list(range(1, EVERY_K_UP_TO + 1)) and big[-1] == 1000
    tail = big[EVERY_K_UP_TO - 1 :]
    assert all(b / a <= 1.025 for a, b in zip(tail, tail[1:]))  # about 2% between candidates
