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

Keys are flag names without `--` (`max-tokens` or `max_tokens`): the fields of the run description
(`runconfig.RunConfig`), validated by it; a flag given on the command line wins over the file.
Every problem is one line naming the file, the line and the key, like any other
input. The API key is never a config value: only the name of the variable that holds it
(`api-key-env`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from infereco.errors import UserError
from infereco.runconfig import RunConfig, flag
from infereco.tomlfile import line_of, read_toml


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
        config = RunConfig.model_validate(values, strict=True)
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
    return {k: v for k, v in config.model_dump(include=config.model_fields_set, by_alias=False).items() if v is not None}


def blame(exc: UserError, path: str | Path, from_file: set[str]) -> UserError:
    """An error about a flag the config file set, restated at the file's line for that key.

    Values are checked where they are used (a strategy name by the strategies, a task by its
    loader); when such a check names a flag that came from the file, the user needs the file's line.
    """
    message = str(exc)
    named = []  # (where the message names it, field) for every key the file set
    for name in from_file:
        found = re.search(re.escape(flag(name)) + r"(?![\w-])", message)
        if found:
            named.append((found.start(), name))
    if not named:
        return exc
    name = min(named)[1]  # the flag the message is about comes first ("--submit applies to ...")
    text = Path(path).read_text(encoding="utf-8")
    for key in (name, name.replace("_", "-"), "api" if name == "api_kind" else name):
        line = line_of(text, key)
        if line is not None:
            break
    return type(exc)(f"{path}:{line or 1}: key {key!r}: {message}")


__all__ = ["RunConfig", "load_run_config", "blame"]
