"""The library entry point: `infereco.run(...)` mirrors `infereco run` flag for flag.

It assembles a Task, a Backend, a Strategy and a Price, hands them to the Runner with a Store, and
returns a `RunResult` built from what the store holds (so a resumed run reports exactly what an
uninterrupted one would).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infereco.backends.base import Backend
from infereco.budget import Budget
from infereco.errors import UserError
from infereco.pool import SamplePool
from infereco.prices import DEFAULT_LOCAL_USD_PER_HOUR, Price, genai_price, load_price_file
from infereco.runner import Progress, Runner, RunSpec
from infereco.store import Store
from infereco.strategies import SEARCH_STRATEGIES, SamplingParams, make_strategy
from infereco.strategies.sampling import uses_verifier
from infereco.tasks import Task, get_task


@dataclass
class RunResult:
    """What a run produced: its id, store totals, the sample pool and the metrics summary."""

    run_id: str
    store_path: Path
    totals: dict[str, Any]
    pool: SamplePool
    summary: dict[str, Any]
    reused_samples: int = 0
    sent_requests: int = 0
    #: "budget reached: $… of $…" when a budget stopped the run early, else None
    budget_note: str | None = None

    def to_pandas(self) -> Any:
        """One row per stored sample (needs pandas)."""
        from infereco.report import pool_to_pandas

        return pool_to_pandas(self.pool)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "store": str(self.store_path), "totals": self.totals, "summary": self.summary,
            "budget_note": self.budget_note,
        }  # fmt: skip


def make_backend(
    backend: str = "llamacpp",
    *,
    model: str | None = None,
    base_url: str | Sequence[str] | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    concurrency: int | None = None,
    max_n: int | None = None,
    slots: int = 16,
    threads: int | None = None,
    timeout_s: float = 600.0,
    max_retries: int = 5,
    api: str = "chat",
) -> Backend:
    """Build a backend from CLI-style options.

    `api` picks the OpenAI endpoint: "chat" for instruct models, "completions" for base models
    (see `OpenAIBackend`). The embedded model is an instruct model served by chat only, so any
    other `api` there is an error rather than silently ignored. `base_url` may list several
    replicas of the same model; requests are spread over the healthy ones by outstanding load.
    """
    kind = backend.strip().lower()
    if not timeout_s > 0:
        raise UserError(f"--timeout must be > 0 seconds, got {timeout_s}")
    if api not in ("chat", "completions"):
        raise UserError(f"--api must be chat or completions, got {api!r}")
    if kind in ("llamacpp", "embedded", "local"):
        if api != "chat":
            raise UserError(f"--api {api} needs --backend openai; the embedded model is served by chat only")
        from infereco.backends.llamacpp import LlamaCppBackend

        n_slots = max_n or slots
        return LlamaCppBackend(model, slots=n_slots, threads=threads, timeout_s=timeout_s, concurrency=concurrency or 2)
    if kind == "openai":
        from infereco.backends.openai import OpenAIBackend

        if not base_url:
            raise UserError("--backend openai needs --base-url (e.g. http://127.0.0.1:8080/v1)")
        if not model:
            raise UserError("--backend openai needs --model NAME (the name the server knows the model by)")
        if max_retries < 0:
            raise UserError(f"--max-retries must be >= 0, got {max_retries}")
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        return OpenAIBackend(
            urls[0] if len(urls) == 1 else urls,
            model,
            api_key_env=api_key_env,
            concurrency=concurrency or 8,
            max_n=max_n or 16,
            timeout_s=timeout_s,
            max_retries=max_retries,
            api=api,
        )
    if kind == "reward":
        from infereco.verifiers.reward_model import RewardModelBackend

        if not base_url:
            raise UserError("--verifier reward needs --reward-url (e.g. http://127.0.0.1:8000/pooling)")
        return RewardModelBackend(base_url, model or "reward-model", api_key_env=api_key_env,
                                  concurrency=concurrency or 8, timeout_s=timeout_s, max_retries=max_retries)  # fmt: skip
    raise UserError(f"--backend {backend!r} is unknown; choose llamacpp (embedded default) or openai")


def make_roles(
    strategy: Any,
    main: Backend,
    main_price: Price,
    *,
    judge_model: str | None = None,
    judge_base_url: str | None = None,
    reward_url: str | None = None,
    reward_price: float | None = None,
    draft_base_url: str | None = None,
    prices: str | Path | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    timeout_s: float = 600.0,
    max_retries: int = 5,
) -> dict[str, tuple[Backend, Price]]:
    """The backends a strategy's verifier calls besides the main one, each with its price.

    The judge is the model under test unless `judge_model` names another (an embedded model, or
    with `judge_base_url` one on an OpenAI-compatible server). A reward model lives at `reward_url`
    and needs `reward_price` (USD per 1M prompt tokens; 0 for your own free endpoint).
    """
    roles: dict[str, tuple[Backend, Price]] = {}
    generator = getattr(strategy, "generator", None)
    if generator:  # speculative steps: the drafter is a backend of its own
        kind = "openai" if draft_base_url else "llamacpp"
        draft = make_backend(kind, model=generator.get("draft_model"), base_url=draft_base_url, api_key_env=api_key_env,
                             timeout_s=timeout_s, max_retries=max_retries)  # fmt: skip
        roles["draft"] = (draft, make_price(draft, prices=prices))
    verifier = getattr(strategy, "verifier", None)
    role = getattr(verifier, "role", None)
    return roles | _verifier_roles(
        role, verifier, main, main_price, judge_model=judge_model, judge_base_url=judge_base_url, reward_url=reward_url,
        reward_price=reward_price, prices=prices, api_key_env=api_key_env, timeout_s=timeout_s, max_retries=max_retries,
    )  # fmt: skip


def _verifier_roles(
    role: str | None,
    verifier: Any,
    main: Backend,
    main_price: Price,
    *,
    judge_model: str | None,
    judge_base_url: str | None,
    reward_url: str | None,
    reward_price: float | None,
    prices: str | Path | None,
    api_key_env: str,
    timeout_s: float,
    max_retries: int,
) -> dict[str, tuple[Backend, Price]]:
    if role == "judge":
        if judge_model is None and judge_base_url is None:
            return {"judge": (main, main_price)}
        kind = "openai" if judge_base_url else "llamacpp"
        judge = make_backend(kind, model=judge_model, base_url=judge_base_url, api_key_env=api_key_env,
                             timeout_s=timeout_s, max_retries=max_retries)  # fmt: skip
        return {"judge": (judge, make_price(judge, prices=prices))}
    if role == "reward":
        rm = make_backend("reward", model=verifier.model, base_url=reward_url, api_key_env=api_key_env,  # type: ignore[union-attr]
                          timeout_s=timeout_s, max_retries=max_retries)  # fmt: skip
        if reward_price is None:
            raise UserError("--verifier reward needs --reward-price (USD per 1M prompt tokens; 0 for a free endpoint)")
        if reward_price < 0:
            raise UserError(f"--reward-price must be >= 0, got {reward_price}")
        return {"reward": (rm, Price(input_per_mtok=reward_price, source="flags"))}
    return {}


def make_price(
    backend: Backend,
    *,
    prices: str | Path | None = None,
    input_price: float | None = None,
    output_price: float | None = None,
    cached_input_price: float | None = None,
    usd_per_hour: float | None = None,
) -> Price:
    """Prices from a file, else flags, else the `genai-prices` data; never a silent $0.

    A local backend defaults to hardware-hour pricing. A remote model that no source prices is an
    error naming the flags to set (a free endpoint says so with `--input-price 0 --output-price 0`).
    """
    base = load_price_file(prices, backend.model) if prices else None
    if base is None:
        if backend.kind == "llamacpp":
            base = Price(
                usd_per_hour=DEFAULT_LOCAL_USD_PER_HOUR,
                source="default: local machine at $%.2f/h" % DEFAULT_LOCAL_USD_PER_HOUR,
            )
        elif (input_price is not None and output_price is not None) or usd_per_hour is not None:
            base = Price(source="flags")
        else:
            base = genai_price(backend.model)  # type: ignore[assignment]
            if base is None:
                raise UserError(
                    f"no price known for model {backend.model!r} (not in genai-prices): set --input-price and "
                    "--output-price (USD per 1M tokens), --usd-per-hour, or --prices FILE; 0 for a free endpoint"
                )
    overrides = {
        k: v
        for k, v in {
            "input_per_mtok": input_price,
            "output_per_mtok": output_price,
            "cached_input_per_mtok": cached_input_price,
            "usd_per_hour": usd_per_hour,
        }.items()
        if v is not None
    }
    for name, value in overrides.items():
        if value < 0:
            raise UserError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    if overrides:
        source = "flags" if base.source == "flags" else f"{base.source} + flags"
        return base.model_copy(update={**overrides, "source": source})
    return base


def run(
    task: str | Task = "arithmetic",
    *,
    level: int = 1,
    limit: int | None = None,
    data: str | None = None,
    task_seed: int = 0,
    strategy: str = "majority",
    n: int = 16,
    backend: str | Backend = "llamacpp",
    model: str | None = None,
    base_url: str | Sequence[str] | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    concurrency: int | None = None,
    max_n: int | None = None,
    max_retries: int = 5,
    timeout_s: float = 600.0,
    api: str = "chat",
    max_tokens: int = 256,
    temperature: float = 0.8,
    top_p: float = 1.0,
    seed: int = 0,
    store: str | Path = "infereco.db",
    prices: str | Path | None = None,
    input_price: float | None = None,
    output_price: float | None = None,
    usd_per_hour: float | None = None,
    label: str | None = None,
    progress: Progress | None = None,
    budget_usd: float | None = None,
    budget_tokens: int | None = None,
    budget_usd_per_problem: float | None = None,
    budget_tokens_per_problem: int | None = None,
    verifier: Any = None,
    judge_model: str | None = None,
    judge_base_url: str | None = None,
    judge_prompt: str | None = None,
    reward_url: str | None = None,
    reward_model: str | None = None,
    reward_price: float | None = None,
    search: dict[str, Any] | None = None,
    draft_model: str | None = None,
    draft_base_url: str | None = None,
    accept_threshold: float = 7.0,
    executor: str = "local",
    ray_address: str | None = None,
    task_format: str | None = None,
    system_prompt: str | None = None,
    prompt_template: str | None = None,
    sandbox_packages: str | None = None,
    grader_model: str | None = None,
    grader_base_url: str | None = None,
    grader_prompt: str | None = None,
) -> RunResult:
    """Run `strategy` with `n` samples (or particles, or beams) per problem of `task`; store and summarise it.

    Verifier strategies (bon, weighted, bom, beam, pf, epf, adaptive) take `verifier`: arithmetic,
    oracle, judge (the model under test, or `judge_model` [at `judge_base_url`]; `judge_prompt`
    with {problem} and {solution} replaces the yes/no question), reward (a served reward
    model at `reward_url`, priced `reward_price` USD per 1M tokens). `search` holds the step-level
    options: max_steps, delimiter, width (beam), temperature, entropy_floor, argmax (pf/epf), and
    for adaptive: round_size, rule ("beta" or "margin"), confidence, margin; for bon, weighted
    and bom: submit (k answers per problem, scored as pass@k). With `draft_model`,
    steps are speculative: that model drafts each one and the model under test rates it, keeping
    drafts rated >= `accept_threshold` (0-9) and rewriting the rest (majority, beam, pf, epf).

    `task` is a name, a file path, or a `Task` object (its problems are stored with the run, so it
    resumes like any other). `task_format` forces a file's format (humaneval, mbpp, choice,
    freeform, gsm8k, math); `system_prompt` (text, or "@FILE") and `prompt_template` (with
    `{question}`-style fields) replace the format's presets and are part of the run's identity.
    Code tasks run their tests in the sandbox with `sandbox_packages` ("site" or "stdlib");
    free-form tasks are graded by `grader_model` [at `grader_base_url`] (default: the model under
    test), asking `grader_prompt`, each verdict a priced request under the role "grader".

    Example: `infereco.run("arithmetic", level=3, strategy="majority", n=32, limit=50, store="runs.db")`.
    """
    if max_tokens < 1:
        raise UserError(f"--max-tokens must be >= 1, got {max_tokens}")
    if not 0 <= temperature <= 2:
        raise UserError(f"--temperature must be in [0, 2], got {temperature}")
    the_task = _the_task(
        task, level=level, limit=limit, data=data, task_seed=task_seed, task_format=task_format, system_prompt=system_prompt,
        prompt_template=prompt_template, sandbox_packages=sandbox_packages, grader_prompt=grader_prompt,
    )  # fmt: skip
    the_backend = backend if not isinstance(backend, str) else make_backend(
        backend, model=model, base_url=base_url, api_key_env=api_key_env, concurrency=concurrency, max_n=max_n,
        max_retries=max_retries, timeout_s=timeout_s, api=api,
    )
    if verifier in ("judge", "reward"):
        verifier_spec: Any = {"name": verifier, "model": judge_model if verifier == "judge" else reward_model or "reward-model"}
        if verifier == "judge" and judge_prompt is not None:
            if "{solution}" not in judge_prompt:
                raise UserError("--judge-prompt must contain {solution} (and may contain {problem})")
            verifier_spec["outcome_prompt"] = judge_prompt
    else:
        verifier_spec = verifier  # a name, or a Verifier object built by the caller
    # flag errors first, before any price lookup
    options = dict(search or {})
    if draft_model is not None:
        if not 0 <= accept_threshold <= 9:
            raise UserError(f"--accept-threshold must be in [0, 9], got {accept_threshold}")
        options["generator"] = {"draft_model": draft_model, "threshold": accept_threshold}
    the_strategy = make_strategy(strategy, n, seed, verifier_spec, **options)
    price = make_price(the_backend, prices=prices, input_price=input_price, output_price=output_price, usd_per_hour=usd_per_hour)
    roles = make_roles(
        the_strategy, the_backend, price, judge_model=judge_model, judge_base_url=judge_base_url, reward_url=reward_url,
        reward_price=reward_price, draft_base_url=draft_base_url, prices=prices, api_key_env=api_key_env,
        timeout_s=timeout_s, max_retries=max_retries,
    )  # fmt: skip
    roles |= grader_roles(
        the_task, the_backend, price, grader_model=grader_model, grader_base_url=grader_base_url, prices=prices,
        api_key_env=api_key_env, timeout_s=timeout_s, max_retries=max_retries,
    )  # fmt: skip
    spec = RunSpec(
        task=the_task,
        strategy=the_strategy,
        params=SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p),
        seed=seed,
        label=label,
    )
    budget = Budget(max_usd=budget_usd, max_tokens=budget_tokens)
    problem_budget = (budget_usd_per_problem, budget_tokens_per_problem)
    return execute(
        spec, the_backend, store, price, progress, budget, problem_budget, roles, executor=executor, ray_address=ray_address
    )


def _the_task(
    task: str | Task,
    *,
    level: int,
    limit: int | None,
    data: str | None,
    task_seed: int,
    task_format: str | None,
    system_prompt: str | None,
    prompt_template: str | None,
    sandbox_packages: str | None,
    grader_prompt: str | None,
) -> Task:
    """The task to run: built by name/path, or a caller's `Task` (made resumable), with the prompt options applied."""
    from infereco.tasks import customise
    from infereco.tasks.prompts import read_prompt_arg

    system_prompt = read_prompt_arg(system_prompt, "--system-prompt")
    prompt_template = read_prompt_arg(prompt_template, "--prompt-template")
    if isinstance(task, Task):
        from infereco.tasks.stored import resumable

        return customise(resumable(task), system_prompt=system_prompt, prompt_template=prompt_template,
                         packages=sandbox_packages, grader_prompt=grader_prompt)  # fmt: skip
    if not isinstance(task, str):
        raise UserError(f"task must be a name, a file path or a Task, got {type(task).__name__}")
    return get_task(
        task, level=level, limit=limit, seed=task_seed, path=data, format=task_format, system_prompt=system_prompt,
        prompt_template=prompt_template, packages=sandbox_packages, grader_prompt=grader_prompt,
    )  # fmt: skip


