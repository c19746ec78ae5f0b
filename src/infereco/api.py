"""The library entry point: `infereco.run(...)` and `ie.Experiment(...)` mirror `infereco run` flag for flag.

Both build one `RunConfig` (the run description the CLI, TOML files and the store share), hand it
to `assemble` for the task, strategy, backends and prices, run it with the Runner into a Store, and
return a `RunResult` built from what the store holds (so a resumed run reports exactly what an
uninterrupted one would). Nothing here builds a part itself: this module is the public surface.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infereco.assemble import Assembly, assemble, make_backend, make_price, make_roles, spec_from_config
from infereco.backends.base import Backend
from infereco.budget import Budget
from infereco.errors import UserError
from infereco.pool import SamplePool
from infereco.prices import Price
from infereco.runconfig import STRATEGY_OPTIONS, RunConfig, options_from_strategy_kwargs
from infereco.runner import Progress, Runner, RunSpec
from infereco.store import Store
from infereco.strategies import registry as strategy_registry
from infereco.summary import RunSummary
from infereco.tasks import Task

@dataclass
class RunResult:
    """What a run produced: its id, store totals, the sample pool and the metrics summary."""

    run_id: str
    store_path: Path
    totals: dict[str, Any]
    pool: SamplePool
    #: what the run measured (typed; also readable as the dict it was: `summary["coverage"]`)
    summary: RunSummary
    reused_samples: int = 0
    sent_requests: int = 0
    #: "budget reached: $… of $…" when a budget stopped the run early, else None
    budget_note: str | None = None

    def to_pandas(self) -> Any:
        """One row per stored sample (needs pandas): the pool's numbers, and what a reader needs to
        look at it: the problem's prompt and reference answer, the sample's text, extracted answer
        and finish reason, and the strategy's chosen answer for the problem. A search strategy's
        pool has one row per problem (its answer), whose text is the chosen answer's."""
        from infereco.report import pool_to_pandas

        frame = pool_to_pandas(self.pool)
        with Store(self.store_path) as db:
            prompts = db.problem_prompts(self.run_id)
            chosen = db.results(self.run_id)
            texts = {(pid, index): (text, answer, finish) for pid, step, index, text, answer, _, _, _, _, finish
                     in db.viewer_rows(self.run_id) if step == "sample"}  # fmt: skip
        name = (self.pool.config.get("strategy") or {}).get("name")
        outcomes = name is not None and not _pools(name)
        keys = list(zip(frame["problem_id"], frame["sample_index"]))
        frame["prompt"] = [prompts.get(pid, ("", ""))[0] for pid, _ in keys]
        frame["reference"] = [prompts.get(pid, ("", ""))[1] for pid, _ in keys]
        if outcomes:
            frame["text"] = [chosen.get(pid, (None, None, {}))[0] for pid, _ in keys]
            frame["answer"] = frame["text"]
            frame["finish_reason"] = None
        else:
            frame["text"] = [texts.get((pid, int(i)), (None, None, None))[0] for pid, i in keys]
            frame["answer"] = [texts.get((pid, int(i)), (None, None, None))[1] for pid, i in keys]
            frame["finish_reason"] = [texts.get((pid, int(i)), (None, None, None))[2] for pid, i in keys]
        frame["chosen_answer"] = [chosen.get(pid, (None, None, {}))[0] for pid, _ in keys]
        return frame

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "store": str(self.store_path), "totals": self.totals, "summary": self.summary,
            "budget_note": self.budget_note,
        }  # fmt: skip


