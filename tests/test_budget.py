"""Hard budgets: spend never exceeds `--budget-usd` / `--budget-tokens`, also with requests in flight.

Runs against the loopback fake server with random response lengths and 8 concurrent requests.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from fakeserver import FakeServer
from infereco.api import run as api_run
from infereco.budget import Budget, Reservation, prompt_token_bound
from infereco.errors import UserError


def test_reserve_refuses_what_would_not_fit_and_commit_settles() -> None:
    budget = Budget(max_usd=1.0, max_tokens=100)
    first = budget.reserve(0.6, 50)
    assert first == Reservation(0.6, 50)
    assert budget.reserve(0.5, 10) is None and budget.exhausted  # 0.6 + 0.5 > 1.0 while in flight
    budget.commit(first, 0.2, 30)
    assert (budget.spent_usd, budget.spent_tokens, budget.reserved_usd, budget.reserved_tokens) == (0.2, 30, 0.0, 0)
    assert Budget().reserve(1e9, 10**12) is not None  # no limits, no refusals


def test_negative_budgets_are_input_errors() -> None:
    with pytest.raises(UserError, match="--budget-usd"):
        Budget(max_usd=-1)
    with pytest.raises(UserError, match="--budget-tokens"):
        Budget(max_tokens=-5)


def test_prompt_bound_counts_bytes_and_template_overhead() -> None:
    messages = [{"role": "system", "content": "héllo"}, {"role": "user", "content": "What is 2 + 2?"}]
    assert prompt_token_bound(messages) == 16 + (6 + 8) + (14 + 8)


def _run(fake: FakeServer, store: Path, **kw: Any):
    args: dict[str, Any] = dict(
        level=1, limit=20, n=4, max_n=2, concurrency=8, backend="openai", base_url=fake.base_url, model="fake",
        max_tokens=30, input_price=2.0, output_price=10.0, store=store,
    )  # fmt: skip
    args.update(kw)
    return api_run("arithmetic", **args)


def _status(store: Path) -> str:
    with sqlite3.connect(store) as conn:
        return conn.execute("SELECT status FROM runs").fetchone()[0]


@pytest.mark.parametrize("limit_kind", ["tokens", "usd"])
def test_concurrent_run_stops_at_the_budget_and_resumes_under_a_larger_one(tmp_path: Path, limit_kind: str) -> None:
    store = tmp_path / "b.db"
    with FakeServer(filler_max=40, delay_s=0.02) as fake:
        full = _run(fake, tmp_path / "full.db")  # what the whole run costs without a budget
        whole_tokens = full.totals["prompt_tokens"] + full.totals["completion_tokens"]
        whole_usd = full.totals["cost_usd"]
        limit = {"budget_tokens": whole_tokens // 3} if limit_kind == "tokens" else {"budget_usd": whole_usd / 3}
        part = _run(fake, store, **limit)
        spent_tokens = part.totals["prompt_tokens"] + part.totals["completion_tokens"]
        if limit_kind == "tokens":
            assert spent_tokens <= limit["budget_tokens"]
        else:
            assert part.totals["cost_usd"] <= limit["budget_usd"]
        assert 0 < part.totals["problems_done"] < 20
        assert _status(store) == "budget" and part.budget_note and "budget reached" in part.budget_note
        # the budget covers the whole run: a resume under a larger one counts what was already paid
        bigger = {k: v * 2 for k, v in limit.items()}
        more = _run(fake, store, **bigger)
        if limit_kind == "tokens":
            assert more.totals["prompt_tokens"] + more.totals["completion_tokens"] <= bigger["budget_tokens"]
        else:
            assert more.totals["cost_usd"] <= bigger["budget_usd"]
        assert more.totals["problems_done"] > part.totals["problems_done"]
        done = _run(fake, store)  # no budget: finishes, paying only for what is missing
    assert done.totals["samples"] == full.totals["samples"] == 80
    assert _status(store) == "done" and done.budget_note is None


def test_machine_time_is_reserved_at_the_request_timeout(tmp_path: Path) -> None:
    # $36/h = $0.01 per second; timeout 0.5 s, no retries: each request reserves at most $0.005 of time
    with FakeServer(delay_s=0.05) as fake:
        result = _run(
            fake, tmp_path / "t.db", usd_per_hour=36.0, input_price=0.0, output_price=0.0, timeout_s=0.5,
            max_retries=0, budget_usd=0.02,
        )  # fmt: skip
    assert result.totals["cost_usd"] <= 0.02
    # a reservation that does not fit waits for the ones in flight to settle (each costs far less
    # than the $0.005 it reserved), so all 40 requests fit, at most 4 in flight at a time
    assert result.totals["requests"] == 40 and result.budget_note is None


def test_a_per_problem_budget_stops_that_problem_only(tmp_path: Path) -> None:
    store = tmp_path / "pp.db"
    from infereco.budget import prompt_token_bound
    from infereco.tasks import arithmetic_task

    task = arithmetic_task(level=1, limit=20)
    # a request (n=2, max_tokens 30) reserves the prompt bound + 60 tokens
    bounds = [prompt_token_bound(task.messages(p)) + 60 for p in task.problems]
    per_problem = max(bounds)  # room for one request of every problem ...
    assert per_problem < 2 * min(bounds)  # ... but never for two
    with FakeServer(filler_max=40) as fake:
        result = _run(fake, store, budget_tokens_per_problem=per_problem)
    with sqlite3.connect(store) as conn:
        spent = conn.execute(
            "SELECT problem_id, SUM(prompt_tokens + completion_tokens), COUNT(*) FROM requests GROUP BY problem_id"
        ).fetchall()
    assert len(spent) == 20 and all(tokens <= per_problem for _, tokens, _ in spent)
    assert all(count == 1 for _, _, count in spent)  # n=4 in requests of 2: the second never fit
    # each problem stops at its budget and is answered from the 2 samples it could pay for
    assert result.totals["problems_done"] == 20 and "20 problem(s) stopped" in (result.budget_note or "")
    assert "0 unsolved" in (result.budget_note or "")
    assert _status(store) == "done"  # the run itself was not stopped by a run-level budget