def grader_roles(
    task: Task,
    main: Backend,
    main_price: Price,
    *,
    grader_model: str | None = None,
    grader_base_url: str | None = None,
    prices: str | Path | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    timeout_s: float = 600.0,
    max_retries: int = 5,
) -> dict[str, tuple[Backend, Price]]:
    """The "grader" role of a task graded by a model (free-form): the model under test unless
    `grader_model` names another (embedded, or with `grader_base_url` on an OpenAI-compatible
    server, priced from `prices` or genai-prices). A grader flag on a task without one is an error."""
    role = getattr(task.checker, "role", None)
    if role is None:
        if grader_model is not None or grader_base_url is not None:
            raise UserError(f"--grader-model/--grader-base-url apply to free-form tasks only; {task.name} is graded by {task.checker.name}")
        return {}
    if grader_model is None and grader_base_url is None:
        return {role: (main, main_price)}
    kind = "openai" if grader_base_url else "llamacpp"
    grader = make_backend(kind, model=grader_model, base_url=grader_base_url, api_key_env=api_key_env,
                          timeout_s=timeout_s, max_retries=max_retries)  # fmt: skip
    return {role: (grader, make_price(grader, prices=prices))}


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
                try:
                    return await runner.run()
                finally:
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


def result_from_store(db: Store, run_id: str, *, reused: int = 0, sent: int = 0) -> RunResult:
    from infereco.metrics import summarize

    config = db.run(run_id)["config"]
    searched = (config.get("strategy") or {}).get("name") in SEARCH_STRATEGIES
    pool = db.load_pool(run_id, outcomes=searched)  # a search's answers are its samples
    summary = summarize(pool)
    summary["label"] = pool.label
    summary["run_id"] = run_id
    summary["efficiency"] = _efficiency(db, run_id, pool.config)
    if (config.get("strategy") or {}).get("name") == "adaptive":  # how many samples a vote took to settle
        used = [info["samples_used"] for info in db.result_infos(run_id) if "samples_used" in info]
        if used:
            summary["mean_samples_used"] = sum(used) / len(used)
    return RunResult(run_id, db.path, db.totals(run_id), pool, summary, reused, sent)


