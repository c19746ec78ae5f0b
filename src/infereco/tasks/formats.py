"""Task formats: how a JSONL row becomes a Problem, and the checker and prompt presets of each.

One registry, `FORMATS`; `detect` picks a format from a file's first row by its keys (the
`--format` flag picks one explicitly). A new format is one `register(Format(...))`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from infereco.checkers import Checker
from infereco.errors import UserError
from infereco.problem import Problem

#: (row, "path:line", fallback id) -> Problem
RowParser = Callable[[dict[str, Any], str, str], Problem]


@dataclass(frozen=True)
class Format:
    name: str
    description: str
    #: a first row is of this format when it has all of these keys
    keys: tuple[str, ...]
    parse: RowParser
    checker: Callable[..., Checker]
    system_prompt: str
    prompt_template: str = "{question}"
    step_delimiter: str = "\n\n"
    #: what `--format NAME` expects of a row, for error messages
    expected: str = ""
    #: the task options its grading uses (`tasks.options`: SANDBOX, GRADER); a task of these rows
    #: given any other grading option refuses it by name
    options: tuple[str, ...] = ()


FORMATS: dict[str, Format] = {}
#: detection order: the most specific keys first
_ORDER: list[str] = []


def register(fmt: Format, *, before: str | None = None) -> None:
    FORMATS[fmt.name] = fmt
    if fmt.name in _ORDER:
        _ORDER.remove(fmt.name)
    _ORDER.insert(_ORDER.index(before) if before in _ORDER else len(_ORDER), fmt.name)


def detect(row: dict[str, Any], where: str) -> Format:
    for name in _ORDER:
        fmt = FORMATS[name]
        if all(k in row for k in fmt.keys):
            return fmt
    keys = ", ".join(sorted(map(str, row))) or "none"
    known = "; ".join(f"{' + '.join(repr(k) for k in FORMATS[n].keys)} for {n}" for n in _ORDER)
    raise UserError(f"{where}: cannot tell the format from keys [{keys}] (expected {known}; or --format NAME)")


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise UserError(f"--format {name!r} is unknown (expected one of: auto, {', '.join(FORMATS)})") from None


def _register_builtins() -> None:
    from infereco.tasks.choice import CHOICE_SYSTEM_PROMPT, CHOICE_TEMPLATE, ChoiceChecker, choice_problem
    from infereco.tasks.code import EVALPLUS_TEMPLATE, CodeChecker, humaneval_problem, mbpp_problem
    from infereco.tasks.freeform import FREEFORM_SYSTEM_PROMPT, JudgeChecker, freeform_problem
    from infereco.tasks.options import GRADER, SANDBOX

    register(Format(
        "humaneval", "HumanEval-style code: 'task_id', 'prompt', 'test', 'entry_point'; tests run in the sandbox",
        ("task_id", "prompt", "test", "entry_point"), lambda row, where, _id: humaneval_problem(row, where),
        CodeChecker, "", EVALPLUS_TEMPLATE, expected="'task_id', 'prompt', 'test', 'entry_point'", options=SANDBOX,
    ))  # fmt: skip
    register(Format(
        "mbpp", "MBPP-style code: 'text' (or 'prompt'), 'test_list', optional 'test_setup_code'",
        ("test_list",), mbpp_problem, CodeChecker, "", EVALPLUS_TEMPLATE, expected="'text', 'test_list'", options=SANDBOX,
    ))  # fmt: skip
    register(Format(
        "choice", "multiple choice: 'question', 'choices' (list), 'answer' (letter, index or choice text)",
        ("question", "choices"), choice_problem, ChoiceChecker, CHOICE_SYSTEM_PROMPT, CHOICE_TEMPLATE,
        expected="'question', 'choices', 'answer'",
    ))  # fmt: skip
    register(Format(
        "freeform", "free-form answers graded by a judge model: 'question', 'reference' (or 'answer' with --format)",
        ("question", "reference"), freeform_problem, JudgeChecker, FREEFORM_SYSTEM_PROMPT,
        expected="'question', 'reference'", options=GRADER,
    ))  # fmt: skip


_register_builtins()

__all__ = ["Format", "FORMATS", "register", "detect", "get_format"]
