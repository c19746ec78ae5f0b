"""Prompts: the system prompt and the user-message template a task renders for each problem.

A template names fields in braces: `{question}` (the problem's prompt) and whatever else the
format gives its problems (`{choices}` and `{letters}` for multiple choice). Literal braces are
written `{{` and `}}`. Both the system prompt and the template are part of a run's identity (via
`content_digest`), so changing either starts a new run instead of reusing the old samples.
"""

from __future__ import annotations

import hashlib
import json
import string
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infereco.errors import UserError
from infereco.problem import Problem

if TYPE_CHECKING:
    from infereco.tasks.base import Task


def fields(problem: Problem) -> dict[str, str]:
    """The values a template may use for `problem`."""
    extra = problem.metadata.get("fields") or {}
    return {"question": problem.prompt.strip(), **{str(k): str(v) for k, v in extra.items()}}


def template_fields(template: str, flag: str = "--prompt-template") -> list[str]:
    """The field names `template` uses; a malformed template is a `UserError` naming `flag`."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise UserError(f"{flag}: {exc} (write literal braces as {{{{ and }}}})") from None
    names = []
    for _, name, spec, conv in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise UserError(f"{flag}: field {{{name}}} is not a plain name (expected e.g. {{question}})")
        if spec or conv:
            raise UserError(f"{flag}: field {{{name}}} may not have a format spec or conversion")
        names.append(name)
    return names


def check_template(template: str, problems: tuple[Problem, ...] | list[Problem], flag: str = "--prompt-template") -> None:
    """Refuse a template that names a field the problems do not have, before anything is paid."""
    names = template_fields(template, flag)
    if not problems:
        return
    have = fields(problems[0])
    missing = [n for n in names if n not in have]
    if missing:
        raise UserError(
            f"{flag}: unknown field {{{missing[0]}}} (this task's problems have: "
            + ", ".join("{" + k + "}" for k in have) + ")"
        )


def render(template: str, problem: Problem) -> str:
    return template.format_map(fields(problem))


def read_prompt_arg(value: str | None, flag: str) -> str | None:
    """`TEXT` as is, or the contents of FILE for `@FILE`; None stays None."""
    if value is None or not value.startswith("@"):
        return value
    path = Path(value[1:]).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{flag} {value}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{flag} {value}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None


def _checker_identity(task: Task) -> Any:
    describe = getattr(task.checker, "describe", None)
    return describe() if callable(describe) else {"name": task.checker.name, "type": type(task.checker).__name__}


def content_digest(task: Task) -> str:
    """sha256 over the problems' content, the rendered prompts and the checker (see `Task.digest`)."""
    h = hashlib.sha256()
    h.update(json.dumps({"checker": _checker_identity(task), "system": task.system_prompt,
                         "template": task.prompt_template}, sort_keys=True, default=str).encode())  # fmt: skip
    for p in task.problems:
        row = {"id": p.id, "answer": p.answer, "messages": task.messages(p)}
        h.update(json.dumps(row, sort_keys=True, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def problem_digests(task: Task) -> dict[str, str]:
    """Per problem, a digest of what it asks and expects: names the rows that changed."""
    return {
        p.id: hashlib.sha256(json.dumps({"answer": p.answer, "messages": task.messages(p)}, sort_keys=True).encode()).hexdigest()[:16]
        for p in task.problems
    }


__all__ = ["fields", "render", "check_template", "template_fields", "read_prompt_arg", "content_digest", "problem_digests"]
