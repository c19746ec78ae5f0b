"""Tasks: what the model is asked, and how its answers are graded.

`get_task` is the one entry point the CLI and stored runs use, so that a task's `spec` can always
be turned back into the same task with `get_task(**spec)`.
"""

from __future__ import annotations

from pathlib import Path

from infereco.errors import UserError
from infereco.tasks.arithmetic import arithmetic_task
from infereco.tasks.base import DEFAULT_SYSTEM_PROMPT, MATH_SYSTEM_PROMPT, Task
from infereco.tasks.files import load_csv_task, load_jsonl_task

__all__ = [
    "Task",
    "DEFAULT_SYSTEM_PROMPT",
    "MATH_SYSTEM_PROMPT",
    "arithmetic_task",
    "load_jsonl_task",
    "load_csv_task",
    "get_task",
    "task_names",
]

_DEFAULT_ARITHMETIC_LIMIT = 30

_DESCRIPTIONS: dict[str, str] = {
    "arithmetic": "generated integer arithmetic, --level 1..5 (sums to multi-step word problems)",
    "gsm8k": "GSM8K-style JSONL/CSV from --data PATH ('question', 'answer' ending in '#### N')",
    "math": "MATH-style JSONL from --data PATH ('problem', 'solution' with \\boxed{})",
    "jsonl": "JSONL from --data PATH, GSM8K or MATH format detected from the first row",
    "PATH.jsonl|PATH.csv": "a file given directly as the task name, format detected",
}


def _load_file(path: str | Path, fmt: str, limit: int | None) -> Task:
    if str(path).lower().endswith(".csv"):
        if fmt == "math":
            raise UserError(f"--task math needs a .jsonl file, got {path}")
        return load_csv_task(path, limit=limit)
    return load_jsonl_task(path, fmt=fmt, limit=limit)


def get_task(
    name: str,
    *,
    level: int = 1,
    limit: int | None = None,
    seed: int = 0,
    path: str | Path | None = None,
) -> Task:
    """The task called `name`; file tasks read `path`. Bad names or flags raise `UserError`."""
    if name == "arithmetic":
        if limit is None:
            limit = _DEFAULT_ARITHMETIC_LIMIT
        return arithmetic_task(level=level, limit=limit, seed=seed)
    if name in ("gsm8k", "math", "jsonl"):
        if path is None:
            raise UserError(f"--task {name} needs --data PATH")
        return _load_file(path, "auto" if name == "jsonl" else name, limit)
    if name.lower().endswith((".jsonl", ".csv")):
        return _load_file(name, "auto", limit)
    raise UserError(
        f"--task {name!r} is unknown (expected one of: arithmetic, gsm8k, math, jsonl, "
        "or a path ending in .jsonl/.csv)"
    )


def task_names() -> list[str]:
    """One line per task kind, `name: description`, for the `tasks` command."""
    return [f"{name}: {text}" for name, text in _DESCRIPTIONS.items()]