def _description(task: Any, options: dict[str, Any]) -> tuple[RunConfig, dict[str, Any]]:
    """A `RunConfig` from `run`'s keywords, and the objects a caller built themselves (a Backend, a Verifier).

    Keywords of the earlier API are accepted: `timeout_s` (`timeout`), `api` (`api_kind`) and
    `search={...}` (strategy options under the strategy's own names: `width`, `temperature`, ...).
    """
    options = dict(options)
    objects: dict[str, Any] = {}
    if isinstance(task, Task):  # a task built in Python: its problems are stored with the run, which resumes from them
        from infereco.tasks.stored import resumable

        objects["task"] = resumable(task)
        task = task.name
    elif not isinstance(task, str):
        raise UserError(f"task must be a name, a file path or a Task, got {type(task).__name__}")
    if options.get("backend") is not None and not isinstance(options["backend"], str):
        objects["backend"] = options.pop("backend")
    if options.get("verifier") is not None and not isinstance(options["verifier"], str):
        objects["verifier"] = options.pop("verifier")
    if "timeout_s" in options:
        options["timeout"] = options.pop("timeout_s")
    search = options.pop("search", None) or {}
    for key, value in options_from_strategy_kwargs(search).items():
        options.setdefault(key, value)
    values = {k: v for k, v in options.items() if v is not None}
    config = RunConfig.build({"task": task, **values}, check_task="task" not in objects)
    if "task" in objects:  # its problems are given: a loader's options (level, limit, data, ...) have nothing to load
        config.check_task_object()
    return config, objects


def run(task: str | Task = "arithmetic", *, progress: Progress | None = None, **options: Any) -> RunResult:
    """Run a strategy with N samples (or particles, or beams) per problem of `task`; store and summarise it.

    `options` are `infereco run`'s flags as keywords (`RunConfig`'s fields): level, limit, strategy,
    n, backend, model, base_url, verifier, judge_model, beam_width, pf_temperature, submit, ...,
    store, budget_usd, ... An option the chosen strategy does not take is a `UserError` naming it.
    `backend` may be a Backend object and `verifier` a Verifier object you built; `task` may be a
    `Task` (`infereco.tasks.Task`: problems, checker, prompts), whose run resumes like any other.
    Prompts and grading: `task_format`, `system_prompt` (text or "@FILE"), `prompt_template`
    (`{question}`-style fields), `sandbox_packages` (code), `grader_model` / `grader_base_url` /
    `grader_prompt` (free-form answers graded by a model under the role "grader").

    Example: `infereco.run("arithmetic", level=3, strategy="majority", n=32, limit=50, store="runs.db")`.
    """
    cfg, objects = _description(task, options)
    return execute_assembly(assemble(cfg, **objects), progress)


class Experiment:
    """A run description you compose, then run: `ie.Experiment("arithmetic", "majority", n=8).run("runs.db")`.

    In the spirit of vLLM's `LLM.generate(prompts, SamplingParams)` and inspect_ai's `Task(dataset,
    solver, scorer)`: the task, the strategy and the model are the three things an experiment is
    about; everything else is a keyword of `infereco run` (`RunConfig`). Validated when built, so a
    bad option fails before anything runs; `replace(**changes)` gives a variant (another N, strategy).
    """

    def __init__(self, task: str = "arithmetic", strategy: str = "majority", model: str | None = None, **options: Any) -> None:
        values = {"strategy": strategy, **({"model": model} if model is not None else {}), **options}
        self.config, self._objects = _description(task, values)

    @classmethod
    def from_config(cls, config: RunConfig) -> Experiment:
        exp = cls.__new__(cls)
        exp.config, exp._objects = config, {}
        return exp

    def replace(self, **changes: Any) -> Experiment:
        """The same experiment with some options changed (validated again)."""
        values = {**self.config.model_dump(include=self.config.model_fields_set), **changes}
        if "task" in changes:  # another task (a name, a file or a Task): described, and checked, anew
            rest = {k: v for k, v in values.items() if k != "task"}
            return Experiment(changes["task"], **rest, **{k: v for k, v in self._objects.items() if k != "task"})
        exp = Experiment.from_config(RunConfig.build(values, check_task="task" not in self._objects))
        exp._objects = dict(self._objects)
        if "task" in self._objects:
            exp.config.check_task_object()
        return exp

    def run(self, store: str | Path | None = None, *, progress: Progress | None = None) -> RunResult:
        """Run it into `store` (default: the description's) and return the stored result."""
        cfg = self.config if store is None else RunConfig.build(
            {**self.config.model_dump(include=self.config.model_fields_set), "store": store}, check_task="task" not in self._objects
        )  # fmt: skip
        return execute_assembly(assemble(cfg, **self._objects), progress)

    def __repr__(self) -> str:
        return f"Experiment({', '.join(f'{k}={v!r}' for k, v in sorted(self.config.given().items()))})"


