"""Ctrl-C a real `infereco run` mid-way: exit 130, one line, a consistent store, and `--resume` finishes.

As in test_kill_resume.py (whose store helpers this reuses), the fake server runs in its own
process and the CLI is a subprocess started as a user would start it; SIGINT is what a terminal
sends on Ctrl-C.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from fakeserver import fake_server_process
from test_kill_resume import (
    ENV,
    ROOT,
    TOTAL_SAMPLES,
    _cli,
    _command,
    _content,
    _query,
    _stored_samples,
    _totals,
    _wait_for_samples,
)

DELAY_S = 0.3  # per request: 16 requests two at a time take ~2.4 s, so SIGINT lands mid-run


@pytest.fixture(scope="module")
def server():
    with fake_server_process(DELAY_S) as url:
        yield url


@pytest.fixture(scope="module")
def reference(server: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same command, uninterrupted, into a store of its own."""
    store = tmp_path_factory.mktemp("reference") / "clean.db"
    done = _cli(_command(server, store))
    assert done.returncode == 0, done.stderr
    assert _stored_samples(store) == TOTAL_SAMPLES
    return store


def _interrupt_midway(command: list[str], store: Path) -> tuple[int, str]:
    """Start the run, send SIGINT once some samples are stored; return its exit code and stderr."""
    # A shell that starts jobs in the background ignores SIGINT for them, and Python then keeps it
    # ignored; give the child the default disposition, as a terminal would.
    proc = subprocess.Popen(
        command, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        _wait_for_samples(proc, store, at_least=4)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode, stderr


def _assert_only_whole_requests(store: Path) -> None:
    """Every request row has exactly its n samples (indices start..start+n-1), and no sample lacks its row."""
    per_request = _query(
        store,
        "SELECT r.request_key, r.start_index, r.n, COUNT(s.sample_index), MIN(s.sample_index), MAX(s.sample_index) "
        "FROM requests r LEFT JOIN samples s ON s.run_id=r.run_id AND s.request_key=r.request_key "
        "GROUP BY r.run_id, r.request_key",
    )
    assert per_request
    for key, start, n, count, low, high in per_request:
        assert (count, low, high) == (n, start, start + n - 1), key
    orphans = _query(
        store,
        "SELECT COUNT(*) FROM samples s LEFT JOIN requests r ON s.run_id=r.run_id AND s.request_key=r.request_key "
        "WHERE r.request_key IS NULL",
    )
    assert orphans == [(0,)]


@pytest.mark.parametrize("bar", [True, False], ids=["progress-bar", "quiet"])
def test_ctrl_c_exits_130_in_one_line_and_resume_matches_an_uninterrupted_run(
    server: str, reference: Path, tmp_path: Path, bar: bool
) -> None:
    from infereco.store import Store

    store = tmp_path / "interrupted.db"
    command = [arg for arg in _command(server, store) if arg != "--quiet" or not bar]
    code, stderr = _interrupt_midway(command, store)

    assert code == 130, stderr
    assert "Traceback" not in stderr
    last = [line for line in stderr.splitlines() if line.strip()][-1]
    assert last.startswith("interrupted:") and "--resume" in last
    with Store(store) as db:  # opens cleanly
        runs = db.runs()
    assert [r["status"] for r in runs] == ["interrupted"]
    _assert_only_whole_requests(store)
    assert 0 < _stored_samples(store) < TOTAL_SAMPLES

    done = _cli(_command(server, store) + ["--resume"])
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    _assert_only_whole_requests(store)
    assert _query(store, "SELECT status FROM runs WHERE status != 'pool'") == [("done",)]
    resumed, clean = _totals(store), _totals(reference)  # busy time left out: it is wall time
    assert resumed.pop("cost_usd") == pytest.approx(clean.pop("cost_usd"), rel=1e-12)
    assert resumed == clean and resumed["samples"] == TOTAL_SAMPLES
    # the same samples (text, answers, tokens, seeds), requests and per-problem results
    assert _content(store) == _content(reference)
