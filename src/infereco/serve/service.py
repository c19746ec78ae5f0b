"""One chat request = one problem of a stored run, solved by the chosen strategy and billed whole.

This is `infereco serve` without HTTP. Each request becomes a `Problem` (its messages, no reference
answer) in the run of its (model, strategy options, sampling parameters): the same run id an
`infereco run` with those options would have, so `report`, `runs` and `recommend` read production
traffic like any run. A request is solved by the ordinary `Runner` and strategy code, so every
upstream call (samples, judge, reward model, drafter) is reserved against the budgets before it
is sent, priced, and stored before the answer goes back; the answer's usage is the sum of those
stored requests, nothing estimated.

A Runner is made per request (its failure and budget state belong to that request), sharing with
the others each backend's concurrency limit and machine clock (`lanes`) and the server-wide budget.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from infereco.backends.base import Backend
from infereco.budget import Budget, Reservation, prompt_token_bound
from infereco.checkers import get_checker
from infereco.errors import BackendError, UserError
from infereco.prices import Price
from infereco.problem import Problem
from infereco.records import ProblemResult
from infereco.runconfig import STRATEGY_OPTIONS, RunConfig
from infereco.runner import Runner, RunSpec, _ProblemContext
from infereco.serve.protocol import ApiError, ChatBody, Usage
from infereco.store import Store
from infereco.strategies import SamplingParams
from infereco.strategies.base import BudgetSpent, StrategyResult
from infereco.tasks.base import Task

#: options that choose another backend (a judge, reward model or drafter, and where it lives): fixed
#: when the server starts, so that a request cannot point the server at another URL or model
ROLE_OPTIONS = frozenset({"judge_model", "judge_base_url", "judge_prompt", "reward_url", "reward_model", "reward_price",
                          "draft_model", "draft_base_url"})  # fmt: skip
#: what a request may override in its `infereco` field: the strategy, N and the strategy's options,
#: named as `infereco run`'s flags (`beam_width` for --beam-width)
OVERRIDABLE = frozenset({"strategy", "n"} | (set(STRATEGY_OPTIONS) - ROLE_OPTIONS))
#: one-sample strategies: their one sample is the answer, so it can be streamed as it is generated
_SINGLE = ("repeated", "sample", "sampling", "majority", "vote", "self-consistency", "pass@n", "oracle")


@dataclass(frozen=True)
class ServedTask(Task):
    """The task of served traffic: problems arrive over HTTP and carry their own chat messages."""

    def messages(self, problem: Problem) -> list[dict[str, str]]:
        return [dict(m) for m in problem.metadata["messages"]]


def served_task(checker: str) -> ServedTask:
    return ServedTask(name="serve", problems=(), checker=get_checker(checker), system_prompt="",
                      spec={"name": "serve", "checker": checker})  # fmt: skip


class _Batcher:
    """Group commit across concurrent requests: what they all produce in one event-loop turn
    (upstream requests with their samples, finished problems with their results) shares one
    transaction per run, instead of a commit each (docs/benchmarks.md: the server's requests/s)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: dict[str, tuple[list[Any], list[Problem], list[ProblemResult]]] = {}
        self._flushed: asyncio.Future[None] | None = None

    async def write(self, run_id: str, request: Any = None, problem: Problem | None = None,
                    result: ProblemResult | None = None) -> None:  # fmt: skip
        requests, problems, results = self._pending.setdefault(run_id, ([], [], []))
        if request is not None:
            requests.append(request)
        if problem is not None:
            problems.append(problem)
        if result is not None:
            results.append(result)
        if self._flushed is None:
            loop = asyncio.get_running_loop()
            self._flushed = loop.create_future()
            loop.call_soon(self._flush)
        await asyncio.shield(self._flushed)  # a cancelled waiter must not cancel the others' write

    def _flush(self) -> None:
        pending, done = self._pending, self._flushed
        self._pending, self._flushed = {}, None
        assert done is not None
        try:
            for run_id, (requests, problems, results) in pending.items():
                self.store.record_batch(run_id, requests, problems, results)
        except Exception as exc:  # every waiter of this turn fails with it
            done.set_exception(exc)
        else:
            done.set_result(None)


class _ServedRunner(Runner):
    """A Runner whose writes join the server-wide group commit, and which sums what it wrote: the
    usage of its one HTTP request (every call the request caused is written through here)."""

    batcher: _Batcher

    def tally_init(self) -> None:
        self.tally = {"requests": 0, "samples": 0, "prompt_tokens": 0, "cached_prompt_tokens": 0,
                      "completion_tokens": 0, "cost_usd": 0.0, "unconfirmed_usd": 0.0}  # fmt: skip

    async def _write(self, request: Any, samples: list[Any]) -> None:
        await self.batcher.write(self.run_id, request=(request, samples))
        t = self.tally  # counted once stored, as the store counts it
        t["requests"] += 1
        t["samples"] += len(samples)
        t["prompt_tokens"] += request.prompt_tokens
        t["cached_prompt_tokens"] += request.cached_prompt_tokens
        t["completion_tokens"] += request.completion_tokens
        t["cost_usd"] += request.cost_usd
        t["unconfirmed_usd"] += request.unconfirmed_usd


@dataclass
class _Share(Budget):
    """One request's view of the server-wide budget: what it reserves and spends is reserved and
    spent there too, so concurrent requests cannot overshoot it; a refusal stops this request only."""

    shared: Budget = field(default_factory=Budget)

    def fits(self, usd: float, tokens: int) -> bool:
        return self.shared.fits(usd, tokens)

    def reserve(self, usd: float, tokens: int) -> Reservation | None:
        if self.shared.reserve(usd, tokens) is None:
            self.exhausted, self.refused = True, (usd, tokens)
            return None
        return Reservation(usd, tokens)

    def commit(self, reservation: Reservation, usd: float, tokens: int) -> None:
        self.shared.commit(reservation, usd, tokens)
        self.spent_usd += usd
        self.spent_tokens += tokens

    def release(self, reservation: Reservation) -> None:
        self.shared.release(reservation)


@dataclass
class ServeOptions:
    """What the server was started with, besides its backend, price and store."""

    served_model: str
    #: the server's run description: strategy, N and its options, sampling defaults, the judge /
    #: reward model / drafter, budgets; a request's `infereco` field overrides the OVERRIDABLE part
    run: RunConfig
    checker: str = "numeric"

    @property
    def strategy(self) -> dict[str, Any]:
        return {"strategy": self.run.strategy, "n": self.run.n}


@dataclass
class Plan:
    """A validated request, ready to be answered."""

    spec: RunSpec
    roles: dict[str, tuple[Backend, Price]]
    messages: list[dict[str, str]]
    single: bool  # one sample is the answer: stream it from the upstream
    #: the worst case of its N samples (USD, tokens), as `Service.worst_case`
    worst: tuple[float, int] = (0.0, 0)

    @property
    def strategy(self) -> dict[str, Any]:
        return dict(self.spec.strategy.describe())


@dataclass
class Answer:
    text: str
    finish_reason: str
    usage: Usage
    info: dict[str, Any]


class Service:
    """Answers validated chat requests through the Runner; owns the store, the budget and the backends."""

    def __init__(self, backend: Backend, price: Price, store: Store, options: ServeOptions) -> None:
        self.backend, self.price, self.store, self.options = backend, price, store, options
        self.task = served_task(options.checker)
        self.budget = Budget(max_usd=options.run.budget_usd, max_tokens=options.run.budget_tokens)
        if self.budget.limited:  # a restart does not reset the server's budget: count what serving paid
            self.budget.spent_usd, self.budget.spent_tokens = served_spend(store)
        self.lanes: dict[int, Any] = {}
        self._built: dict[str, tuple[Any, dict[str, tuple[Backend, Price]]]] = {}
        self._runs: dict[str, str] = {}  # run id -> the label last written
        self._batcher = _Batcher(store)
        self.build({})  # the server's own options must be valid before it listens

    # -- planning ---------------------------------------------------------------------------
    def build(self, overrides: dict[str, Any]) -> tuple[Any, dict[str, tuple[Backend, Price]]]:
        """The strategy and its extra backends for the server's run description with `overrides`
        applied: validated and checked as `infereco run`'s flags are (`RunConfig.build`)."""
        key = json.dumps(overrides, sort_keys=True, default=str)
        if key not in self._built:
            from infereco.assemble import _verifier_spec, check_capabilities, make_roles
            from infereco.strategies.registry import make_strategy

            base = self.options.run
            cfg = RunConfig.build({**base.model_dump(), **overrides}) if overrides else base
            strategy = make_strategy(cfg.strategy, cfg.n, cfg.seed, _verifier_spec(cfg, None), **cfg.strategy_kwargs())
            roles = make_roles(
                strategy, self.backend, self.price, judge_model=cfg.judge_model, judge_base_url=cfg.judge_base_url,
                reward_url=cfg.reward_url, reward_price=cfg.reward_price, draft_base_url=cfg.draft_base_url,
                prices=cfg.prices, api_key_env=cfg.api_key_env, timeout_s=cfg.timeout, max_retries=cfg.max_retries,
            )  # fmt: skip
            check_capabilities(strategy, self.backend, roles)
            self._built[key] = (strategy, roles)
        return self._built[key]

    def plan(self, body: ChatBody) -> Plan:
        """Validate a request's model and overrides and fix its run; `ApiError` (400/404) if they are wrong."""
        if body.model != self.options.served_model:
            raise ApiError(404, f"model: {body.model!r} is not served here; this server serves {self.options.served_model!r}",
                           param="model", type_="model_not_found")  # fmt: skip
        overrides = dict(body.infereco or {})
        for name in overrides:
            if name not in OVERRIDABLE:
                why = ("is set when the server starts, not per request" if name in ROLE_OPTIONS else
                       f"is not an option a request can set (one of: {', '.join(sorted(OVERRIDABLE))})")  # fmt: skip
                raise ApiError(400, f"infereco.{name}: {why}", param=f"infereco.{name}")
        try:
            strategy, roles = self.build(overrides)
        except UserError as exc:
            raise _override_error(exc, overrides) from None
        run = self.options.run
        params = SamplingParams(
            max_tokens=body.max_completion_tokens or body.max_tokens or run.max_tokens,
            temperature=run.temperature if body.temperature is None else body.temperature,
            top_p=run.top_p if body.top_p is None else body.top_p,
            stop=body.stops(),
        )
        described = strategy.describe()
        single = described["name"] in _SINGLE and int(described.get("n", 1)) == 1 and not roles
        spec = RunSpec(task=self.task, strategy=strategy, params=params, seed=run.seed)
        plan = Plan(spec, roles, body.chat_messages(), single)
        plan.worst = self.worst_case(plan)
        return plan

    def worst_case(self, plan: Plan) -> tuple[float, int]:
        """What the request's N samples can cost at most, as the Runner reserves them (USD, tokens).

        Exact for repeated/majority/pass@n; for strategies that also call a verifier or search step
        by step it is the part known before anything is sent, and their later calls are held to the
        budgets one by one as they go (docs/serving.md)."""
        n = int(plan.strategy.get("n", 1))
        requests = math.ceil(n / max(1, self.backend.max_samples_per_request()))
        prompt = prompt_token_bound(plan.messages) * requests
        completion = n * plan.spec.params.max_tokens
        seconds = 0.0
        if self.price.wall_priced:
            worst = getattr(self.backend, "worst_case_seconds", None)
            seconds = requests * (float(worst()) if callable(worst) else float("inf"))
        # the smallest of its requests decodes the fewest sequences together: the dearest per token
        batch = max(1, n - (requests - 1) * max(1, self.backend.max_samples_per_request()))
        return self.price.worst_charge(prompt, completion, batch=batch, busy_s=seconds), prompt + completion

    def admit(self, plan: Plan, budget_usd: float | None) -> None:
        """Refuse (402, nothing sent) a request whose worst case does not fit its own or the server's budget."""
        usd, tokens = plan.worst
        if budget_usd is not None and usd > budget_usd:
            raise ApiError(402, f"X-Infereco-Budget-Usd: this request could cost up to ${usd:.6g} "
                           f"({plan.strategy['name']} N={plan.strategy.get('n', 1)}, max_tokens {plan.spec.params.max_tokens}); "
                           f"the header allows ${budget_usd:.6g}", param="X-Infereco-Budget-Usd",
                           extra={"worst_case_usd": usd})  # fmt: skip
        if not self.budget.fits(usd, tokens):
            raise ApiError(402, f"--budget-usd/--budget-tokens: the server's budget is spent or this request could "
                           f"exceed it ({self.budget.describe()}; this request up to ${usd:.6g} / {tokens} tokens)",
                           extra={"worst_case_usd": usd})  # fmt: skip

    # -- answering --------------------------------------------------------------------------
    async def answer(self, plan: Plan, budget_usd: float | None = None, on_text: Callable[[str], None] | None = None,
                     received: float | None = None) -> Answer:  # fmt: skip
        """Solve one request; `on_text` streams a one-sample strategy's text as it is generated.

        `received` (perf_counter) is when the request arrived: its latency and, when streamed, its
        time to first token count from there, waiting for a free slot included."""
        started = time.perf_counter() if received is None else received
        self.admit(plan, budget_usd)
        runner = _ServedRunner(plan.spec, self.backend, self.store, self.price, budget=_Share(shared=self.budget),
                               problem_budget=(budget_usd, None), roles=plan.roles, lanes=self.lanes)  # fmt: skip
        runner.batcher = self._batcher
        runner.tally_init()
        first: list[float] = []
        if plan.single and on_text is not None:
            def relay(piece: str) -> None:
                if not first:
                    first.append(time.perf_counter())
                on_text(piece)

            runner.on_text = relay
        run_id = self._register(runner, plan)
        last_user = next((m["content"] for m in reversed(plan.messages) if m["role"] == "user"), "")
        problem = Problem(id=_request_id(), prompt=last_user, answer="", metadata={"messages": plan.messages})
        ctx = _Recording(runner, problem)
        try:
            result = await plan.spec.strategy.solve(ctx)
        except Exception as exc:  # noqa: BLE001 - sorted into what the client is told
            await self._batcher.write(run_id, problem=problem)  # what it paid for stays with its problem
            raise self._failed(runner, problem, exc) from None
        finally:
            runner._step_locks.pop(problem.id, None)
        usage = runner.tally
        samples = ctx.samples
        text, finish = chosen_text(result, samples)
        elapsed = time.perf_counter() - started
        info = {
            "run_id": run_id,
            "request_id": problem.id,
            "strategy": plan.strategy["name"],
            "n": int(plan.strategy.get("n", 1)),
            "samples": len(samples) if samples else usage["samples"],
            "upstream_requests": usage["requests"],
            "cost_usd": usage["cost_usd"],
            "answer": result.answer,
            "answers": answer_table(result, samples),
            "latency_s": round(elapsed, 6),
        }
        if usage["unconfirmed_usd"]:
            info["unconfirmed_usd"] = usage["unconfirmed_usd"]
        if budget_usd is not None:
            info["budget_usd"] = budget_usd
        if "stopped" in result.info:
            info["stopped"] = result.info["stopped"]
        if on_text is not None:  # streamed: the first text reached the client then (the whole answer, unless one sample)
            info["ttft_s"] = round((first[0] if first else time.perf_counter()) - started, 6)
            info["streamed_from_upstream"] = bool(first)
        stored = {**result.info, **{k: info[k] for k in ("latency_s", "ttft_s") if k in info}}
        outcome = ProblemResult(problem.id, result.answer, None, json.dumps(stored, default=str), info["n"])
        await self._batcher.write(run_id, problem=problem, result=outcome)
        return Answer(text, finish, Usage(usage["prompt_tokens"], usage["completion_tokens"], usage["cost_usd"],
                                          usage["cached_prompt_tokens"]), info)  # fmt: skip

    def _register(self, runner: Runner, plan: Plan) -> str:
        """Record the run the first time this server sees it (and when its label changes with N)."""
        run_id = runner.run_id
        label = f"serve: {self.options.served_model} / {plan.strategy['name']} N={plan.strategy.get('n', 1)}"
        if self._runs.get(run_id) != label:
            if self.store.ensure_run(run_id, label, runner.config()):
                self.store.update_run(run_id, label, runner.config())
            # served runs are never "unfinished": `infereco run --resume` has nothing to finish in them
            self.store.set_status(run_id, "done")
            self._runs[run_id] = label
        return run_id

    def _failed(self, runner: _ServedRunner, problem: Problem, exc: BaseException) -> BaseException:
        spent = runner.tally["cost_usd"]
        failure = runner._failure  # the request that failed for good, if one did (others were then stopped)
        if isinstance(exc, BackendError) or isinstance(failure, BackendError):
            return ApiError(502, f"upstream failed: {failure or exc}", extra={"spent_usd": spent})
        if isinstance(exc, BudgetSpent) or runner.budget.exhausted or problem.id in runner.problems_at_budget:
            which = "X-Infereco-Budget-Usd" if problem.id in runner.problems_at_budget else "the server's --budget-usd"
            return ApiError(402, f"{which} ran out before the strategy could answer (${spent:.6g} spent on this request)",
                            param="X-Infereco-Budget-Usd" if which.startswith("X-") else None, extra={"spent_usd": spent})  # fmt: skip
        return exc

    async def aclose(self) -> None:
        seen: set[int] = set()
        for backend in [self.backend, *(b for _, roles in self._built.values() for b, _ in roles.values())]:
            if id(backend) not in seen:
                seen.add(id(backend))
                await backend.aclose()


class _Recording(_ProblemContext):
    """The strategy's context, keeping the samples it drew for the "sample" step (the candidates
    the answer is chosen from), so the answer needs no second read of the store."""

    def __init__(self, runner: Runner, problem: Problem) -> None:
        super().__init__(runner, problem)
        self.samples: list[Any] = []

    async def sample(self, step: str, n: int, *args: Any, **kwargs: Any) -> list[Any]:
        got = await super().sample(step, n, *args, **kwargs)
        if step == "sample" and len(got) >= len(self.samples):
            self.samples = list(got)
        return got


def served_spend(store: Store) -> tuple[float, int]:
    """USD and tokens every served run in the store has paid (lost tries included)."""
    usd, tokens = 0.0, 0
    for run in store.runs():
        if (run["config"].get("task") or {}).get("name") == "serve":
            t = store.totals(run["run_id"])
            usd += t["cost_usd"] + t["unconfirmed_usd"]
            tokens += t["prompt_tokens"] + t["completion_tokens"] + t["unconfirmed_tokens"]
    return usd, tokens


def chosen_text(result: StrategyResult, samples: list[Any]) -> tuple[str, str]:
    """The full text of the sample the strategy chose, and its finish reason.

    A search's answer is its solution; otherwise the best-scored (bon) or first sample whose
    extracted answer is the chosen one; with no answer at all, the first sample."""
    if isinstance(result.info.get("solution"), str):
        return result.info["solution"], "stop"
    if not samples:
        return (f"Answer: {result.answer}" if result.answer is not None else ""), "stop"
    pick = samples[0]
    if result.answer is not None:
        matching = [i for i, s in enumerate(samples) if s.answer == result.answer]
        scores = result.info.get("scores")
        if matching and isinstance(scores, list) and len(scores) == len(samples):
            pick = samples[max(matching, key=lambda i: (scores[i], -i))]
        elif matching:
            pick = samples[matching[0]]
    return pick.text, pick.finish_reason or "stop"


def answer_table(result: StrategyResult, samples: list[Any]) -> list[dict[str, Any]]:
    """The answers the samples gave, with their votes and, for verifier strategies, their scores."""
    votes = Counter(s.answer for s in samples if s.answer is not None)
    if not votes and isinstance(result.info.get("votes"), dict):
        votes = Counter({a: v for a, v in result.info["votes"].items()})
    score: dict[str, float] = {}
    if isinstance(result.info.get("weights"), dict):
        score = {a: float(v) for a, v in result.info["weights"].items()}
    elif isinstance(result.info.get("scores"), list) and len(result.info["scores"]) == len(samples):
        for s, v in zip(samples, result.info["scores"]):
            if s.answer is not None:
                score[s.answer] = max(score.get(s.answer, -math.inf), float(v))
    rows = []
    for answer, count in sorted(votes.items(), key=lambda kv: (-kv[1], kv[0])):
        row: dict[str, Any] = {"answer": answer, "votes": count}
        if answer in score:
            row["score"] = round(score[answer], 6)
        rows.append(row)
    return rows


def _override_error(exc: UserError, overrides: dict[str, Any]) -> ApiError:
    """A flag error caused by a request's overrides, renamed to the body field (`--n` -> `infereco.n`)."""
    message = re.sub(r"--([a-z][a-z-]*)", lambda m: "infereco." + m.group(1).replace("-", "_"), str(exc))
    named = re.search(r"infereco\.([a-z_]+)", message)
    param = f"infereco.{named.group(1)}" if named else ("infereco" if overrides else None)
    if not overrides:  # the server's own options failed here (e.g. a judge needed and not configured)
        return ApiError(400, str(exc))
    return ApiError(400, message, param=param)


def _request_id() -> str:
    """A time-ordered, unique problem id for one request: stored problems sort by arrival."""
    return f"req-{time.time_ns():x}-{os.urandom(3).hex()}"