def execute_assembly(built: Assembly, progress: Progress | None = None) -> RunResult:
    """Run an assembled run description."""
    return execute(
        built.spec, built.backend, built.store, built.price, progress, built.budget, built.problem_budget, built.roles,
        executor=built.executor, ray_address=built.ray_address,
    )  # fmt: skip


def execute(
    spec: RunSpec,
    backend: Backend,
    store: str | Path,
    price: Price,
    progress: Progress | None = None,
    budget: Budget | None = None,
    problem_budget: tuple[float | None, int | None] = (None, None),
    roles: dict[str, tuple[Backend, Price]] | None = None,
    *,
    executor: str = "local",
    ray_address: str | None = None,
) -> RunResult:
    """Run a fully built spec (used by `run` and by `--resume` from a stored config).

    `executor="ray"` shards the problems over a Ray cluster (`ray_address`, or a local one); the
    records come back to this process and are written to the same store with the same keys.
    """
    for value, flag in zip(problem_budget, ("--budget-usd-per-problem", "--budget-tokens-per-problem")):
        if value is not None and value < 0:
            raise UserError(f"{flag} must be >= 0, got {value}")
    if executor not in ("local", "ray"):
        raise UserError(f"--executor must be local or ray, got {executor!r}")
    if ray_address is not None and executor != "ray":
        raise UserError("--ray-address needs --executor ray")
    with Store(store) as db:
        if executor == "ray":
            from infereco.ray_executor import run_on_ray  # imports Ray; nothing else does

            runner = run_on_ray(spec, backend, db, price, progress, budget, problem_budget, roles, address=ray_address)
            run_id = runner.run_id
        else:
            runner = Runner(spec, backend, db, price, progress, budget, problem_budget, roles)

            async def go() -> str:
                terminated = _cancel_on_sigterm()
                try:
                    return await runner.run()
                except asyncio.CancelledError:
                    if terminated():  # SIGTERM: stopped as Ctrl-C stops it (the run is marked interrupted)
                        raise KeyboardInterrupt from None
                    raise
                finally:
                    _restore_sigterm()
                    for each in runner.backends:
                        await each.aclose()

            run_id = asyncio.run(go())
        result = result_from_store(db, run_id, reused=runner.progress.samples_reused, sent=runner.progress.requests_sent)
        notes = []
        if runner.budget.exhausted:
            notes.append(f"budget reached: {runner.budget.describe()}; raise it and rerun to continue")
        if runner.problems_at_budget:
            unsolved = len(runner.problems_over_budget)
            notes.append(
                f"{len(runner.problems_at_budget)} problem(s) stopped at their per-problem budget "
                f"({unsolved} unsolved, the others answered from what it paid for)"
            )
        result.budget_note = "; ".join(notes) or None
        return result


def _efficiency(db: Store, run_id: str, config: dict[str, Any]) -> dict[str, Any]:
    """Latency, FLOPs (for models whose size is known) and the idealized-runtime fit of a run."""
    from infereco.backends.models import EMBEDDED_MODELS
    from infereco.efficiency import efficiency_summary

    model = (config.get("backend") or {}).get("model")
    known = EMBEDDED_MODELS.get(model) if isinstance(model, str) else None
    arrays = db.request_arrays(run_id)
    return efficiency_summary(
        arrays["prompt_tokens"], arrays["completion_tokens"], arrays["latency_s"], arrays["busy_s"],
        params=known.params if known else None,
    )  # fmt: skip


