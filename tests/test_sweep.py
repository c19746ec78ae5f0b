"""infereco sweep: strategies x budgets, each point charged exactly what it used (verifier calls included)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from fakeserver import FakeServer
from infereco import api
from infereco.cli import main as cli_main
from infereco.sweep import point_cost
from infereco.store import Store


def test_a_sweep_charges_pooled_strategies_for_their_first_n_samples_only(tmp_path: Path) -> None:
    store, out = tmp_path / "sweep.db", tmp_path / "out"
    with FakeServer(p_correct=0.6) as fake:
        points = api.sweep(
            "arithmetic", strategies=["majority", "bon", "pf"], budgets=[4, 1, 2], store=store, out_dir=out,
            level=1, limit=5, backend="openai", model="fake", base_url=fake.base_url, max_n=4,
            input_price=1.0, output_price=2.0,
        )  # fmt: skip
    assert [(p.strategy, p.n) for p in points] == [(s, n) for s in ("majority", "bon", "pf") for n in (1, 2, 4)]
    with sqlite3.connect(store) as conn, Store(store) as db:
        for p in points:
            if p.strategy == "pf":
                continue
            used = conn.execute(  # the pooled strategies' samples are kept in their shared pool
                "SELECT SUM(cost_usd) FROM samples WHERE run_id=? AND step='sample' AND sample_index < ?",
                (db.layout(p.run_id).ledger, p.n),
            ).fetchone()[0]
            assert p.usd_per_problem == pytest.approx(used / 5)  # samples N.. were bought later, for larger N
        pf_runs = {p.run_id for p in points if p.strategy == "pf"}
        assert len(pf_runs) == 3  # a search at each N is its own run, charged what it cost
    majority = [p for p in points if p.strategy == "majority"]
    assert majority[0].usd_per_problem < majority[1].usd_per_problem < majority[2].usd_per_problem
    assert all(p.verifier_usd_per_problem == 0 for p in points)  # the arithmetic verifier calls no model
    saved = json.loads((out / "sweep.json").read_text())
    assert len(saved) == 9 and (out / "sweep.png").stat().st_size > 10_000


def test_point_cost_counts_judge_calls_on_the_samples_below_n(tmp_path: Path) -> None:
    store = tmp_path / "j.db"
    with FakeServer() as fake:
        result = api.run("arithmetic", level=1, limit=2, n=4, max_n=4, strategy="bon", verifier="judge", backend="openai",
                         model="fake", base_url=fake.base_url, input_price=1.0, output_price=2.0, store=store)  # fmt: skip
    with Store(store) as db:
        full = point_cost(db, result.run_id, 4, pooled=True)
        assert full["usd"] == pytest.approx(result.totals["cost_usd"] / 2)  # everything the run paid
        assert full["verifier_usd"] > 0
        none = point_cost(db, result.run_id, 0, pooled=True)
        assert none["usd"] == 0 and none["verifier_usd"] == 0


def test_the_sweep_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeServer() as fake:
        code = cli_main(["sweep", "--level", "1", "--limit", "2", "--strategies", "majority,weighted", "--budgets", "1,2",
                         "--backend", "openai", "--model", "fake", "--base-url", fake.base_url, "--input-price", "0",
                         "--output-price", "0", "--store", str(tmp_path / "s.db"), "--json"])  # fmt: skip
    assert code in (0, None)
    points = json.loads(capsys.readouterr().out)
    assert [(p["strategy"], p["n"]) for p in points] == [("majority", 1), ("majority", 2), ("weighted", 1), ("weighted", 2)]


@pytest.mark.parametrize("args,message", [
    (["--budgets", "1,two"], "--budgets"), (["--budgets", "0,2"], "--budgets"), (["--strategies", "majority,psychic"], "psychic"),
])  # fmt: skip
def test_bad_sweep_flags_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli_main(["sweep", "--store", str(tmp_path / "s.db"), *args])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.db").exists()