def load_results(store: str | Path, run_ids: Sequence[str] | None = None) -> list[RunResult]:
    """The stored runs (ids or unique prefixes; None: all, oldest first) as summarised results.

    Nothing is sampled: every number comes from the samples the store holds. A missing store or an
    unknown run is a `UserError`; an existing file is never created or changed.
    """
    path = Path(store)
    if not path.is_file():
        raise UserError(f"no such store: {path}")
    with Store(path) as db:
        ids = list(run_ids) if run_ids else [r["run_id"] for r in db.runs()]
        if not ids:
            raise UserError(f"{path} holds no runs yet")
        return [result_from_store(db, db.run(r)["run_id"]) for r in ids]


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
) -> list[Path]:
    """Write scaling.png, cost.png, cost_of_pass.png and summary.json into out_dir, and/or one
    self-contained HTML page at `html`; returns the files written.

    The page embeds the PNGs written to out_dir when there is one (rendered once, identical in
    both places). A path that cannot be written is a `UserError` naming the flag and the path.
    """
    from infereco.html_report import render_plots, write_html
    from infereco.report import write_json

    if html is not None and Path(html).is_dir():
        raise UserError(f"--html {html}: is a folder; give a file name such as report.html")
    summaries = [r.summary for r in results]
    written: list[Path] = []
    plots: dict[str, Path] | None = None
    if out_dir is not None:
        with _writing("--out", out_dir):
            plots = render_plots(summaries, out_dir)
            written += [*plots.values(), write_json(summaries, Path(out_dir) / "summary.json")]
    if html is not None:
        with _writing("--html", html):
            written.append(write_html(summaries, [r.pool for r in results], html, plots=plots, store=store))
    return written


