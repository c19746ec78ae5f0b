"""Kill -9 a real `infereco run` mid-way, then resume it: whole requests only, nothing paid twice.

The fake server runs in its own process (so it outlives the killed client and counts every request
it served, via GET /stats); the CLI runs as a subprocess exactly as a user would start it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from fakeserver import fake_server_process

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
DELAY_S = 0.2
TOTAL_REQUESTS = 8 * 4 // 2  # --limit 8, --n 4, --max-n 2
TOTAL_SAMPLES = 8 * 4


@pytest.fixture(scope="module")
def server():
    with fake_server_process(DELAY_S) as url:
        yield url


def _stats(server: str) -> list[str]:
    with urllib.request.urlopen(f"{server}/stats", timeout=5) as response:
        return json.load(response)["keys"]


def _command(server: str, store: Path, limit: int = 8) -> list[str]:
    return [
        sys.executable, "-m", "infereco.cli", "run", "--backend", "openai", "--base-url", f"{server}/v1",
        "--model", "fake", "--n", "4", "--max-n", "2", "--limit", str(limit), "--concurrency", "2",
        "--input-price", "1.5", "--output-price", "2", "--store", str(store), "--quiet",
    ]  # fmt: skip


def _cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=120)


def _query(store: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _stored_samples(store: Path) -> int:
    try:
        return _query(store, "SELECT COUNT(*) FROM samples")[0][0]
    except sqlite3.Error:
        return 0  # not created yet


def _totals(store: Path) -> dict[str, Any]:
    from infereco.store import Store

    with Store(store) as db:
        runs = db.runs()
        assert len(runs) == 1
        totals = db.totals(runs[0]["run_id"])
    totals.pop("busy_s")  # wall time differs between runs; everything else must not
    # the ledger of requests lost in flight (journaled, never answered) differs with where the kills
    # landed; what it holds is checked by `_ledger`
    for key in ("unconfirmed_usd", "unconfirmed_tokens", "lost_requests", "inflight_requests"):
        totals.pop(key)
    return totals


def _ledger(store: Path) -> dict[str, Any]:
    from infereco.store import Store

    with Store(store) as db:
        return db.totals(db.runs()[0]["run_id"])


def _content(store: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    samples = _query(
        store,
        "SELECT problem_id, sample_index, request_key, text, answer, correct, prompt_tokens, completion_tokens, seed "
        "FROM samples ORDER BY problem_id, sample_index",
    )
    requests = _query(
        store, "SELECT request_key, n, seed, prompt_tokens, completion_tokens FROM requests ORDER BY request_key"
    )
    results = _query(store, "SELECT problem_id, answer, correct FROM results ORDER BY problem_id")
    return samples, requests, results


def _assert_whole_requests(store: Path) -> None:
    for key, start, n in _query(store, "SELECT request_key, start_index, n FROM requests"):
        indices = [r[0] for r in _query(store, f"SELECT sample_index FROM samples WHERE request_key='{key}' ORDER BY 1")]
        assert indices == list(range(start, start + n)), key
    orphans = _query(
        store,
        "SELECT COUNT(*) FROM samples s LEFT JOIN requests r ON s.run_id=r.run_id AND s.request_key=r.request_key "
        "WHERE r.request_key IS NULL",
    )
    assert orphans == [(0,)]


@pytest.fixture(scope="module")
def reference(server: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same command, uninterrupted, into a store of its own."""
    store = tmp_path_factory.mktemp("reference") / "clean.db"
    done = _cli(_command(server, store))
    assert done.returncode == 0, done.stderr
    assert _stored_samples(store) == TOTAL_SAMPLES
    return store


def _wait_for_samples(proc: subprocess.Popen[Any], store: Path, at_least: int = 6) -> None:
    """Block until the running CLI has stored some samples (and is still running)."""
    deadline = time.monotonic() + 60
    while _stored_samples(store) < at_least:
        assert proc.poll() is None, "the run ended before it could be stopped"
        assert time.monotonic() < deadline, "no samples stored in time"
        time.sleep(0.01)