def _pools(name: str) -> bool:
    try:
        return strategy_registry.pools_samples(name)
    except UserError:  # a strategy no longer registered: its samples are a pool unless it said otherwise
        return True


_previous_sigterm: Any = None


def _cancel_on_sigterm() -> Any:
    """Make SIGTERM cancel the running run (as Ctrl-C does); returns a function telling whether it came."""
    import signal

    global _previous_sigterm
    came: list[bool] = []
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def on_term() -> None:
        came.append(True)
        if task is not None:
            task.cancel()

    try:
        _previous_sigterm = signal.getsignal(signal.SIGTERM)
        loop.add_signal_handler(signal.SIGTERM, on_term)
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread, or no signals here
        _previous_sigterm = None
    return lambda: bool(came)


def _restore_sigterm() -> None:
    import signal

    global _previous_sigterm
    if _previous_sigterm is None:
        return
    try:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _previous_sigterm)
    except (ValueError, RuntimeError):
        pass
    _previous_sigterm = None


def result_from_store(
    db: Store, run_id: str, *, reused: int = 0, sent: int = 0, problems: Sequence[str] | None = None
) -> RunResult:
    """A stored run as a `RunResult`; with `problems`, summarised on those of its problems only."""
    from infereco.metrics import summarize

    config = db.run(run_id)["config"]
    name = (config.get("strategy") or {}).get("name")
    searched = name is not None and not _pools(name)
    pool = db.load_pool(run_id, outcomes=searched)  # a search's answers are its samples
    if problems is not None:
        pool = pool.restrict(problems)
    values = summarize(pool)
    values.update(label=pool.label, run_id=run_id, efficiency=_efficiency(db, run_id, pool.config))
    totals = db.totals(run_id)
    # what the run may have paid beyond its stored answers (lost tries, requests lost in flight), and
    # what went wrong on its way (a server that broke the budget, a full disk): the report shows them
    values["ledger"] = {k: totals[k] for k in ("unconfirmed_usd", "unconfirmed_tokens", "lost_requests", "inflight_requests")}
    values["events"] = db.events(run_id)
    if (config.get("strategy") or {}).get("name") == "adaptive":  # how many samples a vote took to settle
        used = [info["samples_used"] for info in db.result_infos(run_id) if "samples_used" in info]
        if used:
            values["mean_samples_used"] = sum(used) / len(used)
    from infereco.runs import run_info

    values["run_status"] = run_info(db, db.run(run_id)).to_dict()
    return RunResult(run_id, db.path, totals, pool, RunSummary.of(values), reused, sent)


def load_results(
    store: str | Path, run_ids: Sequence[str] | None = None, *, allow_mixed: bool = True
) -> list[RunResult]:
    """The stored runs (ids or unique prefixes; None: all, oldest first) as summarised results.

    Nothing is sampled: every number comes from the samples the store holds. A missing store or an
    unknown run is a `UserError`; an existing file is never created or changed. With
    `allow_mixed=False`, runs over different problem sets are summarised on the problems they all
    have (`summary["compared_on"]` says how many of each run's), and runs with no problem in
    common are a `UserError`: a curve over other problems is not a comparison.
    """
    path = Path(store)
    if not path.is_file():
        raise UserError(f"no such store: {path}")
    with Store(path) as db:
        ids = [db.run(r)["run_id"] for r in run_ids] if run_ids else [r["run_id"] for r in db.runs()]
        if not ids:
            raise UserError(f"{path} holds no runs yet")
        results = [result_from_store(db, r) for r in ids]
        if allow_mixed or len(results) < 2:
            return results
        keys = [_problem_keys(db, r) for r in results]
        sampled = [set(k.values()) for k in keys if k]  # an empty run has no problems to compare on
        if len(sampled) < 2 or all(k == sampled[0] for k in sampled):
            return results
        common = set.intersection(*sampled)
        if not common:
            sizes = ", ".join(f"{r.summary['label']}: {len(k)}" for r, k in zip(results, keys))
            raise UserError(
                f"the runs of {path} share no problem ({sizes} problems); compare runs of one task, "
                "choose them with --run, or pass --allow-mixed to overlay them anyway"
            )
        aligned = []
        for r, k in zip(results, keys):
            if not k:
                aligned.append(r)
                continue
            kept = [pid for pid, key in k.items() if key in common]
            again = result_from_store(db, r.run_id, problems=kept) if len(kept) < len(k) else r
            again.summary["compared_on"] = {"problems": len(kept), "of": len(k)}
            aligned.append(again)
        return aligned


