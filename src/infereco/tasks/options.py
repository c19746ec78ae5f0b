"""Which task options each task takes: declared where the task is registered, refused by name elsewhere.

The run description (`runconfig.RunConfig`) has one set of task fields for every task, but each
task uses some of them only: `--level` means something for generated arithmetic and nothing for
HumanEval, `--grader-model` only for answers graded by a model. An option the task cannot use would
be dropped silently, and the run would not be the experiment the user asked for; so, as with a
strategy's options (`strategies.options`), it is refused in one line naming the flag and the tasks
that do take it, before anything is built, priced or sent.

What a task takes is declared by registration:
- a task name (`tasks.registry.TaskFormat`) declares its own `options` (arithmetic: `GENERATED`),
  reads `--data PATH` when it `needs_data`, and names the format of its rows (`rows`);
- a row format (`tasks.formats.Format`) declares the options its grading uses (`SANDBOX`, `GRADER`);
- a file whose rows are detected (`rows="auto"`: `--task jsonl --data F`, `--task F.jsonl`) takes
  `--format`, and the options of the format named by `--format`, or else of the format its first row
  is detected as (checked again once the file is read, still before anything is sent).

Only options the user set are checked (a default says nothing), and never a stored run's description:
what a run was made with is resumed as it was, even if it carries an option a later version refuses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from infereco.errors import UserError

#: every task takes these: which problems (the first N) and how they are asked
EVERY_TASK = ("limit", "system_prompt", "prompt_template")
#: generated problems (arithmetic): their difficulty and the generator's seed
GENERATED = ("level", "task_seed")
#: read from `--data PATH` (a task name whose entry `needs_data`)
DATA = ("data",)
#: a file whose rows' format is detected, or named with `--format`
FILE_FORMAT = ("task_format",)
#: code run in the sandbox
SANDBOX = ("sandbox_packages",)
#: answers graded by a model (the "grader" role)
GRADER = ("grader_model", "grader_base_url", "grader_prompt")
#: every task option of the run description (besides `task` itself), in the order flags are listed
TASK_OPTIONS = ("level", "limit", "data", "task_seed", "task_format", "system_prompt", "prompt_template",
                "sandbox_packages", "grader_model", "grader_base_url", "grader_prompt")  # fmt: skip

#: what a task's loader reads to make its problems (a `Task` built in Python has its problems already)
_LOADERS = ("limit",) + GENERATED + DATA + FILE_FORMAT

#: `TaskFormat.rows` of a file whose rows' format is detected from its first row (or `--format`)
DETECTED = "auto"
#: row formats `files.py` reads itself (not in `tasks.formats.FORMATS`): they take no options of their own
_PLAIN_ROWS = ("gsm8k", "math")


def row_options(row_format: str | None) -> tuple[str, ...]:
    """The options a row format's grading uses (`tasks.formats.Format.options`); () for none or an unknown one."""
    from infereco.tasks.formats import FORMATS

    found = FORMATS.get(row_format) if row_format else None
    return found.options if found is not None else ()


def own_options(fmt: Any) -> set[str]:
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


def takes(fmt: Any, row_format: str | None = None) -> set[str]:
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
    from infereco.tasks import registry
    from infereco.tasks.formats import FORMATS

    tasks = [f.shown_as or f.name for f in registry.formats() if name in own_options(f)]
    rows = [f.name for f in FORMATS.values() if name in f.options]
    text = f"--task {', '.join(tasks)}" if tasks else "no task"
    return text + (f" and files of {'/'.join(rows)} rows" if rows else "")


def check(task: str, given: Mapping[str, Any] | Iterable[str], *, task_format: str | None = None,
          rows: str | None = None) -> None:  # fmt: skip
    """Refuse the first of the `given` task options that `task` does not take (one line, by flag).

    `task_format`: the `--format` given, if any; `rows`: the format a detected file's rows were
    read as (after loading). A task name no registered task has is left to its loader to refuse
    (its message lists the tasks), as is an unknown `--format`.
    """
    from infereco.runconfig import flag
    from infereco.tasks import registry

    try:
        fmt = registry.resolve(task)
    except UserError:
        return
    if task_format not in (None, DETECTED) and fmt.rows == DETECTED:
        from infereco.tasks.formats import FORMATS

        if task_format not in FORMATS and task_format not in _PLAIN_ROWS:
            return  # the loader names the unknown format and lists the known ones
    allowed = takes(fmt, rows or task_format)
    for name in (n for n in TASK_OPTIONS if n in given and n not in allowed):
        shown = f"--task {task}"
        if fmt.rows == DETECTED and (rows or task_format) not in (None, DETECTED):
            shown += f" ({rows or task_format} rows)"
        hint = " (the file given as --task is the data)" if name == "data" and fmt.suffixes else ""
        raise UserError(f"{flag(name)} applies to {takers(name)} only; {shown} does not take it{hint}")


def check_task_object(name: str, given: Mapping[str, Any] | Iterable[str]) -> None:
    """Refuse a loader's option with a `Task` built in Python: its problems are given, not generated or read."""
    from infereco.runconfig import flag

    for option in (n for n in TASK_OPTIONS if n in _LOADERS and n in given):
        raise UserError(f"{flag(option)} applies to a task given by name or file; the Task {name!r} brings its own problems")


__all__ = [
    "DATA", "DETECTED", "EVERY_TASK", "FILE_FORMAT", "GENERATED", "GRADER", "SANDBOX", "TASK_OPTIONS", "check",
    "check_task_object", "own_options", "row_options", "takers", "takes",
]  # fmt: skip
