"""The Runner: the only place that touches time, concurrency and the Store.

It feeds problems to a strategy, answers the strategy's requests for samples from the store when
it can and from the backend when it must, prices every response, and writes each request with its
samples right after the response arrives (the responses of one event-loop turn share a
transaction; each request is whole in it). Kill it at any instant and the store
holds only whole requests; run it again and it sends exactly the requests that are missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from infereco.backends.base import Backend, GenerationRequest, RetryRefused
from infereco.budget import Budget, Reservation, prompt_token_bound
from infereco.checkers import Checker
from infereco.errors import BackendError, UserError
from infereco.prices import Price
from infereco.problem import Problem
from infereco.records import ProblemResult, RequestRecord, SampleRecord
from infereco.grading import grade_async
from infereco.ledger import RunStore, SampleLedger
from infereco.store import StoreFull, store_error
from infereco.strategies import registry
from infereco.strategies.base import BudgetSpent, SamplingParams, Strategy
from infereco.tasks.base import Task
from infereco.usage import TokenUsage


#: the step of the run's pool of samples (see `strategies.sampling`)
POOL_STEP = "sample"
#: steps that grade a pool's samples (the task's grader): kept with the pool, whatever the strategy
GRADE_STEPS = ("grade/",)


def stable_hash(*parts: Any, length: int = 12) -> str:
    """A short hex digest of JSON-serialised parts: the same inputs give the same id on any machine."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def request_seed(run_seed: int, problem_id: str, step: str, start: int) -> int:
    return int(stable_hash(run_seed, problem_id, step, start, length=8), 16) & 0x7FFFFFFF


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run. Its `run_id` is a hash of the parts that change the samples."""

    task: Task
    strategy: Strategy
    params: SamplingParams = SamplingParams()
    seed: int = 0
    label: str | None = None
    #: the run description it was assembled from (`RunConfig.stored()`), kept with the run so that
    #: `--resume` and Ray workers rebuild it; not part of its identity
    description: dict[str, Any] | None = field(default=None, compare=False)

    def identity(self, backend: Backend) -> dict[str, Any]:
        ident = dict(backend.describe())
        for volatile in ("slots", "threads", "base_url", "api_key_env", "max_n", "concurrency", "timeout_s"):
            ident.pop(volatile, None)  # how the same model is served does not change what it samples
        return {
            "task": self.task.spec,
            # what the problems ask and expect, the rendered prompt and the checker: an edited row
            # or a changed prompt is another run, never a silent reuse of the old samples
            "content": self.task.digest(),
            "backend": ident,
            "strategy": self.strategy.describe(),
            "sampling": _sampling_identity(self.params),
            "seed": self.seed,
        }

    @property
    def pools_samples(self) -> bool:
        """Whether the strategy draws the one pool of samples its (task, model, sampling, seed) share
        (`strategies.registry`); a strategy the registry does not know says so by `extends_pool`."""
        name = str(self.strategy.describe().get("name", ""))
        try:
            return registry.pools_samples(name)
        except UserError:
            return bool(getattr(self.strategy, "extends_pool", True))

    def pool_id(self, backend: Backend) -> str:
        """The pool's id: what changes a pooled sample (task, model, sampling, seed), not the strategy.

        Majority, pass@n, bon, weighted, bom and adaptive on the same task, model, sampling and seed
        draw the same samples from it, so a sweep over them pays for the largest N once."""
        ident = {k: v for k, v in self.identity(backend).items() if k != "strategy"}
        return "pool-" + stable_hash({"pool": ident})

    def step_prefix(self) -> str:
        """Where a pooled strategy keeps its steps besides the pool's samples: under its verifier
        (bon, weighted, bom and adaptive with the same verifier share its scores), or, without one,
        under its own options."""
        verifier = getattr(self.strategy, "verifier", None)
        if verifier is not None and callable(getattr(verifier, "describe", None)):
            return "v-" + stable_hash(verifier.describe(), length=10)
        return "s-" + stable_hash({k: v for k, v in self.strategy.describe().items() if k != "n"}, length=10)

    def run_id(self, backend: Backend) -> str:
        ident = self.identity(backend)
        # N is left out of strategies that draw one pool of samples: the same config with a larger
        # N extends it (samples 0..N-1 are identical either way), so going from N=16 to N=32 pays
        # for 16 more, not 32. A search (beam, particles) at another N is another experiment.
        if getattr(self.strategy, "extends_pool", True):
            ident["strategy"] = {k: v for k, v in ident["strategy"].items() if k != "n"}
        return stable_hash(ident)

    def default_label(self, backend: Backend) -> str:
        strat = self.strategy.describe()
        return self.label or f"{backend.model} / {strat['name']} N={strat.get('n', '?')}"


def _sampling_identity(params: SamplingParams) -> dict[str, Any]:
    """The sampling parameters as stored; fields added later are left out at their defaults, so a
    stored run keeps its id (and its samples) across versions."""
    out = {**params.__dict__, "stop": list(params.stop)}
    if out.get("top_logprobs") == 0:
        del out["top_logprobs"]
    return out


class BusyClock:
    """Processor-sharing accounting of machine time.

    While k requests are in flight, each is charged 1/k of the elapsed wall time, so the charges of
    all requests add up exactly to the time the machine was busy: concurrent requests are not each
    billed the full wall time, and an idle machine is billed to nobody.
    """

    def __init__(self, now: Callable[[], float] = time.perf_counter) -> None:
        self._now = now
        self._last = now()
        # the time one request in flight has been charged since the clock started: each interval
        # adds its length / the number in flight, so a request's charge is the difference between
        # its stop and its start (O(1) per event, however many are in flight)
        self._share = 0.0
        self._started: dict[int, float] = {}
        self._next = 0

    def _advance(self) -> None:
        t = self._now()
        if self._started:
            self._share += (t - self._last) / len(self._started)
        self._last = t

    def start(self) -> int:
        self._advance()
        token, self._next = self._next, self._next + 1
        self._started[token] = self._share
        return token

    def stop(self, token: int) -> float:
        self._advance()
        return self._share - self._started.pop(token)


@dataclass
class Progress:
    """Counters the Runner updates; a UI (rich progress bar) or a test may watch them."""

    samples_total: int = 0
    samples_done: int = 0
    samples_reused: int = 0
    requests_sent: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    #: what the run is doing when it is not sampling (e.g. a model server loading), "" while it samples
    status: str = ""
    started: float = field(default_factory=time.perf_counter)
    on_change: Callable[[Progress], None] | None = None

    def changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    @property
    def tokens_per_s(self) -> float:
        elapsed = time.perf_counter() - self.started
        return self.completion_tokens / elapsed if elapsed > 0 else 0.0


class _ProblemContext:
    """The `SamplingContext` a strategy gets for one problem (see strategies.base)."""

    def __init__(self, runner: Runner, problem: Problem) -> None:
        self.runner = runner
        self.problem = problem
        self.checker: Checker = runner.spec.task.checker
        self.params = runner.spec.params
        self.step_delimiter = runner.spec.task.step_delimiter

    def messages(self) -> list[dict[str, str]]:
        return self.runner.spec.task.messages(self.problem)

    async def sample(
        self,
        step: str,
        n: int,
        messages: list[dict[str, str]] | None = None,
        params: SamplingParams | None = None,
        *,
        role: str = "main",
        partial: bool = False,
        affinity: str = "",
    ) -> list[SampleRecord]:
        return await self.runner.sample(
            self.problem, step, n, messages or self.messages(), params or self.runner.spec.params, role, partial,
            affinity=affinity,
        )


@dataclass
class _Served:
    """One backend the run uses, with its price, its concurrency limit and its machine clock."""

    backend: Backend
    price: Price
    slots: asyncio.Semaphore
    clock: BusyClock


class Runner:
    """Runs one `RunSpec` against one backend into one store."""

    def __init__(
        self,
        spec: RunSpec,
        backend: Backend,
        store: SampleLedger,
        price: Price,
        progress: Progress | None = None,
        budget: Budget | None = None,
        problem_budget: tuple[float | None, int | None] = (None, None),
        roles: dict[str, tuple[Backend, Price]] | None = None,
        lanes: dict[int, tuple[asyncio.Semaphore, BusyClock]] | None = None,
    ) -> None:
        """`roles` names further backends a strategy may ask for (see `SamplingContext.sample`);
        a role given the main backend object shares its concurrency limit and its machine clock.
        `lanes` (by `id(backend)`) shares those with other Runners: `infereco serve` runs one Runner
        per HTTP request, and all of them must queue for the same upstream and split its machine time."""
        self.spec = spec
        self.backend = backend
        self.store = store
        self.price = price
        self.progress = progress or Progress()
        self.run_id = spec.run_id(backend)
        #: where the run's samples and requests are kept: its pool (a pooled strategy's run, from
        #: `prepare`), else the run itself; results are always the run's own
        self.ledger_id = self.run_id
        #: a pooled run's steps other than the pool's samples live under this prefix (None: as named)
        self.step_prefix: str | None = None
        self.clock = BusyClock()
        served: dict[int, _Served] = {}
        self._roles: dict[str, _Served] = {}
        for role, (b, p) in {"main": (backend, price), **(roles or {})}.items():
            if id(b) not in served:
                if lanes is not None and id(b) in lanes:
                    slots, clock = lanes[id(b)]
                else:
                    slots, clock = asyncio.Semaphore(max(1, b.max_concurrency())), self.clock if b is backend else BusyClock()
                    if lanes is not None:
                        lanes[id(b)] = (slots, clock)
                served[id(b)] = _Served(b, p, slots, clock)
            self._roles[role] = served[id(b)]
        self._failure: BaseException | None = None  # the first request that failed for good
        self._n = int(spec.strategy.describe().get("n", 1))
        self.budget = budget or Budget()
        #: (max USD, max tokens) for each problem; None = unlimited
        self.problem_budget = problem_budget
        self._problem_budgets: dict[str, Budget] = {}
        self._step_locks: dict[str, dict[str, asyncio.Lock]] = {}  # per problem while it is being solved
        #: problems whose own budget ran out: answered from what was affordable, or left unsolved
        self.problems_at_budget: set[str] = set()
        self.problems_over_budget: list[str] = []  # the unsolved ones
        self._pending_writes: list[tuple[RequestRecord, list[SampleRecord]]] = []
        #: passed to one-sample requests as `GenerationRequest.on_text`: stream their text (serve)
        self.on_text: Callable[[str], None] | None = None
        self._flushed: asyncio.Future[None] | None = None
        # the write-ahead ledger: requests about to go out, journaled (grouped per loop turn) first
        self._in_flight = 0  # requests holding a reservation of the run's budget
        self._settled: asyncio.Event | None = None  # set whenever one of them settles
        #: answers that arrived but could not be written (the disk is full): kept, then spilled
        self.unwritten: list[tuple[RequestRecord, list[SampleRecord]]] = []
        #: (prompt bound, completion bound) violations a server committed: see `_check_bounds`
        self.violations: list[str] = []
        self.recovered: tuple[int, float, int] = (0, 0.0, 0)  # journal entries a killed process left

    def config(self) -> dict[str, Any]:
        config = {**self.spec.identity(self.backend), "backend_full": self.backend.describe(), "price": self.price.describe()}
        if self.ledger_id != self.run_id:
            config["pool"], config["step_prefix"] = self.ledger_id, self.step_prefix
        if self.spec.description is not None:
            config["description"] = self.spec.description
        others = {r: {"backend": s.backend.describe(), "price": s.price.describe()} for r, s in self._roles.items() if r != "main"}
        if others:
            config["roles"] = others
        return config

    @property
    def backends(self) -> list[Backend]:
        """Every distinct backend of the run, the main one first."""
        return list({id(s.backend): s.backend for s in self._roles.values()}.values())

    async def run(self) -> str:
        """Record the run, solve every problem not already solved; return the run id."""
        store = self._run_store()
        pending = self.prepare()
        try:
            await self.solve(pending)
        except BaseException as exc:
            if isinstance(exc, BudgetViolation):
                self._quietly(store.add_event, self.run_id, "budget-violation", str(exc))
            self._quietly(store.set_status, self.run_id, "interrupted")
            raise
        else:
            store.set_status(self.run_id, "budget" if self.budget.exhausted else "done")
            return self.run_id
        finally:
            self._quietly(store.release_writer, self.run_id)

    async def solve(self, pending: list[Problem]) -> None:
        """Solve some problems, using the store only as a `SampleLedger` (a Ray worker calls this on
        its shard after the driver prepared the run). Raises the first request that failed for good,
        after the requests already in flight are settled and stored."""
        for backend in self.backends:
            start = getattr(backend, "start", None)
            if start is not None and pending:
                # a local model server may take minutes to load: say so rather than sit silent
                self.progress.status = f"starting {backend.model} (loading the model server)"
                self.progress.changed()
                try:
                    await start()
                finally:
                    self.progress.status = ""
                    self.progress.changed()
        if pending:
            await self.resolve_runtime_prices()
        queue: asyncio.Queue[Problem] = asyncio.Queue()
        for problem in pending:
            queue.put_nowait(problem)
        workers = max(1, 2 * self.backend.max_concurrency())
        # return_exceptions: when one request fails, the others already in flight are paid for, so
        # they are awaited and stored (no new request starts) before the failure is raised.
        outcomes = await asyncio.gather(
            *(self._worker(queue) for _ in range(min(workers, len(pending)) or 1)), return_exceptions=True
        )
        errors = [o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, _Stopped)]
        if errors or self._failure is not None:
            failure = self._failure or errors[0]
            if isinstance(failure, BudgetViolation):  # everything in flight has settled: the whole overspend
                failure = BudgetViolation(f"{failure}; {self._overspend()}")
            if self.unwritten:
                failure = StoreFull(f"{failure}; {self._keep_unwritten()}")
            raise failure

    def _run_store(self) -> RunStore:
        if not isinstance(self.store, RunStore):
            raise TypeError(f"{type(self.store).__name__} is a SampleLedger only: it can solve (Runner.solve), not record a run")
        return self.store

    async def resolve_runtime_prices(self) -> None:
        """Give each runtime-priced backend its profile (measured once per model and machine, then
        read from disk) and record it with the run, so every request of the run is priced by it."""
        changed = False
        for served in {id(s): s for s in self._roles.values()}.values():
            if served.price.clock != "runtime" or served.price.runtime is not None:
                continue
            profile = getattr(served.backend, "runtime_profile", None)
            if profile is None:
                continue  # no profile to be had: priced by wall time, as any hour-priced endpoint
            self.progress.status = f"profiling {served.backend.model} once on this machine (idealized runtime)"
            self.progress.changed()
            try:
                served.price = served.price.model_copy(update={"runtime": await profile()})
            finally:
                self.progress.status = ""
                self.progress.changed()
            if served.backend is self.backend:
                self.price = served.price
            changed = True
        if changed and isinstance(self.store, RunStore):  # a Ray worker's ledger: the driver records the run
            self.store.update_run(self.run_id, self.spec.default_label(self.backend), self.config())

    def _quietly(self, call: Callable[..., Any], *args: Any) -> None:
        """A bookkeeping write that must not hide the failure being raised (the disk may be full)."""
        try:
            call(*args)
        except (sqlite3.Error, OSError):
            pass

    def _overspend(self) -> str:
        """What the run spent against its budget, after a server broke a request's bound."""
        b = self.budget
        parts = []
        if b.max_tokens is not None:
            parts.append(f"run spent {b.spent_tokens} of {b.max_tokens} budget tokens ({max(0, b.spent_tokens - b.max_tokens)} over)")
        if b.max_usd is not None:
            parts.append(f"${b.spent_usd:.6g} of ${b.max_usd:.6g} ({max(0.0, b.spent_usd - b.max_usd):.6g} over)")
        return ", ".join(parts) or f"run spent {b.spent_tokens} tokens, ${b.spent_usd:.6g}"

    def _keep_unwritten(self) -> str:
        """Answers that arrived while the disk was full: one more try to store them, else a spill file
        that the next `--resume` imports (so they are never requested again)."""
        from infereco.spill import spill

        try:
            self.store.record_requests(self.ledger_id, self.unwritten)
        except (sqlite3.Error, OSError):
            pass
        else:
            kept, self.unwritten = len(self.unwritten), []
            return f"the {kept} answers received meanwhile were stored after all"
        where = spill(Path(getattr(self.store, "path", "infereco.db")), self.ledger_id, self.unwritten)
        count = len(self.unwritten)
        usd = sum(r.cost_usd for r, _ in self.unwritten)
        if where is None:
            return f"{count} answers received (${usd:.6g}) could not be kept anywhere and will be requested again"
        return f"{count} answers received (${usd:.6g}) kept in {where}; --resume stores them without asking again"

    def prepare(self) -> list[Problem]:
        """Record the run and its problems, count what earlier sessions paid; return the unsolved problems.

        Shared by `run` and by executors that solve the problems elsewhere (`infereco.ray_executor`)
        and hand the records back to be written here.
        """
        task, store = self.spec.task, self._run_store()
        label = self.spec.default_label(self.backend)
        store.acquire_writer(self.run_id)  # one writer per run: a second process on it refuses here, before anything
        if self.spec.pools_samples:
            earlier = store.run_config(self.run_id)
            # a run stored before pools keeps its samples where they are (under the run itself)
            if earlier is None or "pool" in earlier:
                self.ledger_id, self.step_prefix = self.spec.pool_id(self.backend), self.spec.step_prefix()
                pool = {k: v for k, v in self.spec.identity(self.backend).items() if k != "strategy"}
                store.ensure_pool(self.ledger_id, f"pool: {self.backend.model}", {**pool, "kind": "pool"})
        config = self.config()
        existed = store.ensure_run(self.run_id, label, config)
        if existed:
            store.update_run(self.run_id, label, config)  # the latest N and label
        store.add_problems(self.run_id, task.problems)
        if existed:  # a budget covers the whole run, including what earlier sessions already paid
            from infereco.spill import import_spilled

            # answers kept while the disk was full are stored (settling their journal entries);
            # the entries left are requests a killed process had in flight: charged at their worst case
            import_spilled(store, self.ledger_id)
            self.recovered = store.recover_inflight(self.ledger_id)
            paid = store.totals(self.run_id)
            self.budget.spent_usd = paid["cost_usd"] + paid.get("unconfirmed_usd", 0.0)
            self.budget.spent_tokens = paid["prompt_tokens"] + paid["completion_tokens"] + paid.get("unconfirmed_tokens", 0)
        n = self._n
        done = store.done_problems(self.run_id, n) if existed else set()
        pending = [p for p in task.problems if p.id not in done]
        self.progress.samples_total = len(task.problems) * n
        self.progress.samples_done = len(done) * n
        self.progress.samples_reused = len(done) * n  # solved problems: everything comes from the store
        self.progress.changed()
        return pending

    async def _worker(self, queue: asyncio.Queue[Problem]) -> None:
        while self._failure is None and not self.budget.exhausted:
            try:
                problem = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                result = await self.spec.strategy.solve(_ProblemContext(self, problem))
            except BudgetSpent:
                self.problems_over_budget.append(problem.id)  # left unsolved; the others go on
                continue
            except Exception as exc:
                if not isinstance(exc, _Stopped):
                    self._failure = self._failure or exc  # other workers take no new problem
                raise
            finally:
                self._step_locks.pop(problem.id, None)
            # n=0 marks an answer cut short by the problem's budget: a later run re-solves it (its
            # stored samples are free) rather than taking it as done at this N
            n = 0 if problem.id in self.problems_at_budget else self._n
            try:
                self.store.record_result(
                    self.run_id, ProblemResult(problem.id, result.answer, result.correct, json.dumps(result.info, default=str), n)
                )
            except sqlite3.Error as exc:  # the disk filled up: stop cleanly (the samples are stored)
                self._failure = self._failure or store_error(getattr(self.store, "path", None), exc)
                raise _Stopped() from None

    async def sample(
        self,
        problem: Problem,
        step: str,
        n: int,
        messages: list[dict[str, str]],
        params: SamplingParams,
        role: str = "main",
        partial: bool = False,
        affinity: str = "",
    ) -> list[SampleRecord]:
        served = self._roles.get(role)
        if affinity:  # one family per run, problem and name: other problems' steps share only the system prompt
            affinity = f"{self.ledger_id}|{problem.id}|{affinity}"
        if served is None:
            raise ValueError(f"step {step!r} asks for backend role {role!r}, which this run was not given")
        if self.step_prefix is not None and step != POOL_STEP and not step.startswith(GRADE_STEPS):
            step = f"{self.step_prefix}/{step}"  # a sample's grading belongs to the pool, like the sample
        # one caller at a time per step: a second asking for the same step (two equal candidates
        # judged at once) waits and then finds the first one's samples stored, instead of paying again
        lock = self._step_locks.setdefault(problem.id, {}).setdefault(step, asyncio.Lock())
        async with lock:
            stored = {s.index: s for s in self.store.samples(self.ledger_id, problem.id, step)}
            missing = [i for i in range(n) if i not in stored]
            reused = n - len(missing)
            if reused:
                self.progress.samples_reused += reused
            over_budget = None
            while missing:
                chunks = _chunks(missing, served.backend.max_samples_per_request())
                fresh = await asyncio.gather(
                    *(self._send(problem, step, chunk, messages, params, served, role, affinity) for chunk in chunks),
                    return_exceptions=True,
                )  # every chunk lands (or fails) before this problem gives up, so none is left running unawaited
                progressed = False
                for outcome in fresh:
                    if isinstance(outcome, _ProblemOverBudget) and partial:
                        over_budget = outcome
                    elif isinstance(outcome, BaseException):
                        raise outcome
                    else:
                        for record in outcome:
                            stored[record.index] = record
                            progressed = True
                # a server that answered with fewer choices than asked for: what arrived is stored,
                # and only the rest is asked for (under new request keys)
                missing = [i for i in range(n) if i not in stored]
                if over_budget is not None or not progressed:
                    break
            got = [stored[i] for i in range(n) if i in stored]
            if params.logprobs or params.top_logprobs > 0:
                self._require_logprobs(got, step, role, served.backend)
            if len(got) < n:
                affordable = got[: next((k for k, s in enumerate(got) if s.index != k), len(got))]  # a prefix 0..m-1
                if over_budget is not None and affordable:
                    return affordable
                raise over_budget or _ProblemOverBudget()
            return got

    def _require_logprobs(self, records: list[SampleRecord], step: str, role: str, backend: Backend) -> None:
        """Stop the run at the first answer that lacks the logprobs its step asked for.

        A judge's P(yes) and a speculative rating are read from logprobs; a server that does not
        return them (only its answer tells) would make every such score a constant, paid for.
        """
        if all(r.logprobs_json is not None for r in records):
            return
        exc = _no_logprobs(role, step, backend)
        self._failure = self._failure or exc
        raise exc

    async def _send(
        self,
        problem: Problem,
        step: str,
        indices: list[int],
        messages: list[dict[str, str]],
        params: SamplingParams,
        served: _Served,
        role: str = "main",
        affinity: str = "",
    ) -> list[SampleRecord]:
        start = indices[0]
        key = f"{problem.id}|{step}|{start}+{len(indices)}"
        seed = request_seed(self.spec.seed, problem.id, step, start)
        ledger = _RetryLedger()
        request = GenerationRequest(
            messages=tuple(messages),
            n=len(indices),
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=seed,
            stop=params.stop,
            logprobs=params.logprobs or params.top_logprobs > 0,
            top_logprobs=params.top_logprobs,
            key=f"{self.run_id}/{key}",
            retry_gate=ledger.gate,
            on_text=self.on_text,
            affinity=affinity,
        )
        backend, price = served.backend, served.price
        async with served.slots:
            if self._failure is not None or self.budget.exhausted:
                raise _Stopped()
            worst = self._worst_case(messages, len(indices), params.max_tokens, served)
            own_budget = self._problem_budget(problem.id)
            own = own_budget.reserve(*worst)
            if own is None:
                self.problems_at_budget.add(problem.id)
                raise _ProblemOverBudget()  # this problem's budget is spent; other problems go on
            reservation = await self._reserve(worst)
            if reservation is None:
                own_budget.release(own)
                raise _Stopped()  # the budget cannot cover this request's worst case: send nothing more
            self._in_flight += 1
            try:
                await self._journal((key, problem.id, step, *worst))  # write-ahead: before it is sent
            except BaseException:
                self.budget.release(reservation)
                own_budget.release(own)
                self._settle()
                raise
            # a retry after a try that may have been billed costs up to the tokens of another try
            ledger.arm(self.budget, own_budget, self._worst_case(messages, len(indices), params.max_tokens, served, tokens_only=True))
            token = served.clock.start()
            sent_at = time.time()
            try:
                completions = await backend.generate(request)
            except Exception as exc:
                # a failed request may still have used the machine; its tokens were not billed, but
                # its lost tries may have been (they stay charged at their worst case)
                machine = price.cost(0, 0, 0, served.clock.stop(token))
                # the last try, which no retry gate saw, may have been billed too (within this
                # request's own reservation, which covers one try)
                lost_usd, lost_tokens = ledger.settle(last_try_lost=bool(getattr(exc, "maybe_billed", False)))
                self.budget.commit(reservation, machine + lost_usd, lost_tokens)
                own_budget.commit(own, machine + lost_usd, lost_tokens)
                self._settle()
                # its journal entry becomes the charge of its lost tries (kept in the store, so a
                # resume counts them too)
                self._quietly(getattr(self.store, "settle_lost", _nothing), self.ledger_id, key, problem.id, machine + lost_usd, lost_tokens,
                              " ".join(str(exc).split())[:300])  # fmt: skip
                if isinstance(exc, RetryRefused):
                    if ledger.refused_by is own_budget:
                        self.problems_at_budget.add(problem.id)
                        raise _ProblemOverBudget() from None
                    raise _Stopped() from None
                self._failure = self._failure or exc
                raise
            busy_s = served.clock.stop(token)
            if request.logprobs and any(c.logprobs is None for c in completions):
                # stored below (it was paid for); no other request starts: `sample` raises this
                self._failure = self._failure or _no_logprobs(served_role(self._roles, served), step, backend)
        # record: grade (a slow checker off the event loop, after the request left its slot), price, store
        completions = completions[: len(indices)]  # fewer than asked for: the rest is asked for again
        total_completion = sum(c.completion_tokens for c in completions)
        # priced as a whole request (tiers apply to its input tokens), then shared over its samples
        usage = TokenUsage(
            prompt=sum(c.prompt_tokens for c in completions),
            cached=sum(c.cached_prompt_tokens for c in completions),
            cache_write=sum(c.cache_write_tokens for c in completions),
            completion=total_completion,
            reasoning=sum(c.reasoning_tokens for c in completions),
        )
        charge = price.charge(
            usage, busy_s=busy_s, batch=len(indices), when=datetime.fromtimestamp(sent_at, tz=timezone.utc)
        )
        costs = charge.split([c.completion_tokens for c in completions], [c.prompt_tokens for c in completions])
        verdicts = await self._grade(problem, [c.text for c in completions], role)
        records: list[SampleRecord] = []
        for index, completion, cost, (answer, correct) in zip(indices, completions, costs, verdicts):
            records.append(
                SampleRecord(
                    problem_id=problem.id,
                    step=step,
                    index=index,
                    request_key=key,
                    text=completion.text,
                    finish_reason=completion.finish_reason,
                    answer=answer,
                    correct=correct,
                    prompt_tokens=completion.prompt_tokens,
                    cached_prompt_tokens=completion.cached_prompt_tokens,
                    completion_tokens=completion.completion_tokens,
                    reasoning_tokens=completion.reasoning_tokens,
                    latency_s=completion.latency_s,
                    cost_usd=cost,
                    seed=seed,
                    logprobs_json=json.dumps(completion.logprobs) if completion.logprobs is not None else None,
                )
            )
        request_record = RequestRecord(
            key=key,
            problem_id=problem.id,
            step=step,
            start_index=start,
            n=len(records),
            seed=seed,
            latency_s=max((c.latency_s for c in completions), default=0.0),
            busy_s=busy_s,
            prompt_tokens=usage.prompt,
            cached_prompt_tokens=usage.cached,
            completion_tokens=total_completion,
            cost_usd=charge.usd,
            attempts=ledger.attempts,
            unconfirmed_usd=ledger.lost_usd,
            unconfirmed_tokens=ledger.lost_tokens,
            cache_write_tokens=usage.cache_write,
            reasoning_tokens=usage.reasoning,
            compute_s=charge.compute_s,
            role=role,
            price_source=price.source,
            price_version=price.data_version(),
            sent_at=sent_at,
        )
        lost_usd, lost_tokens = ledger.settle()
        used_tokens = request_record.prompt_tokens + request_record.completion_tokens + lost_tokens
        # paid whether or not the store can take it: committed to the budgets first
        self.budget.commit(reservation, request_record.cost_usd + lost_usd, used_tokens)
        own_budget.commit(own, request_record.cost_usd + lost_usd, used_tokens)
        self._settle()
        self._check_bounds(request_record, messages, len(indices), params.max_tokens, served, own_budget)
        await self._write(request_record, records)
        p = self.progress
        p.requests_sent += 1
        p.samples_done += len(records)
        p.completion_tokens += total_completion
        p.cost_usd += request_record.cost_usd
        p.changed()
        return records


    async def _grade(self, problem: Problem, texts: list[str], role: str) -> list[tuple[str | None, bool]]:
        """(answer, correct) per completion. A checker with an async `grade` (code run in the
        sandbox in a worker thread, a judge model asked under the "grader" role) grades the model
        under test's samples; other roles' texts (a judge's verdict, a drafter's step) get no answer."""
        checker = self.spec.task.checker
        grade = getattr(checker, "grade", None)
        if grade is None:  # inline, or in the process pool for a checker that says it is slow
            return await grade_async(checker, texts, problem.answer)
        if role != "main":
            return [(None, False)] * len(texts)
        ctx = _ProblemContext(self, problem)
        return list(await asyncio.gather(*(grade(text, problem, ctx) for text in texts)))

    async def _write(self, request: RequestRecord, samples: list[SampleRecord]) -> None:
        """Store a request with its samples: group commit of everything that arrives in one loop turn.

        The first response of a turn schedules one flush for the next turn; every response of this
        turn joins it and waits. One transaction holds them all (each request whole), which is what
        lets the runner keep up with thousands of responses a second (docs/benchmarks.md).
        """
        self._pending_writes.append((request, samples))
        if self._flushed is None:
            loop = asyncio.get_running_loop()
            self._flushed = loop.create_future()
            loop.call_soon(self._flush)
        await asyncio.shield(self._flushed)  # a cancelled waiter must not cancel the others' flush

    def _flush(self) -> None:
        batch, done = self._pending_writes, self._flushed
        self._pending_writes, self._flushed = [], None
        assert done is not None
        try:
            self.store.record_requests(self.ledger_id, batch)
        except sqlite3.Error as exc:
            # the disk is full (or the file failed): the answers stay in memory, nothing new is sent,
            # and the run stops cleanly (see `_keep_unwritten`)
            self.unwritten.extend(batch)
            self._failure = self._failure or store_error(getattr(self.store, "path", None), exc)
            done.set_exception(_Stopped())
            done.exception()  # retrieved: a turn whose waiters were all cancelled logs nothing
        except Exception as exc:  # every waiter of this turn fails with it: none of them is stored
            done.set_exception(exc)
        else:
            done.set_result(None)

    async def _journal(self, entry: tuple[str, str, str, float, int]) -> None:
        """Record a request and its reservation before it is sent.

        Grouped per loop turn like `_write`, and across every Runner writing to the same store in
        this loop (`infereco serve` runs one per HTTP request), so the ledger costs one commit a turn."""
        journal = getattr(self.store, "journal", None)
        if journal is None:  # a store without a journal of requests in flight (a Ray worker's shard)
            return
        group = self.store.__dict__.setdefault("_journal_group", _JournalGroup())
        loop = asyncio.get_running_loop()
        if group.flushed is not None and group.flushed.get_loop() is not loop:  # left by an earlier event loop
            group.pending, group.flushed = [], None
        group.pending.append(((self.ledger_id, *entry), self))
        if group.flushed is None:
            group.flushed = loop.create_future()
            loop.call_soon(_flush_journal, self.store, group)
        await asyncio.shield(group.flushed)

    async def _reserve(self, worst: tuple[float, int]) -> Reservation | None:
        """Reserve a request's worst case in the run's budget. When it does not fit while other
        requests are in flight, wait for them to settle (they usually cost far less than their
        reservation) and try again; the budget is spent only when it does not fit with none in flight."""
        while True:
            if self._failure is not None:
                return None
            if self.budget.fits(*worst) or self._in_flight == 0:
                return self.budget.reserve(*worst)
            if self._settled is None:
                self._settled = asyncio.Event()
            await self._settled.wait()

    def _settle(self) -> None:
        """A request holding a reservation settled: wake the requests waiting for room."""
        self._in_flight -= 1
        if self._settled is not None:
            self._settled.set()
            self._settled = None

    def _check_bounds(
        self, record: RequestRecord, messages: list[dict[str, str]], n: int, max_tokens: int, served: _Served,
        own_budget: Budget,
    ) -> None:
        """Stop the run at once when a server reports more tokens than the request allowed.

        Budgets reserve `n × max_tokens` completion tokens and the byte-derived prompt bound; a server
        that ignores `max_tokens` (or reports an absurd usage) breaks that silently. Where such counts
        matter (a token budget, or token prices under a USD budget) the answer is stored (it was paid)
        and the run stops with a line naming the violation; requests in flight settle first, so the
        overspend is at most what was in flight.
        """
        bounds = {"prompt": prompt_token_bound(messages), "completion": n * max_tokens}
        got = {"prompt": record.prompt_tokens, "completion": record.completion_tokens}
        over = {k: got[k] - bounds[k] for k in bounds if got[k] > bounds[k]}
        if not over:
            return
        priced = served.price.input_per_mtok > 0 or served.price.output_per_mtok > 0
        limited = any(
            b.max_tokens is not None or (b.max_usd is not None and priced) for b in (self.budget, own_budget)
        )
        where = served.backend.describe().get("base_url") or served.backend.kind
        parts = [f"{got[k]} {k} tokens for a request bounded by {bounds[k]}" for k in over]
        message = (
            f"server {where} broke the budget: it reported {' and '.join(parts)} "
            f"(request {record.key}; {sum(over.values())} tokens over its bound)"
        )
        self.violations.append(message)
        if limited:
            self._failure = self._failure or BudgetViolation(message)
    def _problem_budget(self, problem_id: str) -> Budget:
        """The per-problem budget, counting what this problem already cost in earlier sessions."""
        if problem_id not in self._problem_budgets:
            max_usd, max_tokens = self.problem_budget
            budget = Budget(max_usd=max_usd, max_tokens=max_tokens)
            if budget.limited:
                budget.spent_usd, budget.spent_tokens = self.store.problem_spend(self.run_id, problem_id)
            self._problem_budgets[problem_id] = budget
        return self._problem_budgets[problem_id]

    def _worst_case(
        self, messages: list[dict[str, str]], n: int, max_tokens: int, served: _Served, tokens_only: bool = False
    ) -> tuple[float, int]:
        """The most a request can cost (USD, tokens): see `infereco.budget`.

        `tokens_only` leaves machine time out: the time of every retry is already in the first
        reservation (the backend's `worst_case_seconds` counts all tries).
        """
        prompt = prompt_token_bound(messages)
        completion = n * max_tokens
        seconds = 0.0
        if served.price.wall_priced and not tokens_only:
            worst = getattr(served.backend, "worst_case_seconds", None)
            seconds = float(worst()) if callable(worst) else float("inf")
        return served.price.worst_charge(prompt, completion, batch=n, busy_s=seconds), prompt + completion