def _problem_keys(db: Store, result: RunResult) -> dict[str, tuple[str, str]]:
    """problem id -> (id, prompt) of the problems a run's pool covers: equal keys, the same problem."""
    prompts = db.problem_prompts(result.run_id)
    return {pid: (pid, prompts.get(pid, ("", ""))[0]) for pid in result.pool.problem_ids}


@contextmanager
def _writing(flag: str, path: str | Path) -> Iterator[None]:
    """Turn a failed write (no permission, a file where a folder should be) into one-line UserError."""
    try:
        yield
    except OSError as exc:
        raise UserError(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from None


def write_report(
    results: Sequence[RunResult],
    out_dir: str | Path | None = None,
    html: str | Path | None = None,
    *,
    store: str | Path | None = None,
    recommendations: Sequence[Any] | None = None,
) -> list[Path]:
    """Write accuracy_cost.png, cost_of_pass.png, summary.json, recommendations.json and the tables
    as CSV and LaTeX (summary.csv/.tex, recommendations.csv/.tex) into out_dir, and/or one
    self-contained HTML page at `html` (with a viewer of every stored sample); returns the files
    written. `recommendations`: from `report_data`; None recommends for `DEFAULT_TARGETS`.

    The page embeds the PNGs written to out_dir when there is one (rendered once, identical in
    both places). A path that cannot be written is a `UserError` naming the flag and the path.
    """
    from infereco.html_report import render_plots, write_html
    from infereco.report import write_json
    from infereco.tables import write_tables
    from infereco.viewer import viewer_data

    if html is not None and Path(html).is_dir():
        raise UserError(f"--html {html}: is a folder; give a file name such as report.html")
    if recommendations is None:
        from infereco.recommendation import recommend as pick

        found = settings(results)
        recommendations = [rec for goal in DEFAULT_TARGETS for rec in pick(found, goal)]
    summaries = [r.summary for r in results]
    written: list[Path] = []
    plots: dict[str, Path] | None = None
    if out_dir is not None:
        with _writing("--out", out_dir):
            plots = render_plots(summaries, out_dir, recommendations=recommendations)
            written += [*plots.values(), write_json(summaries, Path(out_dir) / "summary.json")]
            written.append(write_json([r.to_dict() for r in recommendations], Path(out_dir) / "recommendations.json"))
            written += write_tables(summaries, recommendations, out_dir)
    if html is not None:
        with _writing("--html", html):
            samples = viewer_data(results)
            written.append(write_html(summaries, [r.pool for r in results], html, plots=plots, store=store,
                                      recommendations=recommendations, samples=samples))  # fmt: skip
    return written


#: the accuracies a report recommends a setting for when the caller names none
DEFAULT_TARGETS = (0.5, 0.6, 0.7, 0.8, 0.9)


def settings(results: Sequence[RunResult], *, n_boot: int = 1000, seed: int = 0) -> list[Any]:
    """Every deployable setting (model, strategy, k) the runs can estimate (see `recommendation.py`)."""
    from infereco.recommendation import settings_for_run

    out: list[Any] = []
    for r in results:
        config = r.pool.config or r.summary.get("config") or {}
        with Store(r.store_path) as db:
            spent = db.problem_costs(r.run_id)
        out += settings_for_run(r.pool, config, label=r.summary.get("label"), problem_usd=spent, n_boot=n_boot, seed=seed)
    return out


def recommend(
    store: str | Path,
    target_accuracy: float,
    *,
    confidence: float | None = None,
    run_ids: Sequence[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[Any]:
    """The cheapest setting reaching `target_accuracy` on each task of the store, from stored samples only.

    Mirrors `infereco recommend STORE --target-accuracy A [--confidence C]`: every (model,
    strategy, k <= N) the runs can estimate is a candidate; returns one `Recommendation` per task
    (choice, runner-up per model, or the closest when none reaches A). Example:
    `infereco.recommend("runs.db", 0.8)[0].choice`.
    """
    from infereco.recommendation import _check
    from infereco.recommendation import recommend as pick

    _check(target_accuracy, confidence)
    return pick(settings(load_results(store, run_ids), n_boot=n_boot, seed=seed), target_accuracy, confidence=confidence)


@dataclass
class ReportData:
    """What a report shows: the runs, their notes, and the recommendation for each target."""

    results: list[RunResult]
    recommendations: list[Any]
    settings: list[Any]

    @property
    def summaries(self) -> list[dict[str, Any]]:
        return [r.summary for r in self.results]


def report_data(
    store: str | Path,
    run_ids: Sequence[str] | None = None,
    *,
    targets: Sequence[float] | None = None,
    confidence: float | None = None,
    allow_mixed: bool = False,
) -> ReportData:
    """Load, align and summarise runs, and recommend a setting for each target accuracy."""
    from infereco.recommendation import _check
    from infereco.recommendation import recommend as pick

    goals = list(targets) if targets else list(DEFAULT_TARGETS)
    for goal in goals:
        _check(goal, confidence)
    results = load_results(store, run_ids, allow_mixed=allow_mixed)
    found = settings(results)
    recs = [rec for goal in goals for rec in pick(found, goal, confidence=confidence)]
    return ReportData(results, recs, found)


def report(
    store: str | Path,
    run_ids: Sequence[str] | None = None,
    out_dir: str | Path | None = None,
    html: str | Path | None = None,
    *,
    targets: Sequence[float] | None = None,
    confidence: float | None = None,
    allow_mixed: bool = False,
) -> list[dict[str, Any]]:
    """Summarise stored runs (no model is called) and optionally write plots, JSON and HTML.

    Mirrors `infereco report STORE [--run ID ...] [--out DIR] [--html FILE] [--target-accuracy A
    ...] [--allow-mixed]`. Returns one summary per run (what `--json` prints); `load_results` gives
    the `RunResult`s, e.g. for `to_pandas()`. Runs over different problem sets are compared on the
    problems they share unless `allow_mixed`.
    """
    data = report_data(store, run_ids, targets=targets, confidence=confidence, allow_mixed=allow_mixed)
    write_report(data.results, out_dir, html, store=store, recommendations=data.recommendations)
    return data.summaries


def resume(
    store: str | Path,
    run_id: str | None = None,
    progress: Progress | None = None,
    budget: Budget | None = None,
    problem_budget: tuple[float | None, int | None] = (None, None),
    *,
    timeout_s: float | None = None,
    max_retries: int | None = None,
    executor: str = "local",
    ray_address: str | None = None,
) -> RunResult:
    """Finish a stored run (the latest unfinished one if `run_id` is None) from its stored config.

    `timeout_s` / `max_retries` override the stored per-request timeout and the retry count.
    """
    with Store(store) as db:
        if run_id:
            stored = db.run(run_id)
        else:
            stored = db.latest_unfinished()
            if stored is None:
                raise UserError(f"--resume: no unfinished run in {store}; give the run's flags or --run ID")
        problems = db.problems(stored["run_id"])
    spec, backend, price, roles = spec_from_config(
        stored["config"], stored["label"], timeout_s=timeout_s, max_retries=max_retries, problems=problems
    )
    if spec.run_id(backend) != stored["run_id"]:
        raise UserError(_changed_data(stored["run_id"], spec.task, problems))
    return execute(
        spec, backend, store, price, progress, budget, problem_budget, roles, executor=executor, ray_address=ray_address
    )





def _changed_data(run_id: str, task: Task, stored: Sequence[Any]) -> str:
    """One line for a resume whose task no longer matches what the run recorded (an edited file)."""
    now = {p.id: (p.prompt, p.answer) for p in task.problems}
    before = {p.id: (p.prompt, p.answer) for p in stored}
    changed = sorted(k for k in now.keys() & before.keys() if now[k] != before[k])
    added, removed = sorted(now.keys() - before.keys()), sorted(before.keys() - now.keys())
    parts = [f"{label} {', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''}"
             for label, ids in (("changed:", changed), ("new:", added), ("gone:", removed)) if ids]  # fmt: skip
    what = "; ".join(parts) or "the prompt or the checker changed"
    return (f"--resume: the task's data changed since run {run_id} started ({what}); "
            "rerun with the run's flags to start a new run on the new data")  # fmt: skip


def sweep(
    task: str = "arithmetic",
    *,
    strategies: Sequence[str] = ("majority", "bon", "weighted", "bom", "beam", "pf"),
    budgets: Sequence[int] = (1, 2, 4, 8),
    store: str | Path = "infereco.db",
    out_dir: str | Path | None = None,
    on_point: Any = None,
    **run_options: Any,
) -> list[Any]:
    """Run every strategy at every budget N on one task and compare them by accuracy against full cost.

    Mirrors `infereco sweep`; `run_options` are `run`'s (level, limit, backend, verifier, ...).
    Returns a `SweepPoint` per (strategy, N); with `out_dir`, writes sweep.png and sweep.json.
    `on_point(point)` is called as each point is done (a progress display).
    """
    import json

    from infereco.sweep import SweepPoint, plot_sweep

    names = [s.strip().lower() for s in strategies if s.strip()]
    ns = sorted(set(budgets))
    if not names:
        raise UserError("--strategies is empty; give e.g. majority,bon,pf")
    if not ns or ns[0] < 1:
        raise UserError(f"--budgets must be integers >= 1, got {list(budgets)}")
    for name in names:  # an unknown name fails before the first sample is paid for
        strategy_registry.entry(name)
    def options_for(name: str) -> dict[str, Any]:
        takes = strategy_registry.entry(name).option_names  # each strategy gets the options it takes
        return {k: v for k, v in run_options.items() if k not in STRATEGY_OPTIONS or k in takes}

    # The pooled strategies share one pool of samples: fill it once at the largest N, in the
    # requests one run at that N would send, so every point after it reads its samples for free.
    pooled = [n for n in names if strategy_registry.pools_samples(n) and not strategy_registry.entry(n).stops_early]
    if pooled:
        run(task, strategy=pooled[0], n=ns[-1], store=store, **options_for(pooled[0]))
    points = []
    for name in names:
        for n in ns:  # increasing N: a run ends at the largest N, as the report will show it
            result = run(task, strategy=name, n=n, store=store, **options_for(name))
            final = result.summary.final_accuracy
            acc = final.to_dict() if final is not None else {"mean": float("nan"), "lo": float("nan"), "hi": float("nan")}
            with Store(store) as db:
                cost = db.cost_per_problem(result.run_id, n)
            point = SweepPoint(
                strategy=name, n=n, run_id=result.run_id, problems=result.summary.n_problems,
                accuracy=acc["mean"], accuracy_lo=acc["lo"], accuracy_hi=acc["hi"],
                usd_per_problem=cost["usd"], tokens_per_problem=cost["tokens"],
                completion_tokens_per_problem=cost["completion"], busy_s_per_problem=cost["busy_s"],
                verifier_usd_per_problem=cost["verifier_usd"],
            )  # fmt: skip
            points.append(point)
            if on_point is not None:
                on_point(point)
    if out_dir is not None:
        out = Path(out_dir)
        with _writing("--out", out):
            out.mkdir(parents=True, exist_ok=True)
            level = f" L{run_options.get('level') or 3}" if task == "arithmetic" else ""
            title = f"{task}{level}: accuracy against cost, verifier {run_options.get('verifier') or 'arithmetic'}"
            plot_sweep(points, out / "sweep.png", title)
            (out / "sweep.json").write_text(json.dumps([p.as_dict() for p in points], indent=2))
    return points


from infereco.planner import Plan, plan  # noqa: E402, F401  (re-exported: training + inference compute planner)


def verifier_limits(
    store: str | Path,
    run_id: str | None = None,
    *,
    verifier: str = "arithmetic",
    penalties: Sequence[float] = (0.0, 1.0),
    max_n: int = 1024,
) -> dict[str, Any]:
    """How far resample-until-pass with a verifier can go on a stored run (oracle labels from the store).

    Returns the verifier's TPR/FPR, the accuracy ceiling p/(p+q), accuracy/wrong/abstain per N, and
    the optimal N for each wrong-answer penalty.
    """
    import numpy as np

    from infereco.verifier_limits import estimate_rates, optimal_n, resample_until_pass
    from infereco.verifiers import ArithmeticStepVerifier

    if verifier != "arithmetic":
        raise UserError(f"--verifier {verifier!r} is unknown; available: arithmetic")
    check = ArithmeticStepVerifier()
    with Store(_existing_store(store)) as db:
        runs = db.runs()
        if run_id is None and len(runs) != 1:
            raise UserError(f"{store} holds {len(runs)} runs; choose one with --run")
        stored = db.run(run_id or runs[0]["run_id"])
        texts = db.sample_texts(stored["run_id"])
    if not texts:
        raise UserError(f"run {stored['run_id']} has no stored samples")
    width = max(len(v) for v in texts.values())
    shape = (len(texts), width)
    passes, correct, valid = np.zeros(shape, bool), np.zeros(shape, bool), np.zeros(shape, bool)
    for i, rows in enumerate(texts.values()):
        for j, (_, text, ok) in enumerate(rows):
            passes[i, j], correct[i, j], valid[i, j] = check.passes(text), ok, True
    rates = estimate_rates(passes, correct, valid)
    ns = [n for n in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024) if n <= max_n]
    curve = resample_until_pass(rates, ns)
    best = {}
    for penalty in penalties:
        if penalty < 0:
            raise UserError(f"--penalty must be >= 0, got {penalty}")
        best[str(penalty)] = dict(zip(("n", "utility"), optimal_n(rates, penalty, max_n=max_n)))
    return {
        "run_id": stored["run_id"],
        "label": stored["label"],
        "verifier": check.name,
        "samples": int(valid.sum()),
        "pass_rate": float(passes[valid].mean()),
        "tpr": rates.tpr,
        "fpr": rates.fpr,
        "ceiling": rates.ceiling,
        "curve": {k: [float(x) for x in v] for k, v in curve.items()},
        "optimal_n": best,
    }


def _existing_store(store: str | Path) -> Path:
    path = Path(store)
    if not path.is_file():
        raise UserError(f"no such store: {path}")
    return path


__all__ = [
    "Experiment", "RunConfig", "RunResult", "execute", "load_results", "make_backend", "make_price", "make_roles", "plan",
    "report", "resume", "run", "spec_from_config", "sweep", "verifier_limits", "write_report",
]  # fmt: skip
