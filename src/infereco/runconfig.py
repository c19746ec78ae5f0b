"""The run description: one typed model of everything that defines an `infereco run`.

`RunConfig` is what every front door builds and every consumer reads:
- `infereco run` builds its options from RunConfig's fields (`cli_options`): a field is a flag;
- `infereco.run(task, **options)` and `ie.Experiment(...)` take its fields as keywords;
- a `--config run.toml` file is its fields as keys (`config.load_run_config`);
- the store keeps it with each run (`stored()`), and `--resume` rebuilds the run from it;
- `assemble.assemble` turns it into the task, strategy, backends, prices and budgets.

Each strategy's own options are declared once, in `strategies.options`, and RunConfig inherits them;
an option given to a strategy that does not take it is refused (`check_applicable`), naming the flag
and the strategies that do take it, before anything is built, priced or sent.

Adding a run flag is one field here (or in a strategy's option model): `Field(default,
description=help)`, plus `json_schema_extra={"session": True}` when it does not change what is
sampled (it may then differ on `--resume`), `{"flag": "--x"}` to name the flag otherwise, or
`{"cli": False}` for a keyword-only option.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from infereco.errors import UserError
from infereco.strategies.options import (
    DEPENDENT,
    AdaptiveOptions,
    BeamOptions,
    EntropicOptions,
    ParticleOptions,
    SpeculativeOptions,
    StepOptions,
    SubmitOptions,
    VerifierOptions,
    option_fields,
)

_SESSION = {"session": True}
_URL = Annotated[str, StringConstraints(pattern=r"^https?://")]

#: strategy option fields (they apply to some strategies only)
STRATEGY_OPTIONS = option_fields(
    (VerifierOptions, SubmitOptions, StepOptions, BeamOptions, ParticleOptions, EntropicOptions, AdaptiveOptions,
     SpeculativeOptions)
)  # fmt: skip


class _Core(BaseModel):
    """The fields every run has: task, strategy and N, sampling, backend, prices, budgets, where to store."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    # -- task
    task: str = Field("arithmetic", description="arithmetic, humaneval, gsm8k, math, mbpp, choice, freeform, or a .jsonl/.csv file")
    level: int = Field(3, ge=1, le=5, description="arithmetic difficulty 1..5 (3, as demo and sweep)")
    limit: Optional[int] = Field(None, ge=1, description="use the first N problems")
    data: Optional[str] = Field(None, description="dataset file for --task gsm8k/math")
    task_seed: int = Field(0, description="seed of the generated arithmetic problems")
    task_format: Optional[str] = Field(
        None, alias="format", description="a file's format: auto (from the first row), humaneval, mbpp, choice, freeform, gsm8k, math",
        json_schema_extra={"flag": "--format"},
    )  # fmt: skip
    system_prompt: Optional[str] = Field(None, description="system prompt TEXT or @FILE (default: the format's preset; '' for none)")
    prompt_template: Optional[str] = Field(
        None, description="user message TEXT or @FILE with fields such as {question} (multiple choice: {choices}, {letters})"
    )
    sandbox_packages: Optional[Literal["site", "stdlib"]] = Field(
        None, description="code tasks: site (installed packages importable, default) or stdlib"
    )
    grader_model: Optional[str] = Field(None, description="free-form tasks: the model that grades answers (default: the model under test)")
    grader_base_url: Optional[_URL] = Field(None, description="free-form tasks: an OpenAI-compatible server for --grader-model")
    grader_prompt: Optional[str] = Field(
        None, description="free-form tasks: the grader's yes/no question, with {question}, {reference}, {answer}"
    )
    # -- strategy
    strategy: str = Field("majority", description="repeated, majority, pass@n, bon, weighted, bom, beam, pf, epf, adaptive, spec-majority")
    n: int = Field(16, ge=1, description="samples (beams, particles) per problem", json_schema_extra={"flag": "--n"})
    # -- backend
    backend: str = Field("llamacpp", min_length=1, description="llamacpp (embedded default) or openai")
    model: Optional[str] = Field(None, description="embedded model name / .gguf path, or the server's model name")
    base_url: Optional[_URL | list[_URL]] = Field(
        None, description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1; repeat for replicas of the model (load-balanced)",
        json_schema_extra={"metavar": "URL", **_SESSION},
    )  # fmt: skip
    api_key_env: str = Field("OPENAI_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="environment variable holding the API key (never stored)", json_schema_extra=_SESSION)
    judge_api_key_env: Optional[str] = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="--judge-base-url's key variable (default: --api-key-env on the same host, else none)", json_schema_extra=_SESSION)
    draft_api_key_env: Optional[str] = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="--draft-base-url's key variable (default: --api-key-env on the same host, else none)", json_schema_extra=_SESSION)
    reward_api_key_env: Optional[str] = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="--reward-url's key variable (default: --api-key-env on the same host, else none)", json_schema_extra=_SESSION)
    concurrency: Optional[int] = Field(None, ge=1, description="requests in flight (default: 2 embedded, 8 openai)", json_schema_extra=_SESSION)
    max_n: Optional[int] = Field(None, ge=1, description="samples per request ('n'); 1 for servers that ignore n")
    max_retries: int = Field(5, ge=0, description="retries of a failed request (openai backend)", json_schema_extra=_SESSION)
    timeout: float = Field(600.0, gt=0, allow_inf_nan=False, description="seconds one request may take before it counts as failed", json_schema_extra=_SESSION)
    api_kind: Literal["chat", "completions"] = Field(
        "chat", alias="api", description="openai backend: chat (/chat/completions) or completions (/completions, base models)",
        json_schema_extra={"flag": "--api"},
    )  # fmt: skip
    # -- sampling
    max_tokens: int = Field(256, ge=1, description="completion token limit per sample")
    temperature: float = Field(0.8, ge=0, le=2, allow_inf_nan=False, description="sampling temperature")
    top_p: float = Field(1.0, gt=0, le=1, allow_inf_nan=False, description="nucleus sampling: keep the smallest set of tokens this likely")
    seed: int = Field(0, description="sampling seed (part of the run's identity)")
    # -- where, prices, budgets
    store: str = Field("infereco.db", description="SQLite sample store", json_schema_extra={"path": True, **_SESSION})
    prices: Optional[str] = Field(None, description="TOML price file", json_schema_extra={"path": True})
    input_price: Optional[float] = Field(None, ge=0, allow_inf_nan=False, description="USD per 1M prompt tokens")
    output_price: Optional[float] = Field(None, ge=0, allow_inf_nan=False, description="USD per 1M completion tokens")
    usd_per_hour: Optional[float] = Field(None, ge=0, allow_inf_nan=False, description="USD per hour of machine time (local models)")
    budget_usd: Optional[float] = Field(None, ge=0, allow_inf_nan=False, description="hard limit on the run's total spend in USD", json_schema_extra=_SESSION)
    budget_tokens: Optional[int] = Field(None, ge=0, description="hard limit on the run's prompt + completion tokens", json_schema_extra=_SESSION)
    budget_usd_per_problem: Optional[float] = Field(None, ge=0, allow_inf_nan=False, description="hard limit on the USD spent on any one problem", json_schema_extra=_SESSION)
    budget_tokens_per_problem: Optional[int] = Field(None, ge=0, description="hard limit on the tokens spent on any one problem", json_schema_extra=_SESSION)
    # -- execution
    executor: Literal["local", "ray"] = Field("local", description="local (one process) or ray (problems sharded over a Ray cluster; pip install 'infereco[ray]')", json_schema_extra=_SESSION)
    ray_address: Optional[str] = Field(None, description="with --executor ray: the cluster to join (e.g. auto, ray://host:10001); default a local one", json_schema_extra=_SESSION)
    label: Optional[str] = Field(None, description="a name for the run in tables, plots and `infereco runs` (default: model / strategy N=…; not part of its identity)", json_schema_extra={"flag": "--name", **_SESSION})

    @field_validator("store", "prices", "data", mode="before")
    @classmethod
    def _path_to_str(cls, value: Any) -> Any:
        return str(value) if isinstance(value, Path) else value

    @field_validator("system_prompt", "prompt_template", mode="before")
    @classmethod
    def _read_at_file(cls, value: Any, info: Any) -> Any:
        """`@FILE` is read now, so the stored description holds the prompt itself (a later edit of
        the file cannot change what a resumed run asks)."""
        from infereco.tasks.prompts import read_prompt_arg

        return read_prompt_arg(value, flag(info.field_name)) if isinstance(value, str) else value