def report(
    store: str | Path,
    run_ids: Sequence[str] | None = None,
    out_dir: str | Path | None = None,
    html: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Summarise stored runs (no model is called) and optionally write plots, JSON and HTML.

    Mirrors `infereco report STORE [--run ID ...] [--out DIR] [--html FILE]`. Returns one summary
    per run (what `--json` prints); `load_results` gives the `RunResult`s, e.g. for `to_pandas()`.
    """
    results = load_results(store, run_ids)
    write_report(results, out_dir, html, store=store)
    return [r.summary for r in results]


def spec_from_config(
    config: dict[str, Any],
    label: str | None = None,
    *,
    timeout_s: float | None = None,
    max_retries: int | None = None,
    problems: Sequence[Any] | None = None,
) -> tuple[RunSpec, Backend, Price, dict[str, tuple[Backend, Price]]]:
    """Rebuild a run's spec, backend, price and other backend roles from its stored config (for `--resume`).

    `timeout_s` and `max_retries`, when given, replace the stored ones: they do not change the
    samples, and a run that failed on timeouts is resumed precisely with a longer `--timeout`.
    """
    try:
        if config["task"].get("name") == "stored":  # a Task built in Python: rebuilt from the run's problems
            from infereco.tasks.stored import stored_task

            task = stored_task(config["task"], list(problems or []))
        else:
            task = get_task(**config["task"])
        strat = dict(config["strategy"])
        name, n, verifier = strat.pop("name"), int(strat.pop("n", 1)), strat.pop("verifier", None)
        search = {k: v for k, v in strat.items() if k != "stepwise"}  # each strategy takes the options it has
        the_strategy = make_strategy(name, n, int(config.get("seed", 0)), verifier, **search)
        spec = RunSpec(
            task=task,
            strategy=the_strategy,
            params=SamplingParams(**{**config["sampling"], "stop": tuple(config["sampling"].get("stop", ()))}),
            seed=int(config.get("seed", 0)),
            label=label,
        )
        full = config.get("backend_full", config["backend"])
        backend = make_backend(
            full["kind"],
            model=full.get("model"),
            base_url=full.get("base_url"),
            api_key_env=full.get("api_key_env", "OPENAI_API_KEY"),
            concurrency=full.get("concurrency"),
            max_n=full.get("max_n"),
            slots=int(full.get("slots", 16)),
            threads=full.get("threads"),
            timeout_s=float(timeout_s if timeout_s is not None else full.get("timeout_s", 600.0)),
            max_retries=5 if max_retries is None else max_retries,
            api=full.get("api", "chat"),
        )
        price = Price(**config["price"])
        roles = {}
        for role, stored in (config.get("roles") or {}).items():
            other = stored["backend"]
            if other == full:  # the model under test in another role (e.g. judging itself)
                roles[role] = (backend, price)
                continue
            roles[role] = (make_backend(
                other["kind"], model=other.get("model"), base_url=other.get("base_url"),
                api_key_env=other.get("api_key_env", "OPENAI_API_KEY"), concurrency=other.get("concurrency"),
                max_n=other.get("max_n"), slots=int(other.get("slots", 16)), threads=other.get("threads"),
                timeout_s=float(timeout_s if timeout_s is not None else other.get("timeout_s", 600.0)),
                max_retries=5 if max_retries is None else max_retries, api=other.get("api", "chat"),
            ), Price(**stored["price"]))  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"stored run config is incomplete or from another version ({exc}); rerun with full flags") from None
    return spec, backend, price, roles


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


_VERIFIER_OPTIONS = ("verifier", "judge_model", "judge_base_url", "reward_url", "reward_model", "reward_price")


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

    from infereco.sweep import SweepPoint, plot_sweep, point_cost

    names = [s.strip().lower() for s in strategies if s.strip()]
    ns = sorted(set(budgets))
    if not names:
        raise UserError("--strategies is empty; give e.g. majority,bon,pf")
    if not ns or ns[0] < 1:
        raise UserError(f"--budgets must be integers >= 1, got {list(budgets)}")
    for name in names:  # an unknown name fails before the first sample is paid for
        make_strategy(name, 1)
    points = []
    for name in names:
        for n in ns:  # increasing N: a pooled strategy's run grows by the new samples only
            options = {k: v for k, v in run_options.items() if uses_verifier(name) or k not in _VERIFIER_OPTIONS}
            result = run(task, strategy=name, n=n, store=store, **options)
            acc = result.summary.get("final_accuracy") or {"mean": float("nan"), "lo": float("nan"), "hi": float("nan")}
            with Store(store) as db:
                cost = point_cost(db, result.run_id, n, pooled=name not in SEARCH_STRATEGIES)
            point = SweepPoint(
                strategy=name, n=n, run_id=result.run_id, problems=int(result.summary.get("n_problems", 0)),
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
            title = f"{task} L{run_options.get('level', 1)}: accuracy against cost, verifier {run_options.get('verifier') or 'arithmetic'}"
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
