"""`infereco runs`: every run with its status (finished / interrupted / empty), problems done of
planned, samples and spend; `--name`; `--prune-empty`; and how `report` treats unfinished runs and
runs over different problem sets.

The store is filled through the command line against loopback servers: a finished named run, a run
the server stops answering part-way (interrupted), a run whose server is not there (empty), and a
finished run of another task (level 2: no problem in common with the rest).
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from infereco import api
from fakeserver import FakeServer

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "infereco.cli", *args], env=ENV, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def _run(base_url: str, store: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return _cli("run", "--backend", "openai", "--model", "fake", "--base-url", base_url, "--input-price", "1",
                "--output-price", "2", "--n", "4", "--max-n", "4", "--concurrency", "1", "--max-retries", "0",
                "--store", str(store), "--quiet", *extra)  # fmt: skip


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("runs") / "runs.db"
    with FakeServer(p_correct=0.8) as fake:
        done = _run(fake.base_url, path, "--level", "1", "--limit", "6", "--name", "alpha")
        assert done.returncode == 0, done.stderr
    with FakeServer(p_correct=0.8, fail_after=3) as fake:  # answers 3 requests (problems), then refuses
        done = _run(fake.base_url, path, "--level", "1", "--limit", "6", "--temperature", "0.5", "--name", "beta")
        assert done.returncode == 2, done.stderr
    done = _run(f"http://127.0.0.1:{_closed_port()}/v1", path, "--level", "1", "--limit", "6", "--seed", "9",
                "--name", "gamma", "--timeout", "5")  # fmt: skip
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    with FakeServer(p_correct=0.8) as fake:
        done = _run(fake.base_url, path, "--level", "2", "--limit", "6", "--name", "delta")
        assert done.returncode == 0, done.stderr
    return path


def test_runs_lists_status_progress_samples_and_spend(store: Path) -> None:
    done = _cli("runs", str(store), "--json")
    assert done.returncode == 0, done.stderr
    runs = {r["label"]: r for r in json.loads(done.stdout)["runs"]}
    assert list(runs) == ["alpha", "beta", "gamma", "delta"]
    alpha, beta, gamma = runs["alpha"], runs["beta"], runs["gamma"]
    assert (alpha["status"], alpha["problems_done"], alpha["problems_planned"], alpha["samples"]) == ("finished", 6, 6, 24)
    assert alpha["spend_usd"] > 0 and alpha["note"] == ""
    assert beta["status"] == "interrupted" and beta["problems_done"] == 3 and beta["problems_planned"] == 6
    assert beta["samples"] == 12 and "--resume" in beta["note"]
    assert gamma["status"] == "empty" and gamma["samples"] == 0 and gamma["spend_usd"] == 0
    table = _cli("runs", str(store))
    assert table.returncode == 0
    for needle in ("alpha", "finished", "6/6", "beta", "interrupted", "3/6", "gamma", "empty", "0/6"):
        assert needle in table.stdout, needle


def test_report_marks_unfinished_runs_and_compares_on_common_problems(store: Path, tmp_path: Path) -> None:
    alpha, beta = (r["run_id"] for r in json.loads(_cli("runs", str(store), "--json").stdout)["runs"][:2])
    [a, b] = api.load_results(store, [alpha, beta], allow_mixed=False)
    assert a.summary["n_problems"] == b.summary["n_problems"] == 3  # alpha is compared on beta's 3 problems
    assert a.summary["compared_on"] == {"problems": 3, "of": 6}
    done = _cli("report", str(store), "--run", alpha[:8], "--run", beta[:8], "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader((tmp_path / "summary.csv").open()))
    assert rows[1][0] == "alpha (on the 3 of its 6 problems all runs share)"
    assert rows[2][0] == "beta [interrupted: 3/6 problems]"
    assert "stopped at 3 of 6 problems; --resume finishes it" in " ".join(done.stdout.split())
    # an empty run is marked, not shown as a row of dashes and "nan"
    assert "nan" not in _cli("report", str(store), "--run", alpha[:8], "--run",
                              json.loads(_cli("runs", str(store), "--json").stdout)["runs"][2]["run_id"][:8]).stdout


def test_report_refuses_runs_over_different_problems_unless_allowed(store: Path, tmp_path: Path) -> None:
    done = _cli("report", str(store))
    assert done.returncode == 2 and "share no problem" in done.stderr and "--allow-mixed" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = _cli("report", str(store), "--allow-mixed", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert len(json.loads((tmp_path / "summary.json").read_text())) == 4


def test_prune_empty_deletes_only_runs_without_samples(store: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    copy.write_bytes(store.read_bytes())
    done = _cli("runs", str(copy), "--prune-empty")
    assert done.returncode == 0, done.stderr and "pruned 1 empty run" in done.stdout
    labels = [r["label"] for r in json.loads(_cli("runs", str(copy), "--json").stdout)["runs"]]
    assert labels == ["alpha", "beta", "delta"]


def test_name_labels_the_run_without_changing_its_identity(store: Path, tmp_path: Path) -> None:
    runs = json.loads(_cli("runs", str(store), "--json").stdout)["runs"]
    copy = tmp_path / "named.db"
    copy.write_bytes(store.read_bytes())
    with FakeServer(p_correct=0.8) as fake:
        done = _run(fake.base_url, copy, "--level", "1", "--limit", "6", "--name", "alpha renamed")
    assert done.returncode == 0, done.stderr
    after = json.loads(_cli("runs", str(copy), "--json").stdout)["runs"]
    assert [r["run_id"] for r in after] == [r["run_id"] for r in runs]  # the same run, nothing re-sampled
    assert after[0]["label"] == "alpha renamed" and after[0]["samples"] == 24
