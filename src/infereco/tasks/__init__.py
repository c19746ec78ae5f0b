"""Tasks: what the model is asked, and how its answers are graded.

`get_task` is the one entry point the CLI and stored runs use, so that a task's `spec` can always
be turned back into the same task with `get_task(**spec)`.
"""

from __future__ import annotations

from pathlib import Path

from infereco.errors import UserError
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
    "customise",
    "task_names",
]

def get_task(
    name: str,
    *,
    level: int = 1,
    limit: int | None = None,
    seed: int = 0,
    path: str | Path | None = None,
    format: str | None = None,
    system_prompt: str | None = None,
    prompt_template: str | None = None,
    packages: str | None = None,
    grader_prompt: str | None = None,
) -> Task:
    """The task called `name` (a registered format, or a file by its suffix); file tasks read `path`.

    Bad names or flags raise `UserError`. Formats are in `tasks.registry` (task names) and
    `tasks.formats` (the rows of a file). `format` forces a file's format (else detected from its
    first row); `system_prompt` and `prompt_template` replace the format's presets; `packages` is a
    code task's sandbox policy and `grader_prompt` a free-form task's question to its grader. Every
    option that is set is kept in the task's `spec`, so `get_task(**task.spec)` rebuilds it.
    """
    if format not in (None, "auto") and (name in ("jsonl", "file") or name.lower().endswith((".jsonl", ".csv"))):
        source = path if path is not None else name
        if source in ("jsonl", "file"):
            raise UserError(f"--task {name} needs --data PATH")
        if str(source).lower().endswith(".csv"):
            raise UserError(f"--format {format} needs a .jsonl file, got {source}")
        task = load_jsonl_task(source, fmt=format, limit=limit)  # type: ignore[arg-type]
    else:
        task = registry.build(name, level=level, limit=limit, seed=seed, path=path)
    return customise(task, system_prompt=system_prompt, prompt_template=prompt_template, packages=packages,
                     grader_prompt=grader_prompt, format=format)  # fmt: skip


def customise(
    task: Task,
    *,
    system_prompt: str | None = None,
    prompt_template: str | None = None,
    packages: str | None = None,
    grader_prompt: str | None = None,
    format: str | None = None,
) -> Task:
    """`task` with the prompt and grading options that are set; they are recorded in its spec."""
    from dataclasses import replace

    from infereco.tasks.code import CodeChecker
    from infereco.tasks.freeform import JudgeChecker, check_grader_prompt
    from infereco.tasks.prompts import check_template

    spec = dict(task.spec)
    changes: dict[str, object] = {}
    if format is not None and format != "auto":
        spec["format"] = format
    if system_prompt is not None:
        changes["system_prompt"] = spec["system_prompt"] = system_prompt
    if prompt_template is not None:
        check_template(prompt_template, task.problems)
        changes["prompt_template"] = spec["prompt_template"] = prompt_template
    if packages is not None:
        if not isinstance(task.checker, CodeChecker):
            raise UserError(f"--sandbox-packages applies to code tasks only; {task.name} is graded by {task.checker.name}")
        changes["checker"] = replace(task.checker, packages=packages)
        spec["packages"] = packages
    if grader_prompt is not None:
        if not isinstance(task.checker, JudgeChecker):
            raise UserError(f"--grader-prompt applies to free-form tasks only; {task.name} is graded by {task.checker.name}")
        check_grader_prompt(grader_prompt)
        changes["checker"] = replace(task.checker, prompt=grader_prompt)
        spec["grader_prompt"] = grader_prompt
    return replace(task, spec=spec, **changes) if spec != task.spec or changes else task  # type: ignore[arg-type]


def task_names() -> list[str]:
    """One line per task kind, `name: description`, for the `tasks` command."""
    return [f"{f.shown_as or f.name}: {f.description}" for f in registry.formats()]
