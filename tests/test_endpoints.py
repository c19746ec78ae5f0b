"""Several replicas behind one backend: load spread by outstanding requests, ejection and readmission.

Unit tests drive `EndpointPool` with a hand-set clock; the integration tests run the same sweep on
one fake server and on several (one dead, one failing for a while) and compare the stored samples.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from fakeserver import FakeServer
from infereco.api import run as api_run
from infereco.backends.endpoints import EndpointPool
from infereco.backends.openai import OpenAIBackend
from infereco.errors import BackendError

LIMIT, N, MAX_N = 6, 4, 1  # 24 requests per sweep


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_least_outstanding_first_then_fewest_served() -> None:
    pool = EndpointPool(["http://a", "http://b", "http://c"], clock=Clock())
    first = [pool.acquire().url for _ in range(3)]
    assert first == ["http://a", "http://b", "http://c"]  # each gets one before any gets two
    b = pool.endpoints[1]
    pool.release(b, True)
    assert pool.acquire() is b  # the only one with nothing outstanding
    pool.release(pool.endpoints[0], True)
    pool.release(pool.endpoints[2], True)
    assert pool.acquire().url in ("http://a", "http://c")  # b still has one in flight


def test_ejected_after_k_failures_probed_back_and_reejected_for_longer() -> None:
    clock = Clock()
    pool = EndpointPool(["http://a", "http://b"], eject_after=2, cooldown_s=10.0, clock=clock)
    a, b = pool.endpoints
    assert pool.acquire() is a
    pool.release(a, False)  # one failure: still in rotation
    assert a.healthy
    assert pool.acquire() is b  # a has been tried once, b not yet
    pool.release(b, True)
    assert pool.acquire() is a
    pool.release(a, False)  # two in a row: out
    assert not a.healthy and a.ejections == 1
    assert all(pool.acquire() is b for _ in range(5))  # out of rotation while cooling down
    clock.t = 10.0
    probe = pool.acquire()
    assert probe is a and a.probing
    assert pool.acquire() is b  # only one trial at a time
    pool.release(a, False)  # the probe failed: out again for twice as long
    assert not a.healthy and a.cooldown_s == 20.0
    clock.t = 25.0
    assert pool.acquire() is b
    clock.t = 30.0
    assert pool.acquire() is a
    pool.release(a, True)  # the probe answered: back in rotation
    assert a.healthy and a.consecutive_failures == 0


def test_a_pool_of_one_never_refuses() -> None:
    pool = EndpointPool(["http://only"], eject_after=1, cooldown_s=100.0, clock=Clock())
    e = pool.acquire()
    pool.release(e, False)
    assert not e.healthy
    assert pool.acquire() is e  # every endpoint is out: the one back soonest is used anyway


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def _backend(urls: list[str] | str, **kwargs: Any) -> OpenAIBackend:
    kwargs.setdefault("backoff_base_s", 0.001)
    kwargs.setdefault("backoff_max_s", 0.005)
    kwargs.setdefault("concurrency", 4)
    return OpenAIBackend(urls, "fake", max_n=MAX_N, **kwargs)


def _sweep(backend: OpenAIBackend, store: Path) -> Any:
    return api_run(
        "arithmetic", level=1, limit=LIMIT, strategy="majority", n=N, backend=backend, input_price=1.0,
        output_price=2.0, store=store,
    )  # fmt: skip


def _stored(path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT run_id, problem_id, step, sample_index, request_key, text, answer, correct, prompt_tokens, "
            "completion_tokens, seed FROM samples ORDER BY problem_id, sample_index"
        ).fetchall() + conn.execute("SELECT run_id, problem_id, answer, correct FROM results ORDER BY problem_id").fetchall()
    finally:
        conn.close()


def test_replicas_share_the_load_a_dead_one_is_ejected_and_results_match_one_server(tmp_path: Path) -> None:
    with FakeServer() as one:
        single = _sweep(_backend(one.base_url), tmp_path / "one.db")
    dead = _closed_port_url()
    with FakeServer(delay_s=0.01) as a, FakeServer(delay_s=0.01) as b:
        backend = _backend([a.base_url, dead, b.base_url], eject_after=2, cooldown_s=60.0)
        many = _sweep(backend, tmp_path / "many.db")
        served_a, served_b = len(a.model.keys), len(b.model.keys)
    assert many.run_id == single.run_id  # where it was served is not part of what was sampled
    assert _stored(tmp_path / "many.db") == _stored(tmp_path / "one.db")
    assert served_a + served_b == LIMIT * N // MAX_N  # each request paid once, none twice
    assert served_a >= 6 and served_b >= 6  # spread, not all on one replica
    stats = {s["url"]: s for s in backend.endpoints.stats()}
    assert stats[dead]["ejections"] == 1 and not stats[dead]["healthy"] and stats[dead]["served"] == 0
    assert stats[dead]["failed"] == 2  # taken out after 2 failures and not tried again while cooling


def test_a_failing_replica_is_taken_out_and_probed_back_in(tmp_path: Path) -> None:
    # b answers 503 to its first 3 attempts, then recovers; a is slow so b gets probed during the run.
    # One request at a time, so b's failures are consecutive in the order the client sees them.
    with FakeServer(delay_s=0.02) as a, FakeServer(fail_first=3, fail_status=503, retry_after=None) as b:
        backend = _backend([a.base_url, b.base_url], eject_after=3, cooldown_s=0.05, concurrency=1)
        result = _sweep(backend, tmp_path / "r.db")
        stats = {s["url"]: s for s in backend.endpoints.stats()}
        late_b = len(b.model.keys)
    assert result.totals["samples"] == LIMIT * N
    assert stats[b.base_url]["ejections"] >= 1 and stats[b.base_url]["failed"] == 3
    assert stats[b.base_url]["healthy"] and late_b > 0  # readmitted and serving again


def test_several_urls_are_kept_with_the_run_and_checked(tmp_path: Path) -> None:
    backend = _backend(["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1/"])
    assert backend.describe()["base_url"] == ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"]
    assert _backend("http://127.0.0.1:1/v1").describe()["base_url"] == "http://127.0.0.1:1/v1"
    asyncio.run(backend.aclose())


def test_cli_takes_base_url_repeated(tmp_path: Path, capsys: Any) -> None:
    import json

    from infereco.cli import main

    with FakeServer() as a, FakeServer() as b:
        main([
            "run", "--backend", "openai", "--model", "fake", "--base-url", a.base_url, "--base-url", b.base_url,
            "--limit", "4", "--n", "4", "--max-n", "1", "--input-price", "0", "--output-price", "0",
            "--store", str(tmp_path / "cli.db"), "--json", "--quiet",
        ])  # fmt: skip
        served = (len(a.model.keys), len(b.model.keys))
    out = json.loads(capsys.readouterr().out)
    assert out["totals"]["samples"] == 16
    assert sum(served) == 16 and min(served) > 0


def test_a_run_on_several_replicas_resumes_on_them_from_its_stored_config(tmp_path: Path) -> None:
    from infereco.api import resume

    db = tmp_path / "resume.db"
    # both replicas serve 4 requests in all, then refuse: the run stops part-way
    with FakeServer(fail_after=2) as a, FakeServer(fail_after=2) as b:
        backend = _backend([a.base_url, b.base_url], max_retries=0)
        with pytest.raises(BackendError, match="HTTP 400"):
            _sweep(backend, db)
        paid_first = len(a.model.keys) + len(b.model.keys)
    assert paid_first == 4
    with FakeServer(port=_port(a.base_url)) as a2, FakeServer(port=_port(b.base_url)) as b2:  # the same URLs
        result = resume(db)  # rebuilt from the stored list of URLs
        resent = len(a2.model.keys) + len(b2.model.keys)
        assert len(a2.model.keys) > 0 and len(b2.model.keys) > 0
    assert resent == LIMIT * N // MAX_N - 4 and result.totals["samples"] == LIMIT * N