class _RetryLedger:
    """Counts one request's tries and keeps budgets hard across the backend's own retries.

    A failed try that may have been billed (the server may have generated an answer that was then
    lost) is charged at its worst case in tokens, and its retry must first reserve that much again,
    in the run's and the problem's budget; if either cannot, the retry is refused.
    """

    def __init__(self) -> None:
        self.attempts = 1
        self.lost_usd = 0.0
        self.lost_tokens = 0
        self.refused_by: Budget | None = None
        self._budgets: tuple[Budget, ...] = ()
        self._worst: tuple[float, int] = (0.0, 0)
        self._held: list[tuple[Budget, Reservation]] = []

    def arm(self, run_budget: Budget, problem_budget: Budget, worst_tokens: tuple[float, int]) -> None:
        self._budgets = (run_budget, problem_budget)
        self._worst = worst_tokens

    def gate(self, maybe_billed: bool) -> bool:
        """Called by the backend before each retry: may it go ahead?"""
        if maybe_billed:
            held: list[tuple[Budget, Reservation]] = []
            for budget in self._budgets:
                reservation = budget.reserve(*self._worst)
                if reservation is None:
                    for b, r in held:
                        b.release(r)
                    self.refused_by = budget
                    return False
                held.append((budget, reservation))
            self._held.extend(held)
            self.lost_usd += self._worst[0]
            self.lost_tokens += self._worst[1]
        self.attempts += 1
        return True

    def settle(self, last_try_lost: bool = False) -> tuple[float, int]:
        """Drop the retry reservations; the caller commits the lost tries' charge with the request.

        `last_try_lost`: the request failed for good after a try that may have been billed; it is
        charged at its worst case like the retried ones.
        """
        if last_try_lost:
            self.lost_usd += self._worst[0]
            self.lost_tokens += self._worst[1]
        for budget, reservation in self._held:
            budget.release(reservation)
        self._held = []
        return self.lost_usd, self.lost_tokens


