"""The sample store: one SQLite file (WAL) holding runs, problems, requests, samples and results.

The schema is the contract between a run and its analysis. Two invariants live here:
- a sample is keyed by (run, problem, step, index): the Runner asks `stored_indices` before it sends
  anything, so a stored request is never paid for twice;
- a request and all its samples are written in one transaction, after the response arrived, so a
  kill at any instant leaves either the whole request or nothing.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infereco.errors import UserError
from infereco.pool import SamplePool
from infereco.problem import Problem
from infereco.records import ProblemResult, RequestRecord, SampleRecord
from infereco.strategies import registry
from infereco.strategies.base import content_key

SCHEMA_VERSION = 4
POOL_STEP = "sample"


@dataclass(frozen=True)
class Layout:
    """Where a run's samples and requests are: `ledger` is its pool's id (a pooled strategy's run
    since pools) or the run's own id; its steps other than the pool's are named `prefix/step` in the
    pool; `n` is the run's latest N; `pooled` says its samples are a pool of interchangeable draws."""

    ledger: str
    prefix: str | None
    n: int
    pooled: bool


@dataclass(frozen=True)
class RequestShare:
    """One request a run rests on: the share of it the run used (0..1), and the amounts of that share
    (see `Store.attributed_requests`); `attempts` and `latency_s` are the whole request's."""

    problem_id: str
    step: str
    share: float
    cost_usd: float
    prompt_tokens: float
    completion_tokens: float
    busy_s: float
    attempts: int
    unconfirmed_usd: float
    unconfirmed_tokens: float
    latency_s: float

    @property
    def verifier(self) -> bool:
        """A verifier's model call (a judge or a reward model), under whatever prefix."""
        return any(part in ("judge", "reward") for part in self.step.split("/")[:2])


def _step_share(lay: Layout, pid: str, step: str, below: set[tuple[str, str]], above: set[tuple[str, str]]) -> float:
    """The share of a pooled run's non-pool step it used: its own steps on samples below N."""
    if lay.prefix is not None and not step.startswith((lay.prefix + "/", "grade/")):
        return 0.0  # another strategy's (or verifier's) step in the shared pool
    judged = (pid, step.rsplit("/", 1)[-1])  # verifier steps are named by the text they judged
    if judged in below:
        return 1.0
    return 0.0 if judged in above else 1.0



SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    config_json TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'running',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS problems (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    problem_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    prompt TEXT NOT NULL,
    reference TEXT NOT NULL,
    metadata_json TEXT NOT NULL,
    PRIMARY KEY (run_id, problem_id)
);
CREATE TABLE IF NOT EXISTS requests (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    request_key TEXT NOT NULL,
    problem_id TEXT NOT NULL,
    step TEXT NOT NULL,
    start_index INTEGER NOT NULL,
    n INTEGER NOT NULL,
    seed INTEGER,
    latency_s REAL NOT NULL,
    busy_s REAL NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    cached_prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    unconfirmed_usd REAL NOT NULL DEFAULT 0,
    unconfirmed_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    compute_s REAL NOT NULL DEFAULT 0,
    role TEXT NOT NULL DEFAULT 'main',
    price_source TEXT NOT NULL DEFAULT '',
    price_version TEXT NOT NULL DEFAULT '',
    sent_at REAL,
    PRIMARY KEY (run_id, request_key)
);
CREATE TABLE IF NOT EXISTS samples (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    problem_id TEXT NOT NULL,
    step TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    request_key TEXT NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT,
    answer TEXT,
    correct INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    cached_prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    latency_s REAL NOT NULL,
    cost_usd REAL NOT NULL,
    seed INTEGER,
    logprobs_json TEXT,
    PRIMARY KEY (run_id, problem_id, step, sample_index)
);
CREATE TABLE IF NOT EXISTS inflight (
    run_id TEXT NOT NULL,
    request_key TEXT NOT NULL,
    problem_id TEXT NOT NULL,
    step TEXT NOT NULL,
    reserved_usd REAL NOT NULL,
    reserved_tokens INTEGER NOT NULL,
    sent_at REAL NOT NULL,
    PRIMARY KEY (run_id, request_key)
);
CREATE TABLE IF NOT EXISTS lost (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    request_key TEXT NOT NULL,
    problem_id TEXT NOT NULL,
    usd REAL NOT NULL,
    tokens INTEGER NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS writers (
    run_id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    proc_start TEXT NOT NULL,
    since REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    problem_id TEXT NOT NULL,
    answer TEXT,
    correct INTEGER,
    info_json TEXT NOT NULL,
    n INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, problem_id)
);
"""

_REQUEST_COLUMNS = (
    "request_key, problem_id, step, start_index, n, seed, latency_s, busy_s, prompt_tokens, cached_prompt_tokens, "
    "completion_tokens, cost_usd, attempts, unconfirmed_usd, unconfirmed_tokens, cache_write_tokens, reasoning_tokens, "
    "compute_s, role, price_source, price_version, sent_at"
)
_REQUEST_WIDTH = _REQUEST_COLUMNS.count(",") + 1
#: columns added after v3, with their definitions: added to older stores when they are opened
_V4_REQUEST_COLUMNS = (
    ("cache_write_tokens", "INTEGER NOT NULL DEFAULT 0"),
    ("reasoning_tokens", "INTEGER NOT NULL DEFAULT 0"),
    ("compute_s", "REAL NOT NULL DEFAULT 0"),
    ("role", "TEXT NOT NULL DEFAULT 'main'"),
    ("price_source", "TEXT NOT NULL DEFAULT ''"),
    ("price_version", "TEXT NOT NULL DEFAULT ''"),
    ("sent_at", "REAL"),
)
_SAMPLE_COLUMNS = (
    "problem_id, step, sample_index, request_key, text, finish_reason, answer, correct, prompt_tokens, "
    "cached_prompt_tokens, completion_tokens, reasoning_tokens, latency_s, cost_usd, seed, logprobs_json"
)


class StoreFull(UserError):
    """The store's disk (or quota) is full: what arrived is kept, nothing new is sent."""