def _kill_midway(server: str, store: Path) -> tuple[set[str], list[str]]:
    """Start the run, SIGKILL it once some (not all) samples are stored; return stored full keys, served keys."""
    proc = subprocess.Popen(_command(server, store), env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_for_samples(proc, store)
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    time.sleep(DELAY_S * 2)  # requests in flight at the kill finish on the server side
    run_id = _query(store, "SELECT run_id FROM runs")[0][0]
    stored = {f"{run_id}/{key}" for (key,) in _query(store, "SELECT request_key FROM requests")}
    return stored, _stats(server)


def _check_killed_store(store: Path) -> int:
    from infereco.store import Store

    with Store(store) as db:  # opens cleanly after a kill -9
        assert db.runs()[0]["status"] == "running"
    samples = _stored_samples(store)
    assert 0 < samples < TOTAL_SAMPLES
    _assert_whole_requests(store)
    return _query(store, "SELECT COUNT(*) FROM requests")[0][0]


def _check_resumed(server: str, store: Path, stored_keys: set[str], served_before: list[str], reference: Path) -> None:
    served_after = _stats(server)
    assert served_after[: len(served_before)] == served_before
    new = served_after[len(served_before):]
    assert not set(new) & stored_keys, "a request stored before the kill was sent again"
    assert len(new) == TOTAL_REQUESTS - len(stored_keys), "resume must send exactly the missing requests"
    assert len(set(new)) == len(new)
    _assert_whole_requests(store)
    assert _query(store, "SELECT status FROM runs") == [("done",)]
    resumed, clean = _totals(store), _totals(reference)
    assert resumed.pop("cost_usd") == pytest.approx(clean.pop("cost_usd"), rel=1e-12)
    assert resumed == clean
    assert resumed["samples"] == TOTAL_SAMPLES and resumed["problems_done"] == 8
    assert _content(store) == _content(reference)


def test_kill9_then_resume_with_the_same_flags(server: str, reference: Path, tmp_path: Path) -> None:
    store = tmp_path / "killed.db"
    stored_keys, served_before = _kill_midway(server, store)
    assert _check_killed_store(store) == len(stored_keys)
    done = _cli(_command(server, store) + ["--resume"])
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    _check_resumed(server, store, stored_keys, served_before, reference)


def test_resume_alone_finishes_the_latest_unfinished_run_from_its_stored_config(
    server: str, reference: Path, tmp_path: Path
) -> None:
    store = tmp_path / "killed.db"
    stored_keys, served_before = _kill_midway(server, store)
    _check_killed_store(store)
    done = _cli([sys.executable, "-m", "infereco.cli", "run", "--resume", "--store", str(store), "--quiet"])
    assert done.returncode == 0, done.stderr
    # the stored config carried the server, --max-n 2 and the prices: same requests, same totals
    _check_resumed(server, store, stored_keys, served_before, reference)


def test_resume_alone_with_nothing_unfinished_is_one_line(reference: Path) -> None:
    done = _cli([sys.executable, "-m", "infereco.cli", "run", "--resume", "--store", str(reference), "--quiet"])
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "no unfinished run" in done.stderr


KILLS = 20
LIMIT_20 = 12  # problems in the 20-kill run: 24 requests, 48 samples


def test_twenty_random_kills_then_resume_equal_an_uninterrupted_run(server: str, tmp_path: Path) -> None:
    """SIGKILL one run at 20 random points (before any sample, mid-request, mid-write), resuming after each.

    Each kill point is a random number of stored samples plus a random extra wait, so kills land during
    start-up, while requests are in flight and while a request is being written. After every kill the
    store holds whole requests only and the next session sends none of the stored ones again; after the
    last resume the store equals an uninterrupted run of the same command, field for field.
    """
    clean = tmp_path / "clean.db"
    done = _cli(_command(server, clean, LIMIT_20))
    assert done.returncode == 0, done.stderr
    total_samples = LIMIT_20 * 4
    rng = random.Random(20)
    thresholds = sorted(rng.randrange(total_samples) for _ in range(KILLS))
    store = tmp_path / "killed.db"
    served_at_start = len(_stats(server))
    stored_before: set[str] = set()  # full keys stored when the previous session was killed
    served_from = served_at_start
    kills = resent = 0
    for i, threshold in enumerate(thresholds):
        command = _command(server, store, LIMIT_20) + (["--resume"] if i else [])
        proc = subprocess.Popen(command, env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while _stored_samples(store) < threshold and proc.poll() is None:
                assert time.monotonic() < deadline, "no progress"
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.25))
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=10)
        if proc.returncode != -signal.SIGKILL:  # it finished before the kill landed: start again
            assert proc.returncode == 0
            break
        kills += 1
        served = _stats(server)
        new = served[served_from:]
        assert not set(new) & stored_before, f"kill {i}: a stored request was sent again"
        if _stored_samples(store):
            _assert_whole_requests(store)
            run_id = _query(store, "SELECT run_id FROM runs")[0][0]
            stored_now = {f"{run_id}/{k}" for (k,) in _query(store, "SELECT request_key FROM requests")}
            resent += len([k for k in new if k not in stored_now])  # answered, but lost with the process
            stored_before, served_from = stored_now, len(served)
    done = _cli(_command(server, store, LIMIT_20) + ["--resume"])
    assert done.returncode == 0, done.stderr
    assert not set(_stats(server)[served_from:]) & stored_before
    assert kills >= KILLS - 2, "most kill points must land before the run ends"
    assert _query(store, "SELECT status FROM runs") == [("done",)]
    resumed, reference = _totals(store), _totals(clean)
    assert resumed.pop("cost_usd") == pytest.approx(reference.pop("cost_usd"), rel=1e-12)
    assert resumed == reference
    assert _content(store) == _content(clean)
    # every request answered but lost with its process was journaled before it was sent: the ledger
    # charges it (at its worst case), so a budget counts what the provider billed
    ledger = _ledger(store)
    assert ledger["inflight_requests"] == 0 and ledger["lost_requests"] >= resent
    assert (ledger["unconfirmed_tokens"] > 0) == (ledger["lost_requests"] > 0)
    print(f"\n{kills} kills survived; {resent} answered requests lost in flight and re-sent; nothing stored was re-sent")