class RunConfig(
    _Core, VerifierOptions, SubmitOptions, StepOptions, BeamOptions, ParticleOptions, EntropicOptions, AdaptiveOptions,
    SpeculativeOptions,
):  # fmt: skip
    """Everything that defines a run (see the module docstring). Field names are `infereco run`'s
    flags with `_` for `-` (`api_kind` is `--api`)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @classmethod
    def build(cls, values: dict[str, Any], *, strict: bool = False, check_task: bool = True) -> RunConfig:
        """Validate and check a run description; every problem is one `UserError` naming the flag.

        `check_task=False`: the task options are not checked against the task (`tasks.options`): a
        stored run's description (resumed as it was made) or a `Task` built in Python (checked by the
        caller, `tasks.options.check_task_object`), whose name is no registered task's.
        """
        values = dict(values)
        if "api" in values and "api_kind" in values:
            raise UserError("give --api once (api= and api_kind= are the same option)")
        try:
            config = cls.model_validate(values, strict=strict)
        except ValidationError as exc:
            raise UserError(describe_error(exc, values)) from None
        config.check_applicable()
        if check_task:
            config.check_task_options()
        return config

    def given(self) -> dict[str, Any]:
        """The options that were set (to anything but None / False): what this description says beyond the defaults."""
        return {k: getattr(self, k) for k in self.model_fields_set if _set(getattr(self, k))}

    def check_applicable(self) -> None:
        """Refuse an option the chosen strategy (or the option it depends on) cannot use: it would be
        silently ignored, and the run would not be the experiment the user asked for."""
        from infereco.strategies.registry import entry, takers
        from infereco.validate import check_run_options

        # first: finite and in range (upper bounds too), URLs that parse and carry no user:password@
        check_run_options(self.model_dump())

        chosen = entry(self.strategy)
        given = {k for k in STRATEGY_OPTIONS if _set(getattr(self, k))}
        for name in sorted(given - chosen.option_names, key=_field_order):
            users = takers(name)
            raise UserError(
                f"{flag(name)} applies to --strategy {', '.join(users) or 'none'} only; --strategy {self.strategy} does not take it"
            )
        for name in sorted(given, key=_field_order):
            if name not in DEPENDENT:
                continue
            needs, value = DEPENDENT[name]
            have = getattr(self, needs)
            if name == "stop_confidence" and have is None:
                continue  # beta is the default rule
            if have is None or (value is not None and have != value):
                wanted = f"{flag(needs)} {value}" if value is not None else flag(needs)
                raise UserError(f"{flag(name)} applies only with {wanted}" + (f" (got {flag(needs)} {have})" if have else ""))
        if self.judge_prompt is not None and "{solution}" not in self.judge_prompt:
            raise UserError("--judge-prompt must contain {solution} (and may contain {problem})")
        if self.ray_address is not None and self.executor != "ray":
            raise UserError("--ray-address needs --executor ray")

    def task_options_given(self) -> set[str]:
        """The task options the user set (a default is not set: `--level` left off says nothing)."""
        from infereco.tasks.options import TASK_OPTIONS

        return {k for k in TASK_OPTIONS if k in self.model_fields_set and _set(getattr(self, k))}

    def check_task_options(self, rows: str | None = None) -> None:
        """Refuse a task option the chosen task cannot use (`--level` for HumanEval, `--grader-model`
        for multiple choice), naming the flag and the tasks that take it; `rows`: the format a
        detected file's rows were read as (`assemble` checks again once the file is read)."""
        from infereco.tasks.registry import inapplicable, takers

        refused = inapplicable(self.task, self.task_options_given(), task_format=self.task_format, rows=rows)
        if refused is not None:
            name, rest = refused
            raise UserError(f"{flag(name)} applies to {takers(name)} only; {rest}")

    def check_task_object(self) -> None:
        """For a `Task` built in Python (`task` is its name): refuse a loader's option (`--level`,
        `--limit`, `--data`, ...), which has nothing to load: the Task brings its own problems."""
        from infereco.tasks.options import LOADERS

        for name in (n for n in _ORDER if n in LOADERS and n in self.task_options_given()):
            raise UserError(f"{flag(name)} applies to a task given by name or file; the Task {self.task!r} brings its own problems")

    def stored(self) -> dict[str, Any]:
        """What the store keeps: the fields set, JSON-able (the API key's variable name, never a key)."""
        return self.model_dump(mode="json", include=self.model_fields_set | {"task", "strategy", "n"}, by_alias=False)

    def strategy_kwargs(self) -> dict[str, Any]:
        """The chosen strategy's options under its own keyword names (`beam_width` is `width`, ...)."""
        out: dict[str, Any] = {}
        for name, kwarg in _KWARGS.items():
            value = getattr(self, name)
            if _set(value):
                out[kwarg] = value
        if out.get("delimiter") is not None:  # "\\n" on a command line means a newline
            out["delimiter"] = str(out["delimiter"]).encode().decode("unicode_escape")
        if self.draft_model is not None:
            out["generator"] = {"draft_model": self.draft_model, "threshold": 7.0 if self.accept_threshold is None else self.accept_threshold}
        return out


