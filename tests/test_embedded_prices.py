"""The embedded model priced by idealized runtime, for real: its profile is measured (or read from the
cache), stored with the run, prices every request from its tokens, and makes budgets realistic."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

import infereco
from infereco.backends.llamacpp import LlamaCppBackend
from infereco.prices import RuntimeProfile
from infereco.runtime import measure_profile

pytestmark = pytest.mark.model


def test_requests_cost_their_idealized_seconds_and_a_budget_of_twice_one_sends_it(tmp_path: Path) -> None:
    options = dict(level=1, strategy="majority", n=8, max_tokens=16)
    one = infereco.run("arithmetic", limit=1, store=tmp_path / "one.db", **options)
    with sqlite3.connect(tmp_path / "one.db") as conn:
        config = json.loads(conn.execute("SELECT config_json FROM runs WHERE status != 'pool'").fetchone()[0])
        [(n, prompt, completion, compute_s, busy_s, cost)] = conn.execute(
            "SELECT n, prompt_tokens, completion_tokens, compute_s, busy_s, cost_usd FROM requests"
        ).fetchall()
    profile = RuntimeProfile(**config["price"]["runtime"])
    assert config["price"]["clock"] == "runtime" and busy_s > 0  # wall time still recorded
    assert compute_s == pytest.approx(profile.seconds(prompt, completion, n))
    assert cost == pytest.approx(compute_s * config["price"]["usd_per_hour"] / 3600)
    # the budget reserves from the same profile: twice the real cost of that request sends it
    again = infereco.run("arithmetic", limit=2, store=tmp_path / "budget.db", budget_usd=2 * one.totals["cost_usd"], **options)
    assert again.totals["requests"] >= 1 and again.totals["cost_usd"] <= 2 * one.totals["cost_usd"]


def test_a_profile_of_the_running_server_decodes_cheaper_per_token_in_batches() -> None:
    async def go() -> RuntimeProfile:
        backend = LlamaCppBackend(slots=4)
        try:
            await backend.start()
            server = backend.server
            return await measure_profile(server.base_url, backend.model, 4, pid=server.process.pid, threads=server.threads)
        finally:
            await backend.aclose()

    profile = asyncio.run(go())
    assert sorted(profile.decode_s_per_token) == [1, 2, 4]
    assert 0 < profile.prefill_s_per_token < profile.decode_s_per_token[1]
    # four sequences share each step's weights: ~45% cheaper per token on idle cores (batch 2 is only
    # ~7% cheaper, within the noise of a loaded machine, so it is not compared)
    assert profile.decode_s_per_token[4] < profile.decode_s_per_token[1]
