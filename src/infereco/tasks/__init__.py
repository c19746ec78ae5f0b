"""Tasks: what the model is asked, and how its answers are graded.

`get_task` is the one entry point the CLI and stored runs use, so that a task's `spec` can always
be turned back into the same task with `get_task(**spec)`.
"""

from __future__ import annotations

from pathlib import Path

from infereco.tasks import registry
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

def get_task(
    name: str,
    *,
    level: int = 1,
    limit: int | None = None,
    seed: int = 0,
    path: str | Path | None = None,
) -> Task:
    """The task called `name` (a registered format, or a file by its suffix); file tasks read `path`.

    Bad names or flags raise `UserError`. Formats are in `tasks.registry`.
    """
    return registry.build(name, level=level, limit=limit, seed=seed, path=path)


def task_names() -> list[str]:
    """One line per task kind, `name: description`, for the `tasks` command."""
    return [f"{f.shown_as or f.name}: {f.description}" for f in registry.formats()]