#: strategy option field -> the keyword the strategy classes take
_KWARGS = {
    "max_steps": "max_steps", "step_delimiter": "delimiter", "beam_width": "width", "pf_temperature": "temperature",
    "entropy_floor": "entropy_floor", "pf_argmax": "argmax", "round_size": "round_size", "stop_rule": "rule",
    "stop_confidence": "confidence", "stop_margin": "margin", "submit": "submit",
}  # fmt: skip
_NATIVE = {v: k for k, v in _KWARGS.items()}


def options_from_strategy_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The inverse of `strategy_kwargs`: `{"width": 2}` -> `{"beam_width": 2}` (for `search=` of the old API)."""
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key == "generator":
            out["draft_model"] = value.get("draft_model")
            if value.get("threshold") is not None:
                out["accept_threshold"] = value["threshold"]
        else:
            out[_NATIVE.get(key, key)] = value
    return out


def _set(value: Any) -> bool:
    """Whether an option says something: None and a flag left off (False) say nothing; 0 does."""
    return value is not None and value is not False


def _extra(name: str) -> dict[str, Any]:
    extra = RunConfig.model_fields[name].json_schema_extra
    return dict(extra) if isinstance(extra, dict) else {}


def field_names() -> list[str]:
    """RunConfig's fields in the order flags are listed: the core ones, then each option model's."""
    from infereco.strategies.options import ALL_OPTIONS

    names = list(_Core.model_fields) + [n for m in ALL_OPTIONS for n in m.model_fields]
    return names + [n for n in RunConfig.model_fields if n not in names]


_ORDER = {name: i for i, name in enumerate(field_names())}


def _field_order(name: str) -> int:
    return _ORDER.get(name, len(_ORDER))


def flag(name: str) -> str:
    """The command-line flag of a field: `beam_width` -> `--beam-width`, `api_kind` -> `--api`."""
    if name in RunConfig.model_fields:
        extra = _extra(name)
        if "flag" in extra:
            return str(extra["flag"])
    if name == "api":
        return "--api"
    return "--" + name.replace("_", "-")


def session_fields() -> set[str]:
    """Fields that do not change what is sampled: they may differ when a run is resumed."""
    return {name for name in RunConfig.model_fields if _extra(name).get("session")}


_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}


def describe_error(exc: ValidationError, values: dict[str, Any]) -> str:
    """The first validation error as one line: `--temperature must be <= 2, got 3.0`."""
    err = exc.errors()[0]
    name = str(err["loc"][0]) if err["loc"] else ""
    shown = repr(values.get(name, err.get("input")))
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"unknown option {name!r} (expected one of: {', '.join(sorted(RunConfig.model_fields))})"
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()))
        return f"{flag(name)} must be {_BOUNDS[kind]} {bound}, got {shown}"
    if kind == "literal_error":
        return f"{flag(name)} must be {str(ctx.get('expected', '')).replace(chr(39), '')}, got {shown}"
    if kind == "string_pattern_mismatch":
        what = "a URL starting with http:// or https://" if "http" in str(ctx.get("pattern", "")) else f"a value matching {ctx.get('pattern')}"
        return f"{flag(name)} must be {what}, got {shown}"
    if kind == "finite_number":
        return f"{flag(name)} must be a finite number, got {shown}"
    return f"{flag(name)}: {err['msg']} (got {shown})"


__all__ = ["RunConfig", "STRATEGY_OPTIONS", "describe_error", "field_names", "flag", "options_from_strategy_kwargs", "session_fields"]
