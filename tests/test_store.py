"""The SQLite store: atomic requests, reuse lookups, pools, totals, and bad store paths."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from infereco.errors import UserError
from infereco.problem import Problem
from infereco.records import ProblemResult, RequestRecord, SampleRecord
from infereco.store import SCHEMA_VERSION, Store

RUN = "run0"
PROBLEMS = [Problem("p0", "What is 2 + 3?", "5"), Problem("p1", "What is 1 + 1?", "2"), Problem("p2", "What is 4 + 4?", "8")]


def _sample(pid: str, index: int, key: str, answer: str | None, correct: bool, *, step: str = "sample",
            pt: int = 10, ct: int = 5, cost: float = 0.001, latency: float = 0.1) -> SampleRecord:  # fmt: skip
    return SampleRecord(
        problem_id=pid, step=step, index=index, request_key=key, text=f"Answer: {answer}", finish_reason="stop",
        answer=answer, correct=correct, prompt_tokens=pt, cached_prompt_tokens=0, completion_tokens=ct,
        reasoning_tokens=0, latency_s=latency, cost_usd=cost, seed=1,
    )  # fmt: skip


def _request(key: str, samples: list[SampleRecord], busy: float = 0.5) -> RequestRecord:
    s0 = samples[0]
    return RequestRecord(
        key=key, problem_id=s0.problem_id, step=s0.step, start_index=s0.index, n=len(samples), seed=1,
        latency_s=max(s.latency_s for s in samples), busy_s=busy,
        prompt_tokens=sum(s.prompt_tokens for s in samples), cached_prompt_tokens=0,
        completion_tokens=sum(s.completion_tokens for s in samples), cost_usd=sum(s.cost_usd for s in samples),
    )  # fmt: skip


def _write(db: Store, key: str, samples: list[SampleRecord], busy: float = 0.5) -> None:
    db.record_request(RUN, _request(key, samples, busy), samples)


@pytest.fixture
def db(tmp_path: Path):
    with Store(tmp_path / "s.db") as store:
        store.ensure_run(RUN, "test run", {"strategy": {"name": "majority", "n": 3}})
        store.add_problems(RUN, PROBLEMS)
        yield store


def _count(db: Store, table: str) -> int:
    return db.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_request_and_samples_are_written_atomically(db: Store) -> None:
    good = [_sample("p0", 0, "p0|sample|0+2", "5", True), _sample("p0", 1, "p0|sample|0+2", "6", False)]
    _write(db, "p0|sample|0+2", good)
    # the second sample collides with the first (same run, problem, step, index): the insert fails
    bad = [_sample("p1", 0, "p1|sample|0+2", "2", True), _sample("p1", 0, "p1|sample|0+2", "3", False)]
    with pytest.raises(sqlite3.IntegrityError):
        _write(db, "p1|sample|0+2", bad)
    assert db.conn.execute("SELECT COUNT(*) FROM requests WHERE problem_id='p1'").fetchone()[0] == 0
    assert db.conn.execute("SELECT COUNT(*) FROM samples WHERE problem_id='p1'").fetchone()[0] == 0
    assert db.stored_indices(RUN, "p1", "sample") == set()
    # the earlier request is untouched, and the store is still writable (no transaction left open)
    assert _count(db, "requests") == 1 and _count(db, "samples") == 2
    assert not db.conn.in_transaction
    _write(db, "p1|sample|0+1", [_sample("p1", 0, "p1|sample|0+1", "2", True)])
    assert db.stored_indices(RUN, "p1", "sample") == {0}


def test_atomicity_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store(path) as db:
        db.ensure_run(RUN, "r", {})
        bad = [_sample("p1", 3, "k", "2", True), _sample("p1", 3, "k", "2", True)]
        with pytest.raises(sqlite3.IntegrityError):
            _write(db, "k", bad)
    with Store(path) as db:
        assert _count(db, "requests") == 0 and _count(db, "samples") == 0


def test_a_request_key_is_stored_once(db: Store) -> None:
    _write(db, "k", [_sample("p0", 0, "k", "5", True)])
    with pytest.raises(sqlite3.IntegrityError):
        _write(db, "k", [_sample("p0", 1, "k", "5", True)])
    assert db.stored_indices(RUN, "p0", "sample") == {0}


def test_stored_indices_are_per_run_problem_and_step(db: Store) -> None:
    _write(db, "a", [_sample("p0", i, "a", "5", True) for i in (0, 1)])
    _write(db, "b", [_sample("p0", i, "b", "5", True) for i in (4, 5, 6)])
    _write(db, "c", [_sample("p0", 0, "c", "5", True, step="beam/1")])
    _write(db, "d", [_sample("p1", 2, "d", "2", True)])
    db.ensure_run("other", "other", {})
    db.record_request("other", _request("a", [_sample("p0", 9, "a", "5", True)]), [_sample("p0", 9, "a", "5", True)])
    assert db.stored_indices(RUN, "p0", "sample") == {0, 1, 4, 5, 6}
    assert db.stored_indices(RUN, "p0", "beam/1") == {0}
    assert db.stored_indices(RUN, "p1", "sample") == {2}
    assert db.stored_indices(RUN, "p2", "sample") == set()
    assert db.stored_indices("other", "p0", "sample") == {9}
    assert [s.index for s in db.samples(RUN, "p0", "sample")] == [0, 1, 4, 5, 6]


def test_load_pool_shapes_padding_and_answer_classes(db: Store) -> None:
    # p0: 3 samples, answers 5, 5, 7 (5 right); p1: 1 sample with no answer; p2: nothing sampled
    p0 = [
        _sample("p0", 0, "a", "5", True, cost=0.01, pt=11, ct=3, latency=0.2),
        _sample("p0", 1, "a", "5", True, cost=0.02, pt=11, ct=4, latency=0.2),
        _sample("p0", 2, "b", "7", False, cost=0.03, pt=12, ct=5, latency=0.3),
    ]
    _write(db, "a", p0[:2])
    _write(db, "b", p0[2:])
    _write(db, "c", [_sample("p1", 0, "c", None, False, cost=0.04, pt=9, ct=8)])
    # a sample of another step must not leak into the "sample" pool
    _write(db, "z", [_sample("p2", 0, "z", "8", True, step="other")])

    pool = db.load_pool(RUN)
    assert pool.run_id == RUN and pool.label == "test run"
    assert pool.problem_ids == ("p0", "p1")  # in problem order; p2 has no samples of this step
    assert pool.answers.shape == pool.correct.shape == pool.valid.shape == pool.cost_usd.shape == (2, 3)
    assert pool.answers.tolist() == [[0, 0, 1], [-1, -1, -1]]
    assert pool.valid.tolist() == [[True, True, True], [True, False, False]]
    assert pool.correct.tolist() == [[True, True, False], [False, False, False]]
    assert pool.answer_correct == ({0: True, 1: False}, {})
    np.testing.assert_allclose(pool.cost_usd, [[0.01, 0.02, 0.03], [0.04, 0, 0]])
    assert pool.prompt_tokens.tolist() == [[11, 11, 12], [9, 0, 0]]
    assert pool.completion_tokens.tolist() == [[3, 4, 5], [8, 0, 0]]
    np.testing.assert_allclose(pool.latency_s, [[0.2, 0.2, 0.3], [0.1, 0, 0]])
    assert pool.n_per_problem.tolist() == [3, 1]
    assert pool.max_n == 1
    assert pool.final_correct is None  # no results yet
    assert pool.config == {"strategy": {"name": "majority", "n": 3}}

    db.record_result(RUN, ProblemResult("p0", "5", True))
    assert db.load_pool(RUN).final_correct is None  # p1 has no result yet
    db.record_result(RUN, ProblemResult("p1", None, False))
    assert db.load_pool(RUN).final_correct.tolist() == [True, False]
    assert db.load_pool(RUN, step="other").problem_ids == ("p2",)
    assert db.load_pool(RUN[:2]).run_id == RUN  # a prefix names the run


def test_load_pool_unknown_run_is_a_user_error(db: Store) -> None:
    with pytest.raises(UserError, match="no such run"):
        db.load_pool("nope")


def test_totals(db: Store) -> None:
    assert db.totals(RUN) == {
        "problems": 3, "problems_done": 0, "final_correct": 0, "requests": 0, "samples": 0,
        "samples_correct": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0, "busy_s": 0,
        "attempts": 0, "unconfirmed_usd": 0, "unconfirmed_tokens": 0, "lost_requests": 0, "inflight_requests": 0,
    }  # fmt: skip
    _write(db, "a", [_sample("p0", 0, "a", "5", True, pt=10, ct=4, cost=0.25), _sample("p0", 1, "a", "6", False, pt=11, ct=6, cost=0.5)], busy=1.5)
    _write(db, "b", [_sample("p1", 0, "b", "2", True, pt=7, ct=3, cost=0.125)], busy=0.25)
    db.record_result(RUN, ProblemResult("p0", "5", True))
    db.record_result(RUN, ProblemResult("p1", "3", False))
    db.record_result(RUN, ProblemResult("p1", "2", True))  # a result is replaced, not duplicated
    assert db.totals(RUN) == {
        "problems": 3, "problems_done": 2, "final_correct": 2, "requests": 2, "samples": 3,
        "samples_correct": 2, "prompt_tokens": 28, "completion_tokens": 13, "cost_usd": 0.875, "busy_s": 1.75,
        "attempts": 2, "unconfirmed_usd": 0, "unconfirmed_tokens": 0, "lost_requests": 0, "inflight_requests": 0,
    }  # fmt: skip
    assert db.done_problems(RUN) == {"p0", "p1"}
    assert db.totals("other")["samples"] == 0


def test_runs_and_latest_unfinished(db: Store) -> None:
    assert db.ensure_run(RUN, "again", {}) is True  # a resume
    db.set_status(RUN, "done")
    assert db.latest_unfinished() is None
    assert db.ensure_run("second", "s", {"x": 1}) is False
    assert db.latest_unfinished()["run_id"] == "second"
    assert [r["run_id"] for r in db.runs()] == [RUN, "second"]
    assert db.run("second")["config"] == {"x": 1}


def test_add_problems_twice_keeps_one_copy(db: Store) -> None:
    db.add_problems(RUN, PROBLEMS)
    assert _count(db, "problems") == 3


def test_non_sqlite_file_is_a_one_line_user_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 200)
    with pytest.raises(UserError) as info:
        Store(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert path.read_text().startswith("these are my notes")  # left as it was


def test_directory_and_missing_folder_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is a directory"):
        Store(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        Store(tmp_path / "nope" / "s.db")


def test_other_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store(path) as db:
        db.conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(UserError, match="schema version 99"):
        Store(path)


def test_wal_mode_is_on(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store(path) as db:
        assert db.conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
        db.ensure_run(RUN, "r", {})
        assert (tmp_path / "s.db-wal").exists()
    # WAL is persistent: another connection sees it too
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    finally:
        conn.close()


def test_a_schema_v2_store_is_migrated_to_the_current_schema_keeping_its_requests(tmp_path: Path) -> None:
    """v2 had no retry ledger: its requests read as one try each, nothing unconfirmed."""
    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('schema_version', '2');"
        "CREATE TABLE runs (run_id TEXT PRIMARY KEY, label TEXT NOT NULL, config_json TEXT NOT NULL, "
        "status TEXT NOT NULL DEFAULT 'running', created_at REAL NOT NULL, updated_at REAL NOT NULL);"
        "CREATE TABLE requests (run_id TEXT NOT NULL, request_key TEXT NOT NULL, problem_id TEXT NOT NULL, "
        "step TEXT NOT NULL, start_index INTEGER NOT NULL, n INTEGER NOT NULL, seed INTEGER, latency_s REAL NOT NULL, "
        "busy_s REAL NOT NULL, prompt_tokens INTEGER NOT NULL, cached_prompt_tokens INTEGER NOT NULL, "
        "completion_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL, created_at REAL NOT NULL, "
        "PRIMARY KEY (run_id, request_key));"
        f"INSERT INTO runs VALUES ('{RUN}', 'old', '{{}}', 'done', 1, 1);"
        f"INSERT INTO requests VALUES ('{RUN}', 'p1|sample|0+2', 'p1', 'sample', 0, 2, 7, 0.1, 0.1, 10, 0, 20, 0.5, 1);"
    )
    conn.commit()
    conn.close()
    with Store(path) as db:
        assert db.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        totals = db.totals(RUN)
        assert (totals["requests"], totals["attempts"], totals["unconfirmed_usd"], totals["cost_usd"]) == (1, 1, 0, 0.5)
        samples = [_sample("p1", 2, "p1|sample|2+1", "4", True)]
        db.record_request(RUN, RequestRecord("p1|sample|2+1", "p1", "sample", 2, 1, 7, 0.1, 0.1, 5, 0, 9, 0.25,
                                             attempts=3, unconfirmed_usd=0.75, unconfirmed_tokens=40), samples)  # fmt: skip
        totals = db.totals(RUN)
        assert (totals["attempts"], totals["unconfirmed_usd"], totals["unconfirmed_tokens"]) == (4, 0.75, 40)
        assert db.problem_spend(RUN, "p1") == (0.5 + 0.25 + 0.75, 30 + 14 + 40)
