"""`--executor ray`: problems sharded over a Ray cluster, every record written by the one driver.

Why the store stays single-writer in the driver (see docs/architecture.md, "Scaling out"):
- SQLite is a local file; workers on other machines cannot share it, and a second database to merge
  would be a second source of truth;
- the worker runs the ordinary `Runner` with the ordinary strategy code, but against a `ShardStore`:
  an in-memory copy of what the store already holds for its problems (so a resumed run reuses
  stored samples and sends only the missing ones) that streams every request it records
  (the request row with all its samples) and every result back to the driver the moment it is made;
- the driver writes the streamed records with the same keys, each request whole (grouped into
  transactions, as the local Runner does). A problem belongs to exactly one shard, so no two workers can ask for the same
  key, and a killed driver loses at most the requests in flight or in transit, never a stored one:
  `--resume` sends exactly the rest, as with the local executor.

Ray is imported only here, only when `--executor ray` is asked for (`pip install 'infereco[ray]'`).
A run-wide budget needs one ledger all workers reserve against; it is refused with Ray for now
(per-problem budgets work: a problem's whole spend happens inside one worker).
"""

from __future__ import annotations

import asyncio
import math
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

from infereco.backends.base import Backend
from infereco.budget import Budget
from infereco.errors import UserError
from infereco.prices import Price
from infereco.records import ProblemResult, RequestRecord, SampleRecord
from infereco.runner import Progress, Runner, RunSpec
from infereco.store import Store

_DONE = "done"


class ShardStore:
    """A worker's `SampleLedger`, in memory: the samples the store already holds for its problems in,
    every new request (with its samples) and result streamed out to the driver, which writes them.

    The run, its problems and its status are the driver's to record (its Runner prepared the run),
    so this is a ledger only: the worker's Runner solves (`Runner.solve`), it does not run."""

    def __init__(
        self, stored: Iterable[SampleRecord], spend: dict[str, tuple[float, int]], emit: Any
    ) -> None:
        self._samples: dict[tuple[str, str], dict[int, SampleRecord]] = {}
        for s in stored:
            self._samples.setdefault((s.problem_id, s.step), {})[s.index] = s
        self._spend = spend
        self._emit = emit

    def samples(self, ledger_id: str, problem_id: str, step: str) -> list[SampleRecord]:
        found = self._samples.get((problem_id, step), {})
        return [found[i] for i in sorted(found)]

    def record_requests(self, ledger_id: str, batch: list[tuple[RequestRecord, list[SampleRecord]]]) -> None:
        for request, samples in batch:
            for s in samples:
                self._samples.setdefault((s.problem_id, s.step), {})[s.index] = s
            self._emit(("request", request, samples))

    def record_result(self, run_id: str, result: ProblemResult) -> None:
        self._emit(("result", result))

    def problem_spend(self, run_id: str, problem_id: str) -> tuple[float, int]:
        return self._spend.get(problem_id, (0.0, 0))


def solve_shard(
    config: dict[str, Any],
    label: str | None,
    run_id: str,
    problem_ids: list[str],
    stored: list[SampleRecord],
    spend: dict[str, tuple[float, int]],
    problem_budget: tuple[float | None, int | None],
    max_retries: int | None = None,
) -> Iterator[list[tuple[Any, ...]]]:
    """On a Ray worker: rebuild the run from its stored config and solve some of its problems.

    Yields lists (whatever is ready at once) of ("request", RequestRecord, samples) and ("result",
    ProblemResult) in the order they happened, then [("summary", reused, over_budget)]. A request
    that failed for good is raised after the records of the requests that were already in flight
    have been yielded (as the local Runner stores them before raising).
    """
    from infereco.assemble import spec_from_config

    spec, backend, price, roles = spec_from_config(config, label, max_retries=max_retries)
    keep = set(problem_ids)
    # the shard's problems only, under the whole task's content digest (part of the run id)
    shard_task = replace(spec.task, problems=tuple(p for p in spec.task.problems if p.id in keep), pinned_digest=spec.task.digest())
    spec = replace(spec, task=shard_task)
    out: queue.Queue[Any] = queue.Queue()
    shard = ShardStore(stored, spend, out.put)
    runner = Runner(spec, backend, shard, price, problem_budget=problem_budget, roles=roles)
    if runner.run_id != run_id:
        raise UserError(f"worker rebuilt run {runner.run_id}, driver has {run_id}: the run's config is not reproducible")
    # where the driver keeps the run's samples: its pool (a pooled strategy's run) or the run itself
    runner.ledger_id, runner.step_prefix = config.get("pool", run_id), config.get("step_prefix")

    async def go() -> None:
        try:
            await runner.solve(list(spec.task.problems))
        finally:
            for each in runner.backends:
                await each.aclose()

    def work() -> None:
        try:
            asyncio.run(go())
        except BaseException as exc:  # handed to the generator, which raises it in Ray's worker
            out.put(("error", exc))
        else:
            out.put((_DONE,))

    threading.Thread(target=work, daemon=True, name="infereco-shard").start()
    while True:
        items = [out.get()]  # wait for one, then take whatever else is ready: one Ray object per batch
        while True:
            try:
                items.append(out.get_nowait())
            except queue.Empty:
                break
        records = [i for i in items if i[0] not in (_DONE, "error")]
        if records:
            yield records
        ends = [i for i in items if i[0] in (_DONE, "error")]
        if ends:
            if ends[0][0] == "error":
                raise ends[0][1]
            break
    yield [("summary", runner.progress.samples_reused, list(runner.problems_over_budget), sorted(runner.problems_at_budget))]


