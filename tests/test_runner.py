"""The Runner through `infereco.api.run` against the loopback fake server.

Stored samples are never paid for twice, costs are tokens times prices, busy time is shared, and an
interrupted run leaves whole requests and is finished by sending exactly the missing ones.
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

import infereco
from fakeserver import FakeServer
from infereco.api import run as api_run
from infereco.errors import BackendError
from infereco.runner import BusyClock
from infereco.store import Store
from infereco.strategies.sampling import plurality

IN_PRICE, OUT_PRICE = 3.0, 15.0  # USD per 1M tokens
LIMIT, N, MAX_N = 5, 4, 2
REQUESTS = LIMIT * (N // MAX_N)


def _run(fake: FakeServer, store: Path, **overrides: Any) -> infereco.api.RunResult:
    kwargs: dict[str, Any] = dict(
        level=1, limit=LIMIT, strategy="majority", n=N, backend="openai", base_url=fake.base_url, model="fake",
        max_n=MAX_N, input_price=IN_PRICE, output_price=OUT_PRICE, store=store,
    )  # fmt: skip
    kwargs.update(overrides)
    return api_run("arithmetic", **kwargs)


def _without_busy(totals: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in totals.items() if k not in ("busy_s", "cost_usd")}


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _samples(path: Path) -> list[tuple[Any, ...]]:
    return _rows(
        path,
        "SELECT problem_id, step, sample_index, request_key, text, answer, correct, prompt_tokens, completion_tokens, "
        "seed FROM samples ORDER BY problem_id, step, sample_index",
    )


def _results(path: Path) -> list[tuple[Any, ...]]:
    return _rows(path, "SELECT problem_id, answer, correct FROM results ORDER BY problem_id")


def _assert_whole_requests(path: Path) -> None:
    """Every stored request has exactly its n samples, and every sample belongs to a stored request."""
    requests = _rows(path, "SELECT run_id, request_key, problem_id, step, start_index, n FROM requests")
    for run_id, key, pid, step, start, n in requests:
        indices = [r[0] for r in _rows(
            path, f"SELECT sample_index FROM samples WHERE run_id='{run_id}' AND request_key='{key}' ORDER BY sample_index"
        )]  # fmt: skip
        assert indices == list(range(start, start + n)), key
    orphans = _rows(
        path,
        "SELECT COUNT(*) FROM samples s LEFT JOIN requests r ON s.run_id=r.run_id AND s.request_key=r.request_key "
        "WHERE r.request_key IS NULL",
    )
    assert orphans == [(0,)]


def test_run_stores_every_sample_and_a_rerun_sends_nothing(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    with FakeServer() as fake:
        first = _run(fake, db)
        keys = list(fake.model.keys)
        assert len(keys) == REQUESTS
        assert len(set(keys)) == len(keys)  # request keys are unique
        assert all(k.startswith(first.run_id + "/") for k in keys)
        assert first.sent_requests == REQUESTS
        t = first.totals
        assert (t["problems"], t["problems_done"], t["requests"], t["samples"]) == (LIMIT, LIMIT, REQUESTS, LIMIT * N)
        assert first.pool.answers.shape == (LIMIT, N) and first.pool.valid.all()

        second = _run(fake, db)
        assert fake.model.keys == keys  # zero requests: everything was in the store
        assert fake.model.attempts == REQUESTS
        assert second.run_id == first.run_id
        assert second.sent_requests == 0
        assert second.totals == first.totals
        assert _rows(db, "SELECT COUNT(*) FROM runs WHERE status != 'pool'") == [(1,)]
        assert _rows(db, "SELECT status FROM runs WHERE status != 'pool'") == [("done",)]


def test_tokens_are_the_servers_usage_and_cost_is_tokens_times_prices(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    with FakeServer() as fake:
        result = _run(fake, db)
        usages = [fake.model.answer(body)["usage"] for body in fake.model.bodies]
    t = result.totals
    assert t["prompt_tokens"] == sum(u["prompt_tokens"] for u in usages)
    assert t["completion_tokens"] == sum(u["completion_tokens"] for u in usages)
    expected = (t["prompt_tokens"] * IN_PRICE + t["completion_tokens"] * OUT_PRICE) / 1e6
    assert t["cost_usd"] > 0
    assert t["cost_usd"] == pytest.approx(expected, rel=1e-12, abs=0)
    # per sample too: no hidden time-based charge when no hourly price is given
    for pt, ct, cost in _rows(db, "SELECT prompt_tokens, completion_tokens, cost_usd FROM samples"):
        assert cost == pytest.approx((pt * IN_PRICE + ct * OUT_PRICE) / 1e6, rel=1e-12, abs=0)
    # and each request's cost and tokens are the sums of its samples'
    per_request = _rows(
        db,
        "SELECT r.request_key, r.cost_usd, SUM(s.cost_usd), r.prompt_tokens, SUM(s.prompt_tokens), "
        "r.completion_tokens, SUM(s.completion_tokens) FROM requests r JOIN samples s "
        "ON s.run_id=r.run_id AND s.request_key=r.request_key GROUP BY r.request_key",
    )
    assert len(per_request) == REQUESTS
    for _key, rc, sc, rp, sp, rct, sct in per_request:
        assert rc == pytest.approx(sc, rel=1e-12) and rp == sp and rct == sct


def test_integer_prices_give_exact_costs(tmp_path: Path) -> None:
    with FakeServer() as fake:
        t = _run(fake, tmp_path / "r.db", input_price=2_000_000.0, output_price=5_000_000.0).totals
    assert t["cost_usd"] == 2 * t["prompt_tokens"] + 5 * t["completion_tokens"]


def test_busy_clock_shares_add_up_to_busy_wall_time() -> None:
    now = [0.0]
    clock = BusyClock(now=lambda: now[0])
    a = clock.start()  # t=0: A alone
    now[0] = 1.0
    b = clock.start()  # t=1..3: A and B share
    now[0] = 3.0
    busy_a = clock.stop(a)  # t=3..4: B alone
    now[0] = 4.0
    busy_b = clock.stop(b)
    now[0] = 10.0  # idle for 6 s: billed to nobody
    c = clock.start()
    now[0] = 10.5
    d = clock.start()
    now[0] = 11.5
    busy_c = clock.stop(c)
    busy_d = clock.stop(d)
    assert busy_a == pytest.approx(2.0)  # 1 + 2/2
    assert busy_b == pytest.approx(2.0)  # 2/2 + 1
    assert busy_c == pytest.approx(1.0)  # 0.5 + 1/2
    assert busy_d == pytest.approx(0.5)  # 1/2 + 0
    assert busy_a + busy_b + busy_c + busy_d == pytest.approx(4.0 + 1.5)  # busy wall time, idle excluded


def test_concurrent_requests_are_not_each_billed_the_full_wall_time(tmp_path: Path) -> None:
    with FakeServer(delay_s=0.1) as fake:
        started = time.perf_counter()
        result = _run(fake, tmp_path / "r.db", limit=8, max_n=4, concurrency=4)
        elapsed = time.perf_counter() - started
    busy = result.totals["busy_s"]
    latency = sum(r[0] for r in _rows(tmp_path / "r.db", "SELECT latency_s FROM requests"))
    assert result.totals["requests"] == 8
    assert latency >= 8 * 0.1
    assert 0.1 <= busy <= elapsed  # never more than the wall time the run took
    assert busy < latency / 2  # four in flight share the machine
    request_busy = sum(r[0] for r in _rows(tmp_path / "r.db", "SELECT busy_s FROM requests"))
    assert request_busy == pytest.approx(busy)


def test_majority_vote_matches_a_recomputation_from_stored_samples(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    with FakeServer(p_correct=0.5) as fake:
        result = _run(fake, db, limit=8, n=6, seed=3)
    stored = dict((pid, (ans, ok)) for pid, ans, ok in _results(db))
    assert len(stored) == 8
    with Store(db) as store:
        for pid, (answer, correct) in stored.items():
            samples = store.samples(store.layout(result.run_id).ledger, pid, "sample")  # kept in the run's pool
            assert [s.index for s in samples] == list(range(6))
            expected, votes = plurality(samples, random.Random(f"3:{pid}"))
            assert answer == expected
            assert max(votes.values()) == votes[answer]
            assert bool(correct) == any(s.correct for s in samples if s.answer == answer)
    assert result.totals["final_correct"] == sum(ok for _, ok in stored.values())


def test_interrupted_run_keeps_whole_requests_and_resume_sends_only_the_missing(tmp_path: Path) -> None:
    broken, clean = tmp_path / "broken.db", tmp_path / "clean.db"
    k = 4
    with FakeServer(fail_after=k, fail_after_status=400) as fake:
        with pytest.raises(BackendError) as info:
            _run(fake, broken, concurrency=1)
        assert "\n" not in str(info.value)
        assert len(fake.model.keys) == k
        served_before = set(fake.model.keys)
        _assert_whole_requests(broken)
        assert _rows(broken, "SELECT COUNT(*) FROM requests") == [(k,)]
        assert _rows(broken, "SELECT COUNT(*) FROM samples") == [(k * MAX_N,)]
        assert _rows(broken, "SELECT status FROM runs WHERE status != 'pool'") == [("interrupted",)]
        run_id = _rows(broken, "SELECT run_id FROM runs WHERE status != 'pool'")[0][0]
        stored_keys = {f"{run_id}/{key}" for (key,) in _rows(broken, "SELECT request_key FROM requests")}
        assert stored_keys == served_before

        fake.model.fail_after = None
        resumed = _run(fake, broken, concurrency=1)
        sent_after = fake.model.keys[k:]
        assert len(sent_after) == REQUESTS - k  # exactly the missing requests
        assert not set(sent_after) & stored_keys  # nothing stored was paid for twice
        assert resumed.sent_requests == REQUESTS - k
        _assert_whole_requests(broken)

        reference = _run(fake, clean)
    assert _without_busy(resumed.totals) == _without_busy(reference.totals)
    assert resumed.totals["cost_usd"] == pytest.approx(reference.totals["cost_usd"], rel=1e-12)
    assert _samples(broken) == _samples(clean)
    assert _results(broken) == _results(clean)
    assert _rows(broken, "SELECT status FROM runs WHERE status != 'pool'") == [("done",)]


def test_requests_in_flight_when_one_fails_are_stored_not_thrown_away(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    with FakeServer(fail_after=6, fail_after_status=400, delay_s=0.1) as fake:
        # eight in flight at once: six are admitted (and paid for), the seventh fails at once
        with pytest.raises(BackendError, match="400"):
            _run(fake, db, limit=8, concurrency=8)
        served = list(fake.model.keys)
        assert len(served) == 6
        run_id = _rows(db, "SELECT run_id FROM runs WHERE status != 'pool'")[0][0]
        stored = {f"{run_id}/{key}" for (key,) in _rows(db, "SELECT request_key FROM requests")}
        assert stored == set(served)  # every answer the server sent is kept
        _assert_whole_requests(db)
        # and no request was started after the failure was known
        assert fake.model.attempts <= 8 + 1
        fake.model.fail_after = None
        result = _run(fake, db, limit=8, concurrency=8)
        assert len(fake.model.keys) == 16
        assert not set(fake.model.keys[6:]) & stored
    assert result.totals["requests"] == 16 and result.totals["samples"] == 32


def test_a_larger_n_extends_the_same_pool_and_pays_only_for_the_new_samples(tmp_path: Path) -> None:
    store = tmp_path / "grow.db"
    with FakeServer() as fake:
        small = _run(fake, store, n=2, max_n=2, limit=3)
        sent_small = len(fake.model.keys)
        big = _run(fake, store, n=4, max_n=2, limit=3)
        new_keys = fake.model.keys[sent_small:]
        again = _run(fake, store, n=2, max_n=2, limit=3)  # going back down costs nothing
        assert len(fake.model.keys) == sent_small + len(new_keys)
    assert big.run_id == small.run_id == again.run_id
    assert sent_small == 3 and len(new_keys) == 3  # one request of samples 2..3 per problem
    assert all(key.endswith("|sample|2+2") for key in new_keys)
    assert big.totals["samples"] == 12 and big.pool.max_n == 4
    assert again.sent_requests == 0
    votes = _rows(store, "SELECT n FROM results ORDER BY problem_id")
    assert votes == [(2,), (2,), (2,)]  # the latest run's N decided the final answers
