"""Tasks that only the store can rebuild: a `Task` built in Python, resumed later.

`infereco.run(task=Task(...))` records the task's problems with the run (as every run does) and a
spec naming the checker, the system prompt and the template; `--resume` rebuilds the same task
from those stored problems. A checker is rebuilt from its registered name and `describe()`
options; a checker of the caller's own making cannot be, and resuming it says so.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from infereco.checkers import CHECKER_NAMES, Checker, get_checker
from infereco.errors import UserError
from infereco.problem import Problem
from infereco.tasks.base import Task


def _checker_spec(checker: Checker) -> dict[str, Any] | None:
    describe = getattr(checker, "describe", None)
    if callable(describe):
        return dict(describe())
    if checker.name in CHECKER_NAMES and type(get_checker(checker.name)) is type(checker):
        return {"name": checker.name}
    return None


def _rebuild_checker(spec: dict[str, Any] | None) -> Checker:
    from infereco.tasks.choice import ChoiceChecker
    from infereco.tasks.code import CodeChecker
    from infereco.tasks.freeform import JudgeChecker

    if spec is None:
        raise UserError("--resume: this run's task was built in Python with a checker of its own; run it again from Python")
    options = {k: v for k, v in spec.items() if k != "name"}
    kinds: dict[str, Any] = {"code-tests": CodeChecker, "choice": ChoiceChecker, "judge": JudgeChecker}
    if spec["name"] in kinds:
        return kinds[spec["name"]](**options)  # type: ignore[no-any-return]
    return get_checker(spec["name"])


def resumable(task: Task) -> Task:
    """`task` itself when `get_task(**task.spec)` rebuilds it exactly; else the same task with a
    "stored" spec that `stored_task` turns back into it from the run's stored problems."""
    from infereco.tasks import get_task

    try:
        if get_task(**task.spec).digest() == task.digest():
            return task
    except Exception:  # noqa: BLE001 - any spec that does not rebuild is simply not rebuildable
        pass
    spec = {
        "name": "stored", "label": task.name, "checker": _checker_spec(task.checker),
        "system_prompt": task.system_prompt, "prompt_template": task.prompt_template,
        "step_delimiter": task.step_delimiter,
    }  # fmt: skip
    return replace(task, spec=spec)


def stored_task(spec: dict[str, Any], problems: list[Problem]) -> Task:
    """The task of a "stored" spec, from the problems the run recorded."""
    if not problems:
        raise UserError("--resume: the run recorded no problems to rebuild its task from")
    return Task(
        name=str(spec.get("label") or "stored"), problems=tuple(problems), checker=_rebuild_checker(spec.get("checker")),
        system_prompt=str(spec.get("system_prompt", "")), prompt_template=str(spec.get("prompt_template", "{question}")),
        step_delimiter=str(spec.get("step_delimiter", "\n\n")), spec=dict(spec),
    )  # fmt: skip


__all__ = ["resumable", "stored_task"]
