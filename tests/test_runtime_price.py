"""Local compute priced by idealized runtime: the same samples cost the same on a busy or an idle
machine, budgets reserve from the same model, and wall time is still recorded.

A loopback server stands in for llama.cpp's; the backend offers a fixed `runtime_profile()` as the
embedded backend does (which measures it once per machine: tests/test_embedded.py).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from fakeserver import FakeServer
from infereco.api import make_price
from infereco.api import run as api_run
from infereco.backends.openai import OpenAIBackend
from infereco.prices import RuntimeProfile
from infereco.runtime import batch_sizes, cached_profile, read_profile
from infereco.errors import UserError

PROFILE = RuntimeProfile(prefill_s_per_token=0.002, decode_s_per_token={1: 0.05, 2: 0.03, 4: 0.02}, machine="test")
USD_PER_HOUR = 36.0  # $0.01 per second: easy numbers


class ProfiledBackend(OpenAIBackend):
    """An OpenAI-compatible server whose machine time is priced from a fixed runtime profile."""

    profiled = 0

    async def runtime_profile(self) -> RuntimeProfile:
        ProfiledBackend.profiled += 1
        return PROFILE


def _run(fake: FakeServer, store: Path, **kw: Any):
    backend = ProfiledBackend(fake.base_url, "local", concurrency=kw.pop("concurrency", 4), max_n=4, max_retries=0)
    args: dict[str, Any] = dict(level=1, limit=6, n=4, max_tokens=12, usd_per_hour=USD_PER_HOUR, store=store)
    args.update(kw)
    return api_run("arithmetic", backend=backend, **args)


def _rows(store: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(store) as conn:
        return conn.execute(sql).fetchall()


def test_a_backend_with_a_profile_is_priced_by_idealized_runtime() -> None:
    price = make_price(ProfiledBackend("http://127.0.0.1:9/v1", "local"), usd_per_hour=USD_PER_HOUR)
    assert price.clock == "runtime" and price.runtime is None  # the Runner fills it in before the first request
    assert not price.wall_priced or price.runtime is None


def test_same_samples_cost_the_same_on_an_idle_and_a_slow_machine(tmp_path: Path) -> None:
    with FakeServer(filler_max=30) as fast:
        idle = _run(fast, tmp_path / "idle.db")
    with FakeServer(filler_max=30, delay_s=0.15) as slow:  # every request 0.15 s slower: a busy machine
        busy = _run(slow, tmp_path / "busy.db", concurrency=1)
    assert idle.totals["samples"] == busy.totals["samples"] == 24
    assert idle.totals["busy_s"] < busy.totals["busy_s"]  # wall time is recorded, and differs
    assert idle.totals["cost_usd"] == pytest.approx(busy.totals["cost_usd"], rel=1e-12)
    # each request: its prompt prefilled once, its samples decoded at its batch size (n)
    for store in (tmp_path / "idle.db", tmp_path / "busy.db"):
        for n, prompt, completion, compute_s, cost in _rows(
            store, "SELECT n, prompt_tokens, completion_tokens, compute_s, cost_usd FROM requests"
        ):
            assert compute_s == pytest.approx(PROFILE.seconds(prompt, completion, n))
            assert cost == pytest.approx(compute_s * USD_PER_HOUR / 3600)
    # the profile is stored with the run, so a resumed or repriced run keeps it
    config = json.loads(_rows(tmp_path / "idle.db", "SELECT config_json FROM runs")[0][0])
    assert RuntimeProfile(**config["price"]["runtime"]) == PROFILE


def test_budget_at_twice_one_requests_real_cost_sends_that_request(tmp_path: Path) -> None:
    with FakeServer(filler_max=100) as fake:  # every sample runs to max_tokens: the worst case is the real case
        one = _run(fake, tmp_path / "one.db", limit=1)
        real = one.totals["cost_usd"]
        assert one.totals["requests"] == 1 and real > 0
        budgeted = _run(fake, tmp_path / "budget.db", limit=3, budget_usd=2 * real)
    assert budgeted.totals["requests"] >= 1 and budgeted.totals["samples"] >= 4
    assert budgeted.totals["cost_usd"] <= 2 * real
    assert budgeted.budget_note  # three problems did not fit


def test_wall_time_pricing_still_reserves_the_timeout(tmp_path: Path) -> None:
    """The contrast: priced by wall time, the same budget sends nothing (a request may take its timeout)."""
    with FakeServer(filler_max=100) as fake:
        backend = OpenAIBackend(fake.base_url, "remote", max_n=4, max_retries=0, timeout_s=5)
        one = api_run("arithmetic", backend=backend, level=1, limit=1, n=4, max_tokens=12, input_price=0,
                      output_price=0, usd_per_hour=USD_PER_HOUR, store=tmp_path / "w.db")  # fmt: skip
        backend = OpenAIBackend(fake.base_url, "remote", max_n=4, max_retries=0, timeout_s=5)
        none = api_run("arithmetic", backend=backend, level=1, limit=1, n=4, max_tokens=12, input_price=0,
                       output_price=0, usd_per_hour=USD_PER_HOUR, store=tmp_path / "w2.db",
                       budget_usd=2 * one.totals["cost_usd"])  # fmt: skip
    assert none.totals["requests"] == 0


def test_batch_sizes_cover_the_slots() -> None:
    assert batch_sizes(16) == [1, 2, 4, 8, 16] and batch_sizes(12) == [1, 2, 4, 8, 12] and batch_sizes(1) == [1]


def test_a_profile_is_measured_once_then_read_from_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERECO_CACHE", str(tmp_path))
    monkeypatch.delenv("INFERECO_RUNTIME_PROFILE", raising=False)
    measured = []

    async def measure() -> RuntimeProfile:
        measured.append(1)
        return PROFILE

    assert asyncio.run(cached_profile("k1", measure)) == PROFILE
    assert asyncio.run(cached_profile("k1", measure)) == PROFILE
    assert len(measured) == 1
    (tmp_path / "profiles" / "k1.json").write_text("{broken")
    assert asyncio.run(cached_profile("k1", measure)) == PROFILE and len(measured) == 2  # a damaged entry is measured again
    override = tmp_path / "quiet.json"
    override.write_text(PROFILE.model_copy(update={"machine": "quiet"}).model_dump_json())
    monkeypatch.setenv("INFERECO_RUNTIME_PROFILE", str(override))
    assert (asyncio.run(cached_profile("k1", measure))).machine == "quiet"
    override.write_text("[]")
    with pytest.raises(UserError, match="quiet.json"):
        read_profile(override)
