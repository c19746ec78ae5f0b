"""Run config files: a TOML file whose keys are `infereco run`'s flags, so a run is reproducible from a file.

    # run.toml
    task = "arithmetic"
    level = 3
    n = 32
    backend = "openai"
    base-url = "http://127.0.0.1:8080/v1"
    model = "qwen"
    input-price = 0.5
    output-price = 1.5
    budget-usd = 2.0

Keys are flag names without `--` (`max-tokens` or `max_tokens`); a flag given on the command line
wins over the file. Every problem is one line naming the file, the line and the key, like any other
input. The API key is never a config value: only the name of the variable that holds it
(`api-key-env`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from infereco.errors import UserError
from infereco.tomlfile import line_of, read_toml


class RunConfig(BaseModel):
    """The flags of `infereco run` that a file may set (field names are the CLI's parameter names)."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    task: Optional[str] = None
    level: Optional[int] = Field(None, ge=1, le=5)
    limit: Optional[int] = Field(None, ge=1)
    data: Optional[str] = None
    task_seed: Optional[int] = None
    task_format: Optional[str] = Field(None, alias="format")
    system_prompt: Optional[str] = None
    prompt_template: Optional[str] = None
    sandbox_packages: Optional[Literal["site", "stdlib"]] = None
    grader_model: Optional[str] = None
    grader_base_url: Optional[str] = Field(None, pattern=r"^https?://")
    grader_prompt: Optional[str] = None
    strategy: Optional[str] = None
    verifier: Optional[str] = None
    judge_model: Optional[str] = None
    judge_base_url: Optional[str] = Field(None, pattern=r"^https?://")
    judge_prompt: Optional[str] = None
    reward_url: Optional[str] = Field(None, pattern=r"^https?://")
    reward_model: Optional[str] = None
    reward_price: Optional[float] = Field(None, ge=0, allow_inf_nan=False)
    max_steps: Optional[int] = Field(None, ge=1)
    step_delimiter: Optional[str] = Field(None, min_length=1)
    beam_width: Optional[int] = Field(None, ge=1)
    pf_temperature: Optional[float] = Field(None, gt=0, allow_inf_nan=False)
    entropy_floor: Optional[float] = Field(None, ge=0, le=1, allow_inf_nan=False)
    pf_argmax: Optional[bool] = None
    draft_model: Optional[str] = None
    draft_base_url: Optional[str] = Field(None, pattern=r"^https?://")
    accept_threshold: Optional[float] = Field(None, ge=0, le=9, allow_inf_nan=False)
    submit: Optional[int] = Field(None, ge=1)
    round_size: Optional[int] = Field(None, ge=1)
    stop_rule: Optional[Literal["beta", "margin"]] = None
    stop_confidence: Optional[float] = Field(None, ge=0.5, lt=1, allow_inf_nan=False)
    stop_margin: Optional[float] = Field(None, gt=0, allow_inf_nan=False)
    n: Optional[int] = Field(None, ge=1)
    backend: Optional[Literal["llamacpp", "embedded", "local", "openai"]] = None
    model: Optional[str] = None
    #: one endpoint, or a list of replicas of the same model
    base_url: Optional[str | list[Annotated[str, StringConstraints(pattern=r"^https?://")]]] = Field(None, pattern=r"^https?://")
    executor: Optional[Literal["local", "ray"]] = None
    ray_address: Optional[str] = None
    api_key_env: Optional[str] = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    concurrency: Optional[int] = Field(None, ge=1)
    max_n: Optional[int] = Field(None, ge=1)
    max_retries: Optional[int] = Field(None, ge=0)
    timeout: Optional[float] = Field(None, gt=0, allow_inf_nan=False)
    api_kind: Optional[Literal["chat", "completions"]] = Field(None, alias="api")
    max_tokens: Optional[int] = Field(None, ge=1)
    temperature: Optional[float] = Field(None, ge=0, le=2, allow_inf_nan=False)
    top_p: Optional[float] = Field(None, gt=0, le=1, allow_inf_nan=False)
    seed: Optional[int] = None
    store: Optional[str] = None
    prices: Optional[str] = None
    input_price: Optional[float] = Field(None, ge=0, allow_inf_nan=False)
    output_price: Optional[float] = Field(None, ge=0, allow_inf_nan=False)
    usd_per_hour: Optional[float] = Field(None, ge=0, allow_inf_nan=False)
    budget_usd: Optional[float] = Field(None, ge=0, allow_inf_nan=False)
    budget_tokens: Optional[int] = Field(None, ge=0)
    budget_usd_per_problem: Optional[float] = Field(None, ge=0, allow_inf_nan=False)
    budget_tokens_per_problem: Optional[int] = Field(None, ge=0)


_FLOAT_FIELDS = {name for name, f in RunConfig.model_fields.items() if "float" in str(f.annotation)}


def load_run_config(path: str | Path) -> dict[str, Any]:
    """The flags a config file sets, by CLI parameter name; a `UserError` names file:line and key."""
    path = Path(path)
    text, data = read_toml(path, "--config")
    keys: dict[str, str] = {}  # normalised name -> key as written
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name == "api_kind":
            name = "api_kinds"  # not a flag name: reject it as unknown below
        if name in keys:
            raise UserError(f"{path}:{line_of(text, key) or 1}: key {key!r} repeats {keys[name]!r}")
        keys[name] = key
        if name in _FLOAT_FIELDS and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # `budget-usd = 2` means 2.0
        values["api" if name == "api" else name] = value
    try:
        config = RunConfig.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else ""
        key = keys.get(name, name)
        given = values.get(name)
        shown = repr(given) if len(repr(given)) <= 60 else repr(given)[:57] + "..."
        if err["type"] == "extra_forbidden":
            known = ", ".join(sorted((f.alias or n).replace("_", "-") for n, f in RunConfig.model_fields.items()))
            raise UserError(f"{path}:{line_of(text, key) or 1}: unknown key {key!r} (expected flags of infereco run: {known})") from None
        raise UserError(f"{path}:{line_of(text, key) or 1}: key {key!r}: {err['msg']} (got {shown})") from None
    return config.model_dump(exclude_none=True, by_alias=False)


def blame(exc: UserError, path: str | Path, from_file: set[str]) -> UserError:
    """An error about a flag the config file set, restated at the file's line for that key.

    Values are checked where they are used (a strategy name by the strategies, a task by its
    loader); when such a check names a flag that came from the file, the user needs the file's line.
    """
    message = str(exc)
    for name in sorted(from_file):
        flag = "--api" if name == "api_kind" else "--" + name.replace("_", "-")
        if re.search(re.escape(flag) + r"(?![\w-])", message):
            text = Path(path).read_text(encoding="utf-8")
            for key in (name, name.replace("_", "-"), "api" if name == "api_kind" else name):
                line = line_of(text, key)
                if line is not None:
                    break
            return type(exc)(f"{path}:{line or 1}: key {key!r}: {message}")
    return exc


__all__ = ["RunConfig", "load_run_config", "blame"]