class RunLocked(UserError):
    """Another live process is writing the same run."""


class Store:
    """A SQLite sample store. Use as a context manager, or call `close()`."""

    #: the store opened last: named by the CLI when SQLite fails with a fault of the file itself
    last_path: Path | None = None

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise UserError(f"--store {self.path} is a directory; expected a .db file path")
        if not self.path.parent.exists():
            raise UserError(f"--store {self.path}: folder {self.path.parent} does not exist")
        try:
            self.conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            foreign = _foreign_tables(self.conn)
            if foreign:
                self.conn.close()
                raise UserError(
                    f"--store {self.path} is a SQLite file but not an infereco store (it holds tables "
                    f"{', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}); give another --store path"
                )
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: survives a process kill
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise store_error(self.path, exc) from None
        Store.last_path = self.path
        row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is not None and not str(row[0]).isdigit():
            self.conn.close()
            raise UserError(f"--store {self.path} is not an infereco store (schema version {str(row[0])[:20]!r})")
        if row is None:
            self.conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) in (1, 2, 3):
            with self._tx():
                if int(row[0]) == 1:  # v1 -> v2: results record the N they were chosen with
                    self.conn.execute("ALTER TABLE results ADD COLUMN n INTEGER NOT NULL DEFAULT 0")
                # v2 -> v3: requests count their tries and the worst case of tries that may have been billed
                have = {r[1] for r in self.conn.execute("PRAGMA table_info(requests)")}
                for column, kind in (("attempts", "INTEGER NOT NULL DEFAULT 1"),
                                     ("unconfirmed_usd", "REAL NOT NULL DEFAULT 0"),
                                     ("unconfirmed_tokens", "INTEGER NOT NULL DEFAULT 0")):  # fmt: skip
                    if column not in have:
                        self.conn.execute(f"ALTER TABLE requests ADD COLUMN {column} {kind}")
                # v3 -> v4: requests carry their whole usage, idealized seconds, role and price source
                for column, kind in _V4_REQUEST_COLUMNS:
                    if column not in have:
                        self.conn.execute(f"ALTER TABLE requests ADD COLUMN {column} {kind}")
                self.conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
        elif int(row[0]) != SCHEMA_VERSION:
            raise UserError(f"--store {self.path} has schema version {row[0]}; this infereco reads {SCHEMA_VERSION}")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    # -- runs -------------------------------------------------------------------------------
    def ensure_run(self, run_id: str, label: str, config: dict[str, Any]) -> bool:
        """Create the run if new; return True if it already existed (a resume)."""
        now = time.time()
        existed = self.conn.execute("SELECT 1 FROM runs WHERE run_id=?", (run_id,)).fetchone() is not None
        if not existed:
            self.conn.execute(
                "INSERT OR IGNORE INTO runs (run_id, label, config_json, status, created_at, updated_at) VALUES (?,?,?,?,?,?)",
                (run_id, label, json.dumps(config, sort_keys=True), "running", now, now),
            )
        else:
            self.set_status(run_id, "running")
        return existed

    def set_status(self, run_id: str, status: str) -> None:
        self.conn.execute("UPDATE runs SET status=?, updated_at=? WHERE run_id=?", (status, time.time(), run_id))

    def ensure_pool(self, pool_id: str, label: str, config: dict[str, Any]) -> None:
        """Record a pool of samples (a row of `runs` with status "pool", which `runs()` leaves out):
        the samples and requests of every pooled strategy's run on the same task, model, sampling and
        seed are kept under it, and each run keeps its own results."""
        now = time.time()
        self.conn.execute(
            "INSERT OR IGNORE INTO runs (run_id, label, config_json, status, created_at, updated_at) VALUES (?,?,?,?,?,?)",
            (pool_id, label, json.dumps(config, sort_keys=True), "pool", now, now),
        )

    def run_config(self, run_id: str) -> dict[str, Any] | None:
        """The stored config of exactly this run (or pool) id, None if there is none."""
        row = self.conn.execute("SELECT config_json FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def runs(self) -> list[dict[str, Any]]:
        """Every run, oldest first (pools of samples are not runs: they are left out)."""
        rows = self.conn.execute(
            "SELECT run_id, label, config_json, status, created_at, updated_at FROM runs WHERE status != 'pool' "
            "ORDER BY created_at"
        ).fetchall()
        return [
            {"run_id": r[0], "label": r[1], "config": json.loads(r[2]), "status": r[3], "created_at": r[4], "updated_at": r[5]}
            for r in rows
        ]

    def run(self, run_id: str) -> dict[str, Any]:
        for run in self.runs():
            if run["run_id"] == run_id or run["run_id"].startswith(run_id):
                return run
        known = ", ".join(r["run_id"] for r in self.runs()) or "none"
        raise UserError(f"--run {run_id}: no such run in {self.path} (runs: {known})")

    def latest_unfinished(self) -> dict[str, Any] | None:
        pending = [r for r in self.runs() if r["status"] != "done"]
        return max(pending, key=lambda r: r["updated_at"]) if pending else None

    # -- problems ---------------------------------------------------------------------------
    def add_problems(self, run_id: str, problems: Iterable[Problem]) -> None:
        with self._tx():
            self.conn.executemany(
                "INSERT OR IGNORE INTO problems VALUES (?,?,?,?,?,?)",
                [
                    (run_id, p.id, i, p.prompt, p.answer, json.dumps(p.metadata, sort_keys=True, default=str))
                    for i, p in enumerate(problems)
                ],
            )

    def problems(self, run_id: str) -> list[Problem]:
        """The problems a run recorded, in order (a task built in Python is rebuilt from them on resume)."""
        rows = self.conn.execute(
            "SELECT problem_id, prompt, reference, metadata_json FROM problems WHERE run_id=? ORDER BY position", (run_id,)
        ).fetchall()
        return [Problem(id=r[0], prompt=r[1], answer=r[2], metadata=json.loads(r[3] or "{}")) for r in rows]

    # -- samples ----------------------------------------------------------------------------
    def stored_indices(self, run_id: str, problem_id: str, step: str) -> set[int]:
        rows = self.conn.execute(
            "SELECT sample_index FROM samples WHERE run_id=? AND problem_id=? AND step=?", (run_id, problem_id, step)
        )
        return {r[0] for r in rows}

    def samples(self, run_id: str, problem_id: str, step: str) -> list[SampleRecord]:
        rows = self.conn.execute(
            f"SELECT {_SAMPLE_COLUMNS} FROM samples WHERE run_id=? AND problem_id=? AND step=? ORDER BY sample_index",
            (run_id, problem_id, step),
        ).fetchall()
        return [_sample_from_row(r) for r in rows]

    def problem_samples(self, run_id: str, problem_ids: Iterable[str]) -> list[SampleRecord]:
        """Every stored sample (all steps) of some problems of a run: what a remote worker may reuse."""
        wanted = list(problem_ids)
        run_id = self.layout(run_id).ledger
        out: list[SampleRecord] = []
        for i in range(0, len(wanted), 500):  # stay under SQLite's limit on bound parameters
            chunk = wanted[i : i + 500]
            rows = self.conn.execute(
                f"SELECT {_SAMPLE_COLUMNS} FROM samples WHERE run_id=? AND problem_id IN ({','.join('?' * len(chunk))}) "
                "ORDER BY problem_id, step, sample_index",
                (run_id, *chunk),
            ).fetchall()
            out += [_sample_from_row(r) for r in rows]
        return out

    def record_request(self, run_id: str, request: RequestRecord, samples: list[SampleRecord]) -> None:
        """Write a request and its samples atomically (all or nothing)."""
        self.record_requests(run_id, [(request, samples)])

    def record_requests(self, run_id: str, batch: list[tuple[RequestRecord, list[SampleRecord]]]) -> None:
        """Write several requests, each with all its samples, in one transaction (all or nothing).

        The Runner groups the responses that arrive together into one commit: a commit costs more
        than the rows it writes, and each request in it is still whole or absent after a kill.
        """
        with self._tx():
            self._insert_requests(run_id, batch)

    def _insert_requests(self, run_id: str, batch: list[tuple[RequestRecord, list[SampleRecord]]]) -> None:
        now = time.time()
        self.conn.executemany(
            f"INSERT INTO requests (run_id, {_REQUEST_COLUMNS}, created_at) VALUES ({','.join('?' * (_REQUEST_WIDTH + 2))})",
            [(run_id, *_request_row(request), now) for request, _ in batch],
        )
        self.conn.executemany(
            f"INSERT INTO samples (run_id, {_SAMPLE_COLUMNS}) VALUES ({','.join('?' * 17)})",
            [(run_id, *_sample_row(s)) for _, samples in batch for s in samples],
        )
        # the write-ahead entries these answers settle (see `journal`)
        self.conn.executemany(
            "DELETE FROM inflight WHERE run_id=? AND request_key=?", [(run_id, r.key) for r, _ in batch]
        )

    def record_batch(
        self,
        run_id: str,
        requests: list[tuple[RequestRecord, list[SampleRecord]]],
        problems: list[Problem],
        results: list[ProblemResult],
    ) -> None:
        """Requests (each with all its samples), problems and their results in one transaction.

        `infereco serve` writes whatever its concurrent requests produced in one event-loop turn
        this way: one commit instead of one per request, problem and result."""
        with self._tx():
            if requests:
                self._insert_requests(run_id, requests)
            if problems:
                self.conn.executemany(
                    "INSERT OR IGNORE INTO problems VALUES (?,?,?,?,?,?)",
                    [(run_id, p.id, 0, p.prompt, p.answer, json.dumps(p.metadata, sort_keys=True, default=str)) for p in problems],
                )
            if results:
                self.conn.executemany(
                    "INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?)",
                    [(run_id, r.problem_id, r.answer, None if r.correct is None else int(r.correct), r.info_json, r.n)
                     for r in results],
                )  # fmt: skip

    # -- the write-ahead ledger of requests in flight ----------------------------------------
    def journal(self, entries: list[tuple[str, str, str, str, float, int]]) -> None:
        """Record requests about to be sent, with their reservations (run, key, problem, step, usd, tokens).

        Written (committed) before the requests go out and deleted in the transaction that stores
        their answers, so after a kill the rows left are exactly the requests whose answers never
        arrived: a resume counts their reservations as spent (`recover_inflight`).
        """
        now = time.time()
        with self._tx():
            self.conn.executemany(
                "INSERT OR REPLACE INTO inflight VALUES (?,?,?,?,?,?,?)",
                [(run_id, key, pid, step, usd, tokens, now) for run_id, key, pid, step, usd, tokens in entries],
            )

    def settle_lost(self, run_id: str, key: str, problem_id: str, usd: float, tokens: int, reason: str) -> None:
        """A request that failed for good: its journal entry becomes a charge for the tries that
        may have been billed (nothing when none was)."""
        with self._tx():
            self.conn.execute("DELETE FROM inflight WHERE run_id=? AND request_key=?", (run_id, key))
            if usd > 0 or tokens > 0:
                self.conn.execute(
                    "INSERT INTO lost (run_id, request_key, problem_id, usd, tokens, reason, at) VALUES (?,?,?,?,?,?,?)",
                    (run_id, key, problem_id, usd, _clamp(tokens), reason[:300], time.time()),
                )

    def recover_inflight(self, run_id: str) -> tuple[int, float, int]:
        """Turn the journal entries an earlier process left (it was killed with requests in flight)
        into charges at their reserved worst case; return (requests, usd, tokens)."""
        with self._tx():
            rows = self.conn.execute(
                "SELECT request_key, problem_id, reserved_usd, reserved_tokens FROM inflight WHERE run_id=?", (run_id,)
            ).fetchall()
            now = time.time()
            self.conn.executemany(
                "INSERT INTO lost (run_id, request_key, problem_id, usd, tokens, reason, at) VALUES (?,?,?,?,?,?,?)",
                [(run_id, k, p, u, t, "in flight when its process stopped (worst case)", now) for k, p, u, t in rows],
            )
            self.conn.execute("DELETE FROM inflight WHERE run_id=?", (run_id,))
        return len(rows), float(sum(r[2] for r in rows)), int(sum(r[3] for r in rows))

    # -- one writer per run ------------------------------------------------------------------
    def acquire_writer(self, run_id: str) -> None:
        """Take the run for this process, or raise `RunLocked` naming the live process that holds it.

        The lock is a row in the store; one left by a process that died (killed) is taken over,
        since its pid is gone (or now belongs to a process started later).
        """
        me = _process_identity(os.getpid())
        host = socket.gethostname()
        with self._tx():
            row = self.conn.execute("SELECT pid, host, proc_start, since FROM writers WHERE run_id=?", (run_id,)).fetchone()
            if row is not None and (row[0], row[1]) != (os.getpid(), host):
                pid, their_host, start, since = row
                alive = _process_identity(pid) == start if their_host == host else True
                if alive:
                    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
                    where = f"process {pid}" + ("" if their_host == host else f" on {their_host}")
                    raise RunLocked(
                        f"run {run_id} in {self.path} is being written by {where} since {when}; wait for it to "
                        "finish (or stop it), then rerun; a different run in the same store can go ahead"
                    )
            self.conn.execute(
                "INSERT OR REPLACE INTO writers VALUES (?,?,?,?,?)", (run_id, os.getpid(), host, me, time.time())
            )

    def release_writer(self, run_id: str) -> None:
        self.conn.execute("DELETE FROM writers WHERE run_id=? AND pid=?", (run_id, os.getpid()))

    # -- events: what a run's report must show (a server that broke the budget, a full disk) --
    def add_event(self, run_id: str, kind: str, message: str) -> None:
        self.conn.execute("INSERT INTO events VALUES (?,?,?,?)", (run_id, time.time(), kind, message))

    def events(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT at, kind, message FROM events WHERE run_id=? ORDER BY at", (run_id,))
        return [{"at": at, "kind": kind, "message": message} for at, kind, message in rows]

    def record_result(self, run_id: str, result: ProblemResult) -> None:
        correct = None if result.correct is None else int(result.correct)
        with self._tx():
            self.conn.execute(
                "INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?)",
                (run_id, result.problem_id, result.answer, correct, result.info_json, result.n),
            )

    def done_problems(self, run_id: str, n: int | None = None) -> set[str]:
        """Problems with a final result (solved with exactly `n` samples, when `n` is given)."""
        if n is None:
            rows = self.conn.execute("SELECT problem_id FROM results WHERE run_id=?", (run_id,))
        else:
            rows = self.conn.execute("SELECT problem_id FROM results WHERE run_id=? AND n=?", (run_id, n))
        return {r[0] for r in rows}

    def update_run(self, run_id: str, label: str, config: dict[str, Any]) -> None:
        """Record the latest label and config of a run (e.g. a larger N extending its pool)."""
        self.conn.execute(
            "UPDATE runs SET label=?, config_json=?, updated_at=? WHERE run_id=?",
            (label, json.dumps(config, sort_keys=True), time.time(), run_id),
        )

    # -- summaries --------------------------------------------------------------------------
    def totals(self, run_id: str) -> dict[str, Any]:
        """Counts and sums that must not change between an interrupted-and-resumed run and a clean one.

        A pooled run counts what it used of its pool: its samples below N, the requests that bought
        them (a request straddling N in proportion), and its verifier's calls on those samples.
        """
        lay = self.layout(run_id)
        if lay.ledger != run_id:
            return self._pooled_totals(run_id, lay)
        req = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(completion_tokens),0), "
            "COALESCE(SUM(cost_usd),0), COALESCE(SUM(busy_s),0), COALESCE(SUM(attempts),0), "
            "COALESCE(SUM(unconfirmed_usd),0), COALESCE(SUM(unconfirmed_tokens),0) FROM requests WHERE run_id=?",
            (run_id,),
        ).fetchone()
        smp = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(correct),0) FROM samples WHERE run_id=?", (run_id,)
        ).fetchone()
        res = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(correct),0) FROM results WHERE run_id=?", (run_id,)
        ).fetchone()
        n_problems = self.conn.execute("SELECT COUNT(*) FROM problems WHERE run_id=?", (run_id,)).fetchone()[0]
        lost = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(usd),0), COALESCE(SUM(tokens),0) FROM lost WHERE run_id=?", (run_id,)
        ).fetchone()
        inflight = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(reserved_usd),0), COALESCE(SUM(reserved_tokens),0) FROM inflight WHERE run_id=?",
            (run_id,),
        ).fetchone()
        return {
            "problems": n_problems,
            "problems_done": res[0],
            "final_correct": res[1],
            "requests": req[0],
            "samples": smp[0],
            "samples_correct": smp[1],
            "prompt_tokens": req[1],
            "completion_tokens": req[2],
            "cost_usd": req[3],
            "busy_s": req[4],
            # the ledger of retries: HTTP tries, and the worst case of failed tries that may have been billed
            "attempts": req[5],
            # ... plus requests that failed for good or were in flight when a process stopped (`lost`),
            # and what is in flight now (or was, if its process was killed and no resume ran yet)
            "unconfirmed_usd": req[6] + lost[1] + inflight[1],
            "unconfirmed_tokens": req[7] + lost[2] + inflight[2],
            "lost_requests": lost[0],
            "inflight_requests": inflight[0],
        }

    def _pooled_totals(self, run_id: str, lay: Layout) -> dict[str, Any]:
        rows = self.attributed_requests(run_id)
        used = [r for r in rows if r.share > 0]
        problems = self._problem_ids(run_id)
        limits = self._sample_limits(run_id, lay)
        smp = [0, 0]
        for i in range(0, len(problems), 500):
            chunk = problems[i : i + 500]
            for pid, index, right in self.conn.execute(
                f"SELECT problem_id, sample_index, correct FROM samples WHERE run_id=? AND step=? AND sample_index < ? "
                f"AND problem_id IN ({','.join('?' * len(chunk))})",
                (lay.ledger, POOL_STEP, lay.n, *chunk),
            ):
                if index < limits.get(pid, lay.n):
                    smp[0], smp[1] = smp[0] + 1, smp[1] + int(right)
        res = self.conn.execute("SELECT COUNT(*), COALESCE(SUM(correct),0) FROM results WHERE run_id=?", (run_id,)).fetchone()
        lost = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(usd),0), COALESCE(SUM(tokens),0) FROM lost WHERE run_id=?", (lay.ledger,)
        ).fetchone()
        inflight = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(reserved_usd),0), COALESCE(SUM(reserved_tokens),0) FROM inflight WHERE run_id=?",
            (lay.ledger,),
        ).fetchone()
        return {
            "problems": len(problems),
            "problems_done": res[0],
            "final_correct": res[1],
            "requests": len(used),
            "samples": smp[0],
            "samples_correct": smp[1],
            "prompt_tokens": round(sum(r.prompt_tokens for r in used)),
            "completion_tokens": round(sum(r.completion_tokens for r in used)),
            "cost_usd": sum(r.cost_usd for r in used),
            "busy_s": sum(r.busy_s for r in used),
            "attempts": sum(r.attempts for r in used),
            # lost and in-flight requests are the pool's: charged to every run on it (the worst case)
            "unconfirmed_usd": sum(r.unconfirmed_usd for r in used) + lost[1] + inflight[1],
            "unconfirmed_tokens": round(sum(r.unconfirmed_tokens for r in used)) + lost[2] + inflight[2],
            "lost_requests": lost[0],
            "inflight_requests": inflight[0],
        }

    # -- where a run's samples are, and what of them it used --------------------------------
    def layout(self, run_id: str) -> Layout:
        """Where a run keeps its samples and requests (see `Layout`)."""
        config = self.run_config(run_id) or {}
        strategy = config.get("strategy") or {}
        n = int(strategy.get("n", 0) or 0)
        if "pool" in config:
            return Layout(str(config["pool"]), config.get("step_prefix"), n, True)
        name = str(strategy.get("name", ""))
        try:
            pooled = registry.pools_samples(name) if name else False
        except UserError:  # a strategy no longer registered: its samples were a pool unless it said otherwise
            pooled = True
        return Layout(run_id, None, n, pooled)

    def _problem_ids(self, run_id: str) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT problem_id FROM problems WHERE run_id=? ORDER BY position", (run_id,))]

    def attributed_requests(self, run_id: str, n: int | None = None, problem_id: str | None = None) -> list[RequestShare]:
        """Every request a run's answers at N (default: its N) rest on, with what of it they used.

        A search (beam, particles) uses all its requests. A pooled strategy uses, of each pool
        request, its samples below N (their own prompt share, completion tokens and cost; machine
        time split as the Runner split it, by completion tokens), its own steps (its verifier's
        calls) on the samples below N, and nothing of other strategies' steps or of its verifier's
        calls on samples it did not use.
        """
        lay = self.layout(run_id)
        n = lay.n if n is None else n
        problems = [problem_id] if problem_id is not None else self._problem_ids(run_id)
        # a strategy that stops early (adaptive) used, of each problem, the samples it says it used
        used_n = self._sample_limits(run_id, lay) if lay.pooled and lay.ledger != run_id else {}
        rows: list[tuple[Any, ...]] = []
        below: set[tuple[str, str]] = set()
        above: set[tuple[str, str]] = set()
        used: dict[tuple[str, str], list[float]] = {}  # (problem, request) -> amounts below N, then of all
        for i in range(0, len(problems), 500):
            chunk = problems[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows += self.conn.execute(
                "SELECT problem_id, request_key, step, n, cost_usd, prompt_tokens, completion_tokens, busy_s, attempts, "
                f"unconfirmed_usd, unconfirmed_tokens, latency_s FROM requests WHERE run_id=? AND problem_id IN ({marks}) "
                "ORDER BY created_at",
                (lay.ledger, *chunk),
            ).fetchall()
            if not lay.pooled:
                continue
            for pid, key, text, index, cost, prompt, completion in self.conn.execute(
                "SELECT problem_id, request_key, text, sample_index, cost_usd, prompt_tokens, completion_tokens FROM samples "
                f"WHERE run_id=? AND step=? AND problem_id IN ({marks})",
                (lay.ledger, POOL_STEP, *chunk),
            ):
                limit = min(n, used_n.get(pid, n))
                (below if index < limit else above).add((pid, content_key(text)))  # verifier steps are named by texts
                # below N / all: cost, prompt tokens, completion tokens, the Runner's weights of machine time
                acc = used.setdefault((pid, key), [0.0] * 8)
                weight = float(max(completion, 1))
                acc[4], acc[5], acc[6], acc[7] = acc[4] + cost, acc[5] + prompt, acc[6] + completion, acc[7] + weight
                if index < limit:
                    acc[0], acc[1], acc[2], acc[3] = acc[0] + cost, acc[1] + prompt, acc[2] + completion, acc[3] + weight
        out = []
        for pid, key, step, count, cost, prompt, completion, busy, attempts, lost_usd, lost_tokens, latency in rows:
            if lay.pooled and step == POOL_STEP:
                # the request's amounts in proportion to its samples below N (each sample carries its share)
                acc = used.get((pid, key), [0.0] * 8)
                part = acc[3] / acc[7] if acc[7] else 0.0
                share = part
                cost = cost * (acc[0] / acc[4]) if acc[4] else cost * part
                prompt = prompt * (acc[1] / acc[5]) if acc[5] else prompt * part
                completion = completion * (acc[2] / acc[6]) if acc[6] else completion * part
                busy, lost_usd, lost_tokens = busy * part, lost_usd * part, lost_tokens * part
            else:
                share = _step_share(lay, pid, step, below, above) if lay.pooled else 1.0
                cost, prompt, completion, busy = cost * share, prompt * share, completion * share, busy * share
                lost_usd, lost_tokens = lost_usd * share, lost_tokens * share
            out.append(RequestShare(pid, step, share, cost, prompt, completion, busy, attempts, lost_usd, lost_tokens, latency))
        return out

    def _sample_limits(self, run_id: str, lay: Layout) -> dict[str, int]:
        """Per problem, how many of the pool's samples a pooled run used, where fewer than its N."""
        return {pid: min(lay.n, used) for pid, used in self._samples_used(run_id).items()}

    def _samples_used(self, run_id: str) -> dict[str, int]:
        """Per problem, the samples a run that stops early said it used (`samples_used` in its results)."""
        out = {}
        for pid, info in self.conn.execute("SELECT problem_id, info_json FROM results WHERE run_id=?", (run_id,)):
            used = json.loads(info).get("samples_used")
            if isinstance(used, int):
                out[pid] = used
        return out

    def cost_per_problem(self, run_id: str, n: int | None = None) -> dict[str, float]:
        """USD, tokens, completion tokens, machine seconds and verifier USD per problem of a run at N
        (what a sweep point costs; see `attributed_requests`)."""
        total = {"usd": 0.0, "tokens": 0.0, "completion": 0.0, "busy_s": 0.0, "verifier_usd": 0.0}
        for r in self.attributed_requests(run_id, n):
            total["usd"] += r.cost_usd
            total["tokens"] += r.prompt_tokens + r.completion_tokens
            total["completion"] += r.completion_tokens
            total["busy_s"] += r.busy_s
            if r.verifier:
                total["verifier_usd"] += r.cost_usd
        problems = max(1, len(self._problem_ids(run_id)))
        return {k: v / problems for k, v in total.items()}

    def result_infos(self, run_id: str) -> list[dict[str, Any]]:
        """The `info` a strategy stored with each problem's answer (votes, steps, samples used...)."""
        rows = self.conn.execute("SELECT info_json FROM results WHERE run_id=? ORDER BY problem_id", (run_id,))
        return [json.loads(info) for (info,) in rows]

    def load_pool(
        self, run_id: str, step: str = "sample", label: str | None = None, *, outcomes: bool = False
    ) -> SamplePool:
        """All samples of one step of a run as dense arrays (see `SamplePool`).

        With `outcomes`, each problem's one "sample" is the strategy's final answer, carrying
        everything the problem cost (every step and verifier call): the pool of a search
        strategy (beam, particles), whose steps are not interchangeable samples.
        """
        run = self.run(run_id)
        run_id = run["run_id"]
        problem_rows = self.conn.execute(
            "SELECT problem_id FROM problems WHERE run_id=? ORDER BY position", (run_id,)
        ).fetchall()
        problem_ids = [r[0] for r in problem_rows]
        by_problem: dict[str, list[tuple[Any, ...]]] = {pid: [] for pid in problem_ids}
        query = (
            "SELECT r.problem_id, 0, r.answer, COALESCE(r.correct, 0), COALESCE(SUM(q.cost_usd), 0), "
            "COALESCE(SUM(q.prompt_tokens), 0), COALESCE(SUM(q.completion_tokens), 0), COALESCE(SUM(q.latency_s), 0) "
            "FROM results r LEFT JOIN requests q ON q.run_id = r.run_id AND q.problem_id = r.problem_id "
            "WHERE r.run_id=? GROUP BY r.problem_id ORDER BY r.problem_id"
            if outcomes else
            "SELECT problem_id, sample_index, answer, correct, cost_usd, prompt_tokens, completion_tokens, latency_s "
            "FROM samples WHERE run_id=? AND step=? ORDER BY problem_id, sample_index"
        )  # fmt: skip
        lay = self.layout(run_id)
        args: tuple[Any, ...] = (run_id,) if outcomes else (run_id, step)
        if not outcomes and lay.ledger != run_id:  # a pooled run: its samples below N in its pool
            query = query.replace("step=?", "step=? AND sample_index < ?")
            args = (lay.ledger, step, lay.n)
        limits = self._sample_limits(run_id, lay) if not outcomes and lay.ledger != run_id else {}
        for row in self.conn.execute(query, args):
            if row[1] < limits.get(row[0], row[1] + 1):
                by_problem.setdefault(row[0], []).append(row)
        kept = [pid for pid in problem_ids if by_problem.get(pid)]
        width = max((len(by_problem[pid]) for pid in kept), default=0)
        shape = (len(kept), width)
        answers = np.full(shape, -1, dtype=np.int64)
        correct = np.zeros(shape, dtype=bool)
        valid = np.zeros(shape, dtype=bool)
        cost = np.zeros(shape)
        ptok = np.zeros(shape, dtype=np.int64)
        ctok = np.zeros(shape, dtype=np.int64)
        lat = np.zeros(shape)
        answer_correct: list[dict[int, bool]] = []
        for i, pid in enumerate(kept):
            classes: dict[str, int] = {}
            verdicts: dict[int, bool] = {}
            for j, (_, _, ans, ok, c, pt, ct, la) in enumerate(by_problem[pid]):
                if ans is not None:
                    cid = classes.setdefault(ans, len(classes))
                    answers[i, j] = cid
                    verdicts.setdefault(cid, bool(ok))  # the class's first sample: what a vote submits
                correct[i, j] = bool(ok)
                valid[i, j] = True
                cost[i, j], ptok[i, j], ctok[i, j], lat[i, j] = c, pt, ct, la
            answer_correct.append(verdicts)
        results = dict(
            self.conn.execute("SELECT problem_id, correct FROM results WHERE run_id=?", (run_id,)).fetchall()
        )
        final = None
        if kept and all(results.get(pid) is not None for pid in kept):
            final = np.array([bool(results[pid]) for pid in kept])
        return SamplePool(
            label=label or run["label"],
            run_id=run_id,
            problem_ids=tuple(kept),
            answers=answers,
            correct=correct,
            valid=valid,
            cost_usd=cost,
            prompt_tokens=ptok,
            completion_tokens=ctok,
            latency_s=lat,
            answer_correct=tuple(answer_correct),
            final_correct=final,
            config=run["config"],
        )

    def sample_texts(self, run_id: str, step: str = "sample") -> dict[str, list[tuple[int, str, bool]]]:
        """Per problem: (index, text, correct) of every stored sample of a step, in index order."""
        out: dict[str, list[tuple[int, str, bool]]] = {}
        lay = self.layout(self.run(run_id)["run_id"])
        limit = lay.n if lay.ledger != run_id and lay.n else 2**62
        for pid, index, text, correct in self.conn.execute(
            "SELECT problem_id, sample_index, text, correct FROM samples WHERE run_id=? AND step=? AND sample_index < ? "
            "ORDER BY problem_id, sample_index",
            (lay.ledger, step, limit),
        ):
            out.setdefault(pid, []).append((index, text, bool(correct)))
        return out

    def problem_spend(self, run_id: str, problem_id: str) -> tuple[float, int]:
        """USD and tokens already paid for one problem of a run (for per-problem budgets), lost tries included."""
        lay = self.layout(run_id)
        if lay.ledger != run_id:
            used = [r for r in self.attributed_requests(run_id, problem_id=problem_id) if r.share > 0]
            return (sum(r.cost_usd + r.unconfirmed_usd for r in used),
                    round(sum(r.prompt_tokens + r.completion_tokens + r.unconfirmed_tokens for r in used)))  # fmt: skip
        usd, tokens = self.conn.execute(
            "SELECT COALESCE(SUM(cost_usd + unconfirmed_usd),0), "
            "COALESCE(SUM(prompt_tokens + completion_tokens + unconfirmed_tokens),0) FROM requests "
            "WHERE run_id=? AND problem_id=?",
            (run_id, problem_id),
        ).fetchone()
        lost_usd, lost_tokens = self.conn.execute(
            "SELECT COALESCE(SUM(usd),0), COALESCE(SUM(tokens),0) FROM lost WHERE run_id=? AND problem_id=?",
            (run_id, problem_id),
        ).fetchone()
        return float(usd + lost_usd), int(tokens + lost_tokens)

    def request_arrays(self, run_id: str) -> dict[str, np.ndarray]:
        """Per-request prompt tokens, completion tokens (all samples) and latency, for efficiency fits."""
        run_id = self.run(run_id)["run_id"]
        if self.layout(run_id).ledger != run_id:
            used = [(r.prompt_tokens, r.completion_tokens, r.latency_s, r.busy_s) for r in self.attributed_requests(run_id) if r.share > 0]
            data = np.array(used, dtype=float).reshape(-1, 4)
            return {"prompt_tokens": data[:, 0], "completion_tokens": data[:, 1], "latency_s": data[:, 2], "busy_s": data[:, 3]}
        rows = self.conn.execute(
            "SELECT prompt_tokens, completion_tokens, latency_s, busy_s FROM requests WHERE run_id=? ORDER BY created_at",
            (self.run(run_id)["run_id"],),
        ).fetchall()
        data = np.array(rows, dtype=float).reshape(-1, 4)
        return {
            "prompt_tokens": data[:, 0], "completion_tokens": data[:, 1], "latency_s": data[:, 2], "busy_s": data[:, 3],
        }  # fmt: skip

    # -- repricing ---------------------------------------------------------------------------
    def priced_requests(self, run_id: str) -> list[dict[str, Any]]:
        """Every request of a run with what its price needs: its usage, role, date and its samples'
        (index, prompt tokens, completion tokens) in index order."""
        rows = self.conn.execute(
            "SELECT request_key, role, n, prompt_tokens, cached_prompt_tokens, cache_write_tokens, completion_tokens, "
            "reasoning_tokens, busy_s, compute_s, COALESCE(sent_at, created_at), cost_usd, price_source, price_version "
            "FROM requests WHERE run_id=? ORDER BY created_at, request_key",
            (self.layout(run_id).ledger,),
        ).fetchall()
        samples: dict[str, list[tuple[str, str, int, int, int]]] = {}
        for key, problem, step, index, pt, ct in self.conn.execute(
            "SELECT request_key, problem_id, step, sample_index, prompt_tokens, completion_tokens FROM samples "
            "WHERE run_id=? ORDER BY sample_index",
            (self.layout(run_id).ledger,),
        ):
            samples.setdefault(key, []).append((problem, step, index, pt, ct))
        names = ("key", "role", "n", "prompt", "cached", "cache_write", "completion", "reasoning", "busy_s", "compute_s",
                 "sent_at", "cost_usd", "price_source", "price_version")  # fmt: skip
        return [{**dict(zip(names, r)), "samples": samples.get(r[0], [])} for r in rows]

    def apply_prices(
        self,
        run_id: str,
        requests: list[tuple[float, float, str, str, str]],
        samples: list[tuple[float, str, str, int]],
        config: dict[str, Any],
    ) -> None:
        """Write new costs in one transaction: requests as (cost, compute_s, source, version, key), samples
        as (cost, problem, step, index), and the run's config (its prices) for later requests."""
        with self._tx():
            self.conn.executemany(
                "UPDATE requests SET cost_usd=?, compute_s=?, price_source=?, price_version=? WHERE run_id=? AND request_key=?",
                [(*r[:4], self.layout(run_id).ledger, r[4]) for r in requests],
            )
            self.conn.executemany(
                "UPDATE samples SET cost_usd=? WHERE run_id=? AND problem_id=? AND step=? AND sample_index=?",
                [(c, self.layout(run_id).ledger, p, st, i) for c, p, st, i in samples],
            )
            self.conn.execute(
                "UPDATE runs SET config_json=?, updated_at=? WHERE run_id=?", (json.dumps(config, sort_keys=True), time.time(), run_id)
            )

    def problem_costs(self, run_id: str) -> dict[str, float]:
        """USD each problem of a run cost in total: every step, role and verifier call (what its answer cost)."""
        run_id = self.run(run_id)["run_id"]
        if self.layout(run_id).ledger != run_id:  # a pooled run: what it used of its pool
            out: dict[str, float] = {}
            for r in self.attributed_requests(run_id):
                out[r.problem_id] = out.get(r.problem_id, 0.0) + r.cost_usd
            return out
        rows = self.conn.execute(
            "SELECT problem_id, COALESCE(SUM(cost_usd), 0) FROM requests WHERE run_id=? GROUP BY problem_id", (run_id,)
        )
        return {pid: float(usd) for pid, usd in rows}

    def problem_prompts(self, run_id: str) -> dict[str, tuple[str, str]]:
        """Per problem of a run, in order: (prompt, reference answer)."""
        rows = self.conn.execute(
            "SELECT problem_id, prompt, reference FROM problems WHERE run_id=? ORDER BY position",
            (self.run(run_id)["run_id"],),
        )
        return {pid: (prompt, reference) for pid, prompt, reference in rows}

    def viewer_rows(self, run_id: str) -> list[tuple[Any, ...]]:
        """Every stored sample of a run with what a reader of it needs, in (problem, step, index) order:
        problem_id, step, index, text, answer, correct, prompt, completion tokens, cost, finish reason."""
        run_id = self.run(run_id)["run_id"]
        lay = self.layout(run_id)
        rows = self.conn.execute(
            "SELECT problem_id, step, sample_index, text, answer, correct, prompt_tokens, completion_tokens, cost_usd, "
            "finish_reason FROM samples WHERE run_id=? ORDER BY problem_id, step, sample_index",
            (lay.ledger,),
        ).fetchall()
        if lay.ledger == run_id:
            return rows
        # a pooled run: its problems' samples below its N (or what it used), and its own steps
        mine, limits = set(self._problem_ids(run_id)), self._sample_limits(run_id, lay)
        return [
            r for r in rows
            if r[0] in mine and ((r[1] == POOL_STEP and r[2] < limits.get(r[0], lay.n))
                                 or (lay.prefix is not None and r[1].startswith(lay.prefix + "/")))
        ]  # fmt: skip

    def results(self, run_id: str) -> dict[str, tuple[str | None, bool | None, dict[str, Any]]]:
        """Per solved problem: (the strategy's chosen answer, its verdict, the info it stored)."""
        rows = self.conn.execute(
            "SELECT problem_id, answer, correct, info_json FROM results WHERE run_id=?", (self.run(run_id)["run_id"],)
        )
        return {pid: (ans, None if ok is None else bool(ok), json.loads(info)) for pid, ans, ok, info in rows}

    def delete_run(self, run_id: str) -> None:
        """Remove a run and everything stored under it, in one transaction (for pruning empty runs)."""
        with self._tx():
            for table in ("samples", "requests", "results", "problems", "runs"):
                self.conn.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))

    # -- plumbing ---------------------------------------------------------------------------
    def _tx(self) -> _Transaction:
        return _Transaction(self.conn)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception (so a failed write leaves nothing)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