class BudgetViolation(UserError):
    """A server reported more tokens than a request allowed, under a budget that counts them."""


def served_role(roles: dict[str, _Served], served: _Served) -> str:
    return next((r for r, s in roles.items() if s is served and r != "main"), "main")


def _no_logprobs(role: str, step: str, backend: Backend) -> BackendError:
    where = getattr(backend, "base_url", None) or getattr(backend, "kind", "")
    return BackendError(
        f"the {role} backend (model {backend.model!r} at {where}) answered step {step!r} without the logprobs "
        "it was asked for, so its scores would be a constant; use a server that returns logprobs "
        "(llama.cpp, vLLM, SGLang) for this role, or another --verifier"
    )


class _Stopped(Exception):
    """A request not sent because another one already failed for good, or the run's budget is spent."""


class _ProblemOverBudget(_Stopped, BudgetSpent):
    """A request not sent because its problem's own budget cannot cover it."""


class _JournalGroup:
    """The journal entries of one loop turn, from every Runner of one store."""

    def __init__(self) -> None:
        self.pending: list[tuple[tuple[str, str, str, str, float, int], Runner]] = []
        self.flushed: asyncio.Future[None] | None = None


def _flush_journal(store: Any, group: _JournalGroup) -> None:
    batch, done = group.pending, group.flushed
    group.pending, group.flushed = [], None
    assert done is not None
    try:
        store.journal([row for row, _ in batch])
    except sqlite3.Error as exc:  # nothing of this turn is sent
        failure = store_error(getattr(store, "path", None), exc)
        for _, runner in batch:
            runner._failure = runner._failure or failure
        done.set_exception(_Stopped())
        done.exception()
    else:
        done.set_result(None)


def _nothing(*args: Any) -> None:
    """A bookkeeping hook a store without it (a Ray worker's shard) skips."""


def _chunks(indices: list[int], size: int) -> list[list[int]]:
    """Split sorted indices into runs of consecutive integers, each at most `size` long."""
    out: list[list[int]] = []
    for i in indices:
        if out and out[-1][-1] == i - 1 and len(out[-1]) < size:
            out[-1].append(i)
        else:
            out.append([i])
    return out


__all__ = ["RunSpec", "Runner", "Progress", "BusyClock", "stable_hash", "request_seed"]
