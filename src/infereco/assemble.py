"""Assembly: from a run description (`RunConfig`) to the parts the Runner runs.

The task, the strategy (with its verifier), the main backend and the backends of other roles
(judge, reward model, drafter), a price for each, and the budgets, all built and checked here,
before anything is sent: a bad flag, a missing price or a role its backend cannot serve (a judge
needs logprobs) is a `UserError` while nothing has been paid. `api.py` is the public surface over
this; the CLI and `--resume` go through the same function.

`spec_from_config` rebuilds a stored run: from its stored description when it has one, or, for
runs stored before descriptions were, from the parts its config recorded (task spec, strategy
`describe()`, sampling, backend, price), which give the same run id and so the same samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infereco.backends import registry as backends
from infereco.backends.base import Backend
from infereco.budget import Budget
from infereco.errors import UserError
from infereco.validate import same_host
from infereco.prices import DEFAULT_LOCAL_USD_PER_HOUR, Price, genai_price, load_price_file
from infereco.runconfig import RunConfig
from infereco.runner import RunSpec
from infereco.strategies.base import SamplingParams
from infereco.strategies.registry import make_strategy
from infereco.tasks import Task, customise, get_task

Roles = dict[str, tuple[Backend, Price]]


@dataclass
class Assembly:
    """A run ready to execute: what `Runner` takes, and how to execute it."""

    spec: RunSpec
    backend: Backend
    price: Price
    roles: Roles
    budget: Budget
    problem_budget: tuple[float | None, int | None]
    store: str
    executor: str = "local"
    ray_address: str | None = None


def make_backend(
    backend: str = "llamacpp",
    *,
    model: str | None = None,
    base_url: str | Sequence[str] | None = None,
    api_key_env: str | None = "OPENAI_API_KEY",
    concurrency: int | None = None,
    max_n: int | None = None,
    slots: int = 16,
    threads: int | None = None,
    timeout_s: float = 600.0,
    max_retries: int = 5,
    api: str = "chat",
) -> Backend:
    """Build a backend of a registered kind (`backends.registry`) from CLI-style options.

    `api` picks the OpenAI endpoint: "chat" for instruct models, "completions" for base models.
    `base_url` may list several replicas of the same model (load-balanced by outstanding requests).
    """
    urls = base_url if base_url is None or isinstance(base_url, str) else list(base_url)
    options = backends.BackendOptions(
        kind=backend, model=model, base_url=urls, api_key_env=api_key_env, concurrency=concurrency, max_n=max_n,
        slots=slots, threads=threads, timeout_s=timeout_s, max_retries=max_retries, api=api,
    )  # fmt: skip
    return backends.build(options)


def _role_backend(model: str | None, base_url: str | None, api_key_env: str | None, timeout_s: float, max_retries: int) -> Backend:
    """The backend of a judge or drafter: a server at `base_url`, else an embedded model."""
    kind = "openai" if base_url else "llamacpp"
    return make_backend(kind, model=model, base_url=base_url, api_key_env=api_key_env, timeout_s=timeout_s, max_retries=max_retries)


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
    api_key_env: str | None = "OPENAI_API_KEY",
    timeout_s: float = 600.0,
    max_retries: int = 5,
    judge_api_key_env: str | None = None,
    draft_api_key_env: str | None = None,
    reward_api_key_env: str | None = None,
) -> Roles:
    """The backends a strategy's verifier or drafter calls besides the main one, each with its price.

    The judge is the model under test unless `judge_model` names another (an embedded model, or
    with `judge_base_url` one on an OpenAI-compatible server). A reward model lives at `reward_url`
    and needs `reward_price` (USD per 1M prompt tokens; 0 for your own free endpoint).

    Each endpoint gets its own key (`judge_api_key_env`, ...): by default the main key only where
    the endpoint is on the main backend's host, and none elsewhere, so one provider's key is never
    sent as a bearer token to a server someone else runs.
    """
    roles: Roles = {}
    main_url = getattr(main, "base_url", None)

    def key_for(url: str | None, given: str | None) -> str | None:
        if given is not None:
            return given
        return api_key_env if url is not None and same_host(url, main_url) else None

    generator = getattr(strategy, "generator", None)
    if generator:  # speculative steps: the drafter is a backend of its own
        draft = _role_backend(generator.get("draft_model"), draft_base_url, key_for(draft_base_url, draft_api_key_env),
                              timeout_s, max_retries)  # fmt: skip
        roles["draft"] = (draft, make_price(draft, prices=prices))
    verifier = getattr(strategy, "verifier", None)
    role = getattr(verifier, "role", None)
    if role == "judge":
        if judge_model is None and judge_base_url is None:
            roles["judge"] = (main, main_price)
        else:
            judge = _role_backend(judge_model, judge_base_url, key_for(judge_base_url, judge_api_key_env), timeout_s, max_retries)
            roles["judge"] = (judge, make_price(judge, prices=prices))
    elif role == "reward":
        rm = make_backend("reward", model=getattr(verifier, "model", None), base_url=reward_url,
                          api_key_env=key_for(reward_url, reward_api_key_env),
                          timeout_s=timeout_s, max_retries=max_retries)  # fmt: skip
        if reward_price is None:
            raise UserError("--verifier reward needs --reward-price (USD per 1M prompt tokens; 0 for a free endpoint)")
        if reward_price < 0:
            raise UserError(f"--reward-price must be >= 0, got {reward_price}")
        roles["reward"] = (rm, Price(input_per_mtok=reward_price, source="flags"))
    return roles


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
) -> Roles:
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
    grader = _role_backend(grader_model, grader_base_url, api_key_env, timeout_s, max_retries)
    return {role: (grader, make_price(grader, prices=prices))}


def check_capabilities(strategy: Any, main: Backend, roles: Roles) -> None:
    """Refuse, before any request, a role whose backend cannot give what the role reads.

    A judge reads P(yes) from logprobs, a speculative rating its expected digit: on a backend that
    never returns logprobs every score would be a constant, and every call paid for nothing. A
    backend whose server decides ("server") is checked at its first answer by the Runner.
    """
    needs: list[tuple[str, str]] = []
    verifier = getattr(strategy, "verifier", None)
    if getattr(verifier, "needs_logprobs", False):
        needs.append((getattr(verifier, "role", None) or "judge", f"--verifier {verifier.name}"))  # type: ignore[union-attr]
    if getattr(strategy, "generator", None):
        needs.append(("main", "speculative steps (--draft-model), whose ratings"))
    for role, who in needs:
        backend = roles.get(role, (main, None))[0] if role != "main" else main
        found = backends.known(backend)
        if found is not None and found.logprobs == "no":
            raise UserError(
                f"{who} needs logprobs, and the {role} backend ({found.name}, model {backend.model!r}) cannot return them; "
                "choose a backend that does (llamacpp, or an OpenAI-compatible server with logprobs)"
            )


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

    A local backend defaults to hours of idealized runtime (`infereco.runtime`). A remote model that no source prices is an
    error naming the flags to set (a free endpoint says so with `--input-price 0 --output-price 0`).
    """
    base = load_price_file(prices, backend.model) if prices else None
    if base is None:
        found = backends.known(backend)
        if found is not None and found.local:  # priced by idealized runtime: the same samples cost the same, busy or idle
            base = Price(
                usd_per_hour=DEFAULT_LOCAL_USD_PER_HOUR,
                source="default: local machine at $%.2f/h of idealized runtime" % DEFAULT_LOCAL_USD_PER_HOUR,
                clock="runtime",
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
    if callable(getattr(backend, "runtime_profile", None)) and base.clock != "runtime":
        base = base.model_copy(update={"clock": "runtime"})  # a model infereco runs: hours of idealized runtime
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
        # a flag replaces one price: the rest is genai-prices' table of today, no longer looked up per request
        detached = {"genai": None, "version": ""} if base.genai is not None else {}
        return base.model_copy(update={**overrides, **detached, "source": source})
    return base


def _verifier_spec(cfg: RunConfig, verifier: Any) -> Any:
    if verifier is not None:
        return verifier  # a Verifier object built by the caller
    if cfg.verifier in ("judge", "reward"):
        spec: dict[str, Any] = {"name": cfg.verifier, "model": cfg.judge_model if cfg.verifier == "judge" else cfg.reward_model or "reward-model"}
        if cfg.verifier == "judge" and cfg.judge_prompt is not None:
            spec["outcome_prompt"] = cfg.judge_prompt
        return spec
    return cfg.verifier


def assemble(
    cfg: RunConfig,
    *,
    backend: Backend | None = None,
    verifier: Any = None,
    task: Task | None = None,
    stored_prices: dict[str, Any] | None = None,
) -> Assembly:
    """Build every part of a run from its description (see the module docstring).

    `backend` / `verifier` / `task`: objects a library caller built themselves, used instead of the
    description's. `stored_prices`: a stored run's config, whose prices (main and roles) are kept
    on resume rather than looked up again.
    """
    objects_task = task
    if task is None:
        task = get_task(cfg.task, level=cfg.level, limit=cfg.limit, seed=cfg.task_seed, path=cfg.data, format=cfg.task_format)
        if stored_prices is None:  # a file's rows are known now: their format's options (a stored run resumes as made)
            cfg.check_task_options(rows=str(task.spec.get("name")))
    task = customise(task, system_prompt=cfg.system_prompt, prompt_template=cfg.prompt_template,
                     packages=cfg.sandbox_packages, grader_prompt=cfg.grader_prompt)  # fmt: skip
    main = backend or make_backend(
        cfg.backend, model=cfg.model, base_url=cfg.base_url, api_key_env=cfg.api_key_env, concurrency=cfg.concurrency,
        max_n=cfg.max_n, max_retries=cfg.max_retries, timeout_s=cfg.timeout, api=cfg.api_kind,
    )  # fmt: skip
    strategy = make_strategy(cfg.strategy, cfg.n, cfg.seed, _verifier_spec(cfg, verifier), **cfg.strategy_kwargs())
    if stored_prices is not None:
        price = Price(**stored_prices["price"])
    else:
        price = make_price(main, prices=cfg.prices, input_price=cfg.input_price, output_price=cfg.output_price,
                           usd_per_hour=cfg.usd_per_hour)  # fmt: skip
    roles = make_roles(
        strategy, main, price, judge_model=cfg.judge_model, judge_base_url=cfg.judge_base_url, reward_url=cfg.reward_url,
        reward_price=cfg.reward_price, draft_base_url=cfg.draft_base_url, prices=cfg.prices, api_key_env=cfg.api_key_env,
        timeout_s=cfg.timeout, max_retries=cfg.max_retries, judge_api_key_env=cfg.judge_api_key_env,
        draft_api_key_env=cfg.draft_api_key_env, reward_api_key_env=cfg.reward_api_key_env,
    )  # fmt: skip
    roles |= grader_roles(task, main, price, grader_model=cfg.grader_model, grader_base_url=cfg.grader_base_url,
                          prices=cfg.prices, api_key_env=cfg.api_key_env, timeout_s=cfg.timeout, max_retries=cfg.max_retries)  # fmt: skip
    if stored_prices is not None:
        for role, stored in (stored_prices.get("roles") or {}).items():
            if role in roles and roles[role][0] is not main:
                roles[role] = (roles[role][0], Price(**stored["price"]))
    check_capabilities(strategy, main, roles)
    spec = RunSpec(
        task=task, strategy=strategy, params=SamplingParams(max_tokens=cfg.max_tokens, temperature=cfg.temperature, top_p=cfg.top_p),
        seed=cfg.seed, label=cfg.label,
        # objects a caller built are not in the description: such a run is rebuilt from the parts
        # its config records (as runs stored before descriptions are)
        description=cfg.stored() if backend is None and verifier is None and objects_task is None else None,
    )  # fmt: skip
    return Assembly(
        spec, main, price, roles, Budget(max_usd=cfg.budget_usd, max_tokens=cfg.budget_tokens),
        (cfg.budget_usd_per_problem, cfg.budget_tokens_per_problem), cfg.store, cfg.executor, cfg.ray_address,
    )  # fmt: skip


REDO = "rerun it with its flags (infereco run ...) into a new --store, or delete the run"


def spec_from_config(
    config: dict[str, Any],
    label: str | None = None,
    *,
    timeout_s: float | None = None,
    max_retries: int | None = None,
    problems: Sequence[Any] | None = None,
) -> tuple[RunSpec, Backend, Price, Roles]:
    """Rebuild a stored run's spec, backend, price and roles (for `--resume` and Ray workers).

    `problems`: the run's stored problems, from which a task built in Python is rebuilt.

    `timeout_s` and `max_retries`, when given, replace the stored ones: they do not change the
    samples, and a run that failed on timeouts is resumed precisely with a longer `--timeout`.
    """
    description = config.get("description")
    if isinstance(description, dict):
        overrides = {k: v for k, v in {"timeout": timeout_s, "max_retries": max_retries}.items() if v is not None}
        # not user input: what the run was made with, resumed as it was (even an option now refused)
        cfg = RunConfig.build({**description, **overrides, "label": label}, check_task=False)
        built = assemble(cfg, stored_prices=config)
        return built.spec, built.backend, built.price, built.roles
    return _legacy_spec(config, label, timeout_s=timeout_s, max_retries=max_retries, problems=problems)


def _legacy_spec(
    config: dict[str, Any], label: str | None, *, timeout_s: float | None, max_retries: int | None,
    problems: Sequence[Any] | None = None,
) -> tuple[RunSpec, Backend, Price, Roles]:
    """A run stored before run descriptions: rebuilt from the parts its config recorded."""
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

        def rebuild(stored: dict[str, Any]) -> Backend:
            return make_backend(
                stored["kind"], model=stored.get("model"), base_url=stored.get("base_url"),
                api_key_env=stored.get("api_key_env", "OPENAI_API_KEY"), concurrency=stored.get("concurrency"),
                max_n=stored.get("max_n"), slots=int(stored.get("slots", 16)), threads=stored.get("threads"),
                timeout_s=float(timeout_s if timeout_s is not None else stored.get("timeout_s", 600.0)),
                max_retries=5 if max_retries is None else max_retries, api=stored.get("api", "chat"),
            )  # fmt: skip

        full = config.get("backend_full", config["backend"])
        backend = rebuild(full)
        price = Price(**config["price"])
        roles: Roles = {}
        for role, stored in (config.get("roles") or {}).items():
            other = stored["backend"]
            # the model under test in another role (e.g. judging itself) shares its backend
            roles[role] = (backend, price) if other == full else (rebuild(other), Price(**stored["price"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"stored run config is incomplete or from another version ({exc}); {REDO}") from None
    check_capabilities(the_strategy, backend, roles)
    return spec, backend, price, roles


__all__ = ["Assembly", "assemble", "check_capabilities", "grader_roles", "make_backend", "make_price", "make_roles", "spec_from_config"]