MAX_TOKENS_STORED = 10**12  # a count a server claims beyond this (1e20) is stored capped: SQLite sums 64-bit integers


def _clamp(tokens: int) -> int:
    return min(int(tokens), MAX_TOKENS_STORED)


def _foreign_tables(conn: sqlite3.Connection) -> list[str]:
    """The tables of a SQLite file that has some but is not an infereco store (no `meta` table)."""
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
    return sorted(names) if names and "meta" not in names else []


def store_error(path: Path | str | None, exc: BaseException) -> UserError:
    """A SQLite failure as one line naming the file and what is wrong with it."""
    text = " ".join(str(exc).split())[:200]
    where = f"--store {path}" if path is not None else "the store"
    if isinstance(exc, sqlite3.OperationalError) and ("full" in text or "disk I/O" in text):
        return StoreFull(f"{where}: cannot write, the disk is full or failing ({text}); free space and rerun with --resume")
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return UserError(f"{where} is damaged or not a SQLite file ({text}); restore it from a copy or use another path")
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return UserError(f"{where} stayed locked by another process for 30 s ({text}); try again when it is done")
    if isinstance(exc, (sqlite3.OperationalError, sqlite3.IntegrityError)):
        return UserError(f"{where} is not an infereco store of this version, or is damaged ({text})")
    return UserError(f"{where}: SQLite error ({text})")


