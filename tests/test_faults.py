"""A flaky server never loses samples, never goes unbilled, and never pushes spend past the budget.

The loopback fake server injects faults on 30% of attempts (429 with Retry-After, 500, 503, dropped
connections, timeouts, bodies cut short, bodies that are not JSON, answers without `usage`, slow
answers) while 16 requests are in flight. The server keeps its own bill of every answer it generated,
delivered or not, which is what a provider would charge; the store's ledger must cover it.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from fakeserver import FakeServer
from infereco.api import run as api_run
from infereco.backends.openai import OpenAIBackend

FAULTS = {
    "429": 0.05, "500": 0.04, "503": 0.04, "reset": 0.04, "timeout": 0.03, "truncated": 0.03,
    "invalid_json": 0.03, "no_usage": 0.02, "slow": 0.02,
}  # fmt: skip
FAILING = ("429", "500", "503", "reset", "timeout", "truncated", "invalid_json")  # the try yields no answer
MAYBE_BILLED = ("reset", "timeout", "truncated", "invalid_json")  # generated, then lost on the way
INPUT_PRICE, OUTPUT_PRICE = 2.0, 10.0  # USD per 1M tokens
PROBLEMS, N, MAX_N, MAX_TOKENS = 40, 4, 2, 30
REQUESTS = PROBLEMS * N // MAX_N


# Client timeouts where the count of tries must be exact: a clean answer takes milliseconds, but
# on a loaded machine (2 cores shared with model runs) one can take far longer than 0.3 s, and a
# clean try that times out is an extra try no fault explains. A "timeout" fault always holds its
# answer past the client's timeout (the hold starts after the client's clock), however slow.
PATIENT_TIMEOUT_S, PATIENT_HOLD_S = 3.0, 3.5


def _server(faults: dict[str, float] | None, seed: int = 0, hold_s: float = 0.5) -> FakeServer:
    # a "timeout" fault holds the answer past the client's timeout (0.3 s unless told)
    return FakeServer(filler_max=40, faults=faults, fault_seed=seed, timeout_hold_s=hold_s, slow_s=0.05)


def _run(fake: FakeServer, store: Path, timeout_s: float = 0.3, **kw: Any):
    backend = OpenAIBackend(
        fake.base_url, "fake", concurrency=16, max_n=MAX_N, timeout_s=timeout_s, max_retries=12, backoff_base_s=0.01,
        backoff_max_s=0.05,
    )  # fmt: skip
    return api_run(
        "arithmetic", level=1, limit=PROBLEMS, n=N, backend=backend, max_tokens=MAX_TOKENS,
        input_price=INPUT_PRICE, output_price=OUTPUT_PRICE, store=store, **kw,
    )  # fmt: skip


def _billed_usd(fake: FakeServer) -> float:
    """What the server would charge: every answer it generated, received by the client or not."""
    return sum(p * INPUT_PRICE + c * OUTPUT_PRICE for _, p, c in fake.model.billed) / 1e6


def _samples(store: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(store) as conn:
        return conn.execute(
            "SELECT problem_id, sample_index, request_key, text, answer, correct, seed FROM samples "
            "ORDER BY problem_id, sample_index"
        ).fetchall()


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    store = tmp_path_factory.mktemp("clean") / "clean.db"
    with _server(None) as fake:
        result = _run(fake, store, timeout_s=PATIENT_TIMEOUT_S)
        assert fake.model.attempts == REQUESTS
    return store, result


def test_thirty_percent_faults_lose_nothing_and_the_ledger_counts_every_try(clean, tmp_path: Path) -> None:
    store = tmp_path / "flaky.db"
    with _server(FAULTS, hold_s=PATIENT_HOLD_S) as fake:
        result = _run(fake, store, timeout_s=PATIENT_TIMEOUT_S)
        injected, attempts, billed_usd = Counter(fake.model.injected), fake.model.attempts, _billed_usd(fake)
        answered = Counter(fake.model.keys)
    assert set(injected) == set(FAULTS), injected  # every kind was exercised
    # nothing lost: the same samples as a run against a server that never fails
    assert _samples(store) == _samples(clean[0])
    t = result.totals
    assert t["requests"] == REQUESTS and t["samples"] == PROBLEMS * N and t["problems_done"] == PROBLEMS
    # the ledger counts every try the server saw; the extra tries are exactly the failed ones
    assert t["attempts"] == attempts
    assert t["attempts"] - t["requests"] == sum(injected[k] for k in FAILING)
    # nothing paid twice: every request got exactly one answer through, whatever was lost on the way
    assert len(answered) == REQUESTS and set(answered.values()) == {1}
    # nothing unbilled: the confirmed cost plus the worst case of lost tries covers the server's bill
    assert t["cost_usd"] + t["unconfirmed_usd"] >= billed_usd
    assert t["unconfirmed_usd"] > 0 and t["cost_usd"] >= clean[1].totals["cost_usd"]  # no usage: upper bound
    print(f"\nfaults injected {sum(injected.values())} in {attempts} tries of {t['requests']} requests: {dict(injected)}")


# Seed 2 once passed the budget in about 1 run of 5: a try lost on the way (timeout, reset, garbled
# body) that was the request's last one (its retry refused by the budget, or retries used up) was
# charged nowhere. Its own test is below; seeds 1-4 here exercise it under mixed faults.
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_spend_never_exceeds_the_budget_under_faults(clean, tmp_path: Path, seed: int) -> None:
    budget = clean[1].totals["cost_usd"] / 3
    store = tmp_path / "budget.db"
    with _server(FAULTS, seed=seed) as fake:
        result = _run(fake, store, budget_usd=budget)
        billed_usd = _billed_usd(fake)
        lost = sum(fake.model.injected[k] for k in MAYBE_BILLED)
    t = result.totals
    assert billed_usd <= budget  # what the provider charges, lost answers included
    assert t["cost_usd"] + t["unconfirmed_usd"] <= budget  # what the ledger charges
    assert 0 < t["problems_done"] < PROBLEMS and result.budget_note and "budget reached" in result.budget_note
    assert lost > 0 and t["attempts"] > t["requests"]
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT status FROM runs WHERE status != 'pool'").fetchone()[0] == "budget"
    print(f"\nbudget ${budget:.6f}: server billed ${billed_usd:.6f}, ledger ${t['cost_usd'] + t['unconfirmed_usd']:.6f}, "
          f"faults {dict(fake.model.injected)}")


@pytest.mark.parametrize("retries", [0, 1])
def test_a_last_try_lost_on_the_way_is_charged(tmp_path: Path, retries: int) -> None:
    """Every try is held past the client's timeout, so each request fails for good, and the server
    bills every answer it generated. The ledger charges the last try too (no retry gate saw it)."""
    store = tmp_path / "lost.db"
    with _server({"timeout": 1.0}) as fake:
        backend = OpenAIBackend(fake.base_url, "fake", concurrency=2, max_n=MAX_N, timeout_s=0.3, max_retries=retries,
                                backoff_base_s=0.01, backoff_max_s=0.05)  # fmt: skip
        with pytest.raises(Exception, match="timed out"):
            api_run("arithmetic", level=1, limit=2, n=N, backend=backend, max_tokens=MAX_TOKENS, input_price=INPUT_PRICE,
                    output_price=OUTPUT_PRICE, store=store)  # fmt: skip
        time.sleep(0.6)  # the held answers are generated (billed) after the client gave up
        billed_usd, tries = _billed_usd(fake), fake.model.attempts
    assert tries >= retries + 1 and billed_usd > 0
    with sqlite3.connect(store) as conn:
        charged = conn.execute("SELECT COALESCE(SUM(usd), 0) FROM lost").fetchone()[0]
    assert charged >= billed_usd  # worst case per lost try covers what the server billed
