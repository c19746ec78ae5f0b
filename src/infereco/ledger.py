"""What the Runner needs from a store, as protocols: a `SampleLedger` to solve problems, a `RunStore`
to record a run around them.

Solving needs four things: the samples of a step already kept (so nothing is paid twice), a way
to keep new requests with their samples (each whole), a way to keep a problem's answer, and what a
problem already spent (for its budget). `store.Store` (SQLite) is both; `ray_executor.ShardStore`
(a worker's in-memory copy that streams records to the driver) is a `SampleLedger` only: the
driver records the run, its problems and its status, and the worker only solves.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from infereco.problem import Problem
from infereco.records import ProblemResult, RequestRecord, SampleRecord


@runtime_checkable
class SampleLedger(Protocol):
    def samples(self, ledger_id: str, problem_id: str, step: str) -> list[SampleRecord]:
        """The kept samples of one step of a problem (under a run's ledger: its pool or itself), by index."""
        ...

    def record_requests(self, ledger_id: str, batch: list[tuple[RequestRecord, list[SampleRecord]]]) -> None:
        """Keep requests, each with all its samples (each request whole or not at all)."""
        ...

    def record_result(self, run_id: str, result: ProblemResult) -> None:
        """Keep a problem's final answer."""
        ...

    def problem_spend(self, run_id: str, problem_id: str) -> tuple[float, int]:
        """USD and tokens a problem of a run already spent (earlier sessions included)."""
        ...


@runtime_checkable
class RunStore(SampleLedger, Protocol):
    """A ledger that also records runs: what `Runner.prepare` and `Runner.run` need."""

    def run_config(self, run_id: str) -> dict[str, Any] | None: ...

    def ensure_pool(self, pool_id: str, label: str, config: dict[str, Any]) -> None: ...

    def ensure_run(self, run_id: str, label: str, config: dict[str, Any]) -> bool: ...

    def update_run(self, run_id: str, label: str, config: dict[str, Any]) -> None: ...

    def add_problems(self, run_id: str, problems: Any) -> None: ...

    def set_status(self, run_id: str, status: str) -> None: ...

    def done_problems(self, run_id: str, n: int | None = None) -> set[str]: ...

    def totals(self, run_id: str) -> dict[str, Any]: ...

    def acquire_writer(self, run_id: str) -> None:
        """Take the run for this process (one writer per run), or raise naming the one that holds it."""
        ...

    def release_writer(self, run_id: str) -> None: ...

    def recover_inflight(self, run_id: str) -> tuple[int, float, int]:
        """Charge the requests a killed process left in flight under this ledger at their worst case."""
        ...

    def add_event(self, run_id: str, kind: str, message: str) -> None: ...


__all__ = ["Problem", "RunStore", "SampleLedger"]