def _process_identity(pid: int) -> str:
    """What tells a live process from a later one given the same pid: its start time (Linux), else ''.

    Returns "dead" when no process has that pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "dead"
    except (PermissionError, OSError):
        pass  # exists, owned by someone else
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()  # field 22: start time in ticks
    except (OSError, IndexError):
        return ""


def _request_row(r: RequestRecord) -> tuple[Any, ...]:
    # not dataclasses.astuple: it deep-copies every field, a third of a store write's time
    return (
        r.key, r.problem_id, r.step, r.start_index, r.n, r.seed, r.latency_s, r.busy_s, _clamp(r.prompt_tokens),
        _clamp(r.cached_prompt_tokens), _clamp(r.completion_tokens), r.cost_usd, r.attempts, r.unconfirmed_usd,
        _clamp(r.unconfirmed_tokens), _clamp(r.cache_write_tokens), _clamp(r.reasoning_tokens), r.compute_s, r.role,
        r.price_source, r.price_version, r.sent_at,
    )  # fmt: skip


def _sample_row(s: SampleRecord) -> tuple[Any, ...]:
    return (
        s.problem_id, s.step, s.index, s.request_key, s.text, s.finish_reason, s.answer, int(s.correct),
        _clamp(s.prompt_tokens), _clamp(s.cached_prompt_tokens), _clamp(s.completion_tokens), _clamp(s.reasoning_tokens),
        s.latency_s,
        s.cost_usd, s.seed, s.logprobs_json,
    )  # fmt: skip


def _sample_from_row(r: tuple[Any, ...]) -> SampleRecord:
    return SampleRecord(
        problem_id=r[0], step=r[1], index=r[2], request_key=r[3], text=r[4], finish_reason=r[5], answer=r[6],
        correct=bool(r[7]), prompt_tokens=r[8], cached_prompt_tokens=r[9], completion_tokens=r[10],
        reasoning_tokens=r[11], latency_s=r[12], cost_usd=r[13], seed=r[14], logprobs_json=r[15],
    )  # fmt: skip