def run_on_ray(
    spec: RunSpec,
    backend: Backend,
    db: Store,
    price: Price,
    progress: Progress | None = None,
    budget: Budget | None = None,
    problem_budget: tuple[float | None, int | None] = (None, None),
    roles: dict[str, tuple[Backend, Price]] | None = None,
    *,
    address: str | None = None,
    shards: int | None = None,
) -> Runner:
    """Solve a run's unsolved problems on Ray workers; write every record into `db` here.

    Returns the driver's `Runner` (run id, progress counters, problems over budget), as the local
    executor does. `address`: an existing cluster ("auto", "ray://host:10001"); None starts a local one
    unless Ray is already initialised in this process.
    """
    if budget is not None and budget.limited:
        raise UserError(
            "--budget-usd/--budget-tokens are not supported with --executor ray yet (one run-wide ledger is "
            "needed); use --budget-usd-per-problem/--budget-tokens-per-problem or --executor local"
        )
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install 'infereco[ray]'") from None
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except Exception as exc:  # an unreachable address, a version mismatch
            raise UserError(f"--ray-address {address or '(local)'}: cannot start or join Ray ({exc})") from None
    # the driver's Runner records the run (with its other backend roles, which the workers rebuild
    # from the stored config) and counts; the workers sample
    runner = Runner(spec, backend, db, price, progress, problem_budget=problem_budget, roles=roles)
    pending = runner.prepare()
    run_id, progress = runner.run_id, runner.progress
    config = db.run(run_id)["config"]
    if not pending:
        db.set_status(run_id, "done")
        return runner
    # A shard takes one CPU; shards beyond the cluster's CPUs wait and start as others finish, so
    # 4 per CPU balance uneven problems while each shard still amortises its start (rebuilding the
    # task, a new HTTP session). Never retried by Ray: a rerun would pay again for what it streamed.
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    count = max(1, min(len(pending), shards or 4 * cpus))
    size = math.ceil(len(pending) / count)
    parts = [pending[i : i + size] for i in range(0, len(pending), size)]
    remote = ray.remote(num_returns="streaming", max_retries=0)(solve_shard)
    retries = getattr(backend, "max_retries", None)  # not part of the stored config; the workers use the driver's
    limited = problem_budget[0] is not None or problem_budget[1] is not None
    streams = []
    for part in parts:
        ids = [p.id for p in part]
        stored = db.problem_samples(run_id, ids)
        spend = {pid: db.problem_spend(run_id, pid) for pid in ids} if limited else {}
        streams.append(remote.remote(config, spec.label, run_id, ids, stored, spend, problem_budget, retries))
    failure: BaseException | None = None
    waiting = list(streams)
    writer = _Writer(db, runner)
    try:
        while waiting:
            # block only when nothing is waiting to be written; else write as soon as nothing is ready
            ready, waiting = ray.wait(waiting, num_returns=1, timeout=0 if writer.batch else None)
            if not ready:
                writer.flush()
                continue
            stream = ready[0]
            try:
                item = ray.get(next(stream))  # a list of records
            except StopIteration:
                continue
            except ray.exceptions.RayError as exc:  # the shard's own error (a BackendError), a lost worker
                failure = failure or _cause(exc)
                continue  # the other shards go on: what they pay for is stored
            waiting.append(stream)
            for record in item:
                writer.add(record)
        writer.flush()
    except BaseException:
        writer.flush()  # what arrived was paid for: store it before giving up
        for stream in streams:
            ray.cancel(stream, force=False)
        db.set_status(run_id, "interrupted")
        raise
    if failure is not None:
        db.set_status(run_id, "interrupted")
        raise failure
    db.set_status(run_id, "done")
    return runner


class _Writer:
    """Writes streamed records: requests grouped into one transaction per batch (each request whole),
    and every result only after the requests before it are stored, so a stored result never lacks
    its samples."""

    def __init__(self, db: Store, runner: Runner) -> None:
        self.db, self.runner = db, runner
        self.batch: list[tuple[RequestRecord, list[SampleRecord]]] = []

    def flush(self) -> None:
        if self.batch:
            self.db.record_requests(self.runner.ledger_id, self.batch)
            self.batch = []

    def add(self, item: tuple[Any, ...]) -> None:
        p = self.runner.progress
        if item[0] == "request":
            _, request, samples = item
            self.batch.append((request, samples))
            if len(self.batch) >= 256:
                self.flush()
            p.requests_sent += 1
            p.samples_done += len(samples)
            p.completion_tokens += request.completion_tokens
            p.cost_usd += request.cost_usd
            p.changed()
        elif item[0] == "result":
            self.flush()
            self.db.record_result(self.runner.run_id, item[1])
        elif item[0] == "summary":
            _, reused, over, at_budget = item
            p.samples_reused += reused
            self.runner.problems_over_budget.extend(over)
            self.runner.problems_at_budget.update(at_budget)
            p.changed()


def _cause(exc: BaseException) -> BaseException:
    """The shard's own exception (what the local executor would raise), or a one-line error for a
    worker Ray lost (its node died): the records it streamed are stored, `--resume` sends the rest."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return cause
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return UserError(f"a Ray worker was lost ({type(exc).__name__}: {first}); the run is kept: --resume finishes it")


__all__ = ["ShardStore", "run_on_ray", "solve_shard"]
