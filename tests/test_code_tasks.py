"""HumanEval and MBPP through the full CLI path: canonical solutions pass, stubs fail, replies are
sanitized the way the field's harnesses do, and a code vote groups programs by behaviour."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from chatserver import chat_server
from infereco.sanitize import example_calls, sanitize
from infereco.tasks import get_task
from infereco.tasks.code import CodeChecker, humaneval_problem, humaneval_rows

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-specific")
ROWS = humaneval_rows()
BY_PROMPT = {row["prompt"].strip(): row for row in ROWS}


def _problem_of(messages: list[dict[str, str]]) -> dict[str, str]:
    shown = re.search(r"```\n(.*)\n```", messages[-1]["content"], re.DOTALL)
    assert shown is not None
    return BY_PROMPT[shown.group(1).strip()]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "infereco.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=1800)


def _run_humaneval(reply: object, store: Path) -> dict[str, object]:
    with chat_server(reply) as (url, received):  # type: ignore[arg-type]
        proc = _cli("run", "--task", "humaneval", "--backend", "openai", "--base-url", url, "--model", "m",
                    "--input-price", "0", "--output-price", "0", "--strategy", "repeated", "--n", "1",
                    "--concurrency", "8", "--store", str(store), "--json", cwd=store.parent)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert len(received) == 164 and all(len(b["messages"]) == 1 for b in received)  # EvalPlus: no system prompt
        return json.loads(proc.stdout)


def test_all_164_canonical_solutions_pass_and_stubs_fail_through_the_cli(tmp_path: Path) -> None:
    def canonical(messages: list[dict[str, str]], index: int, seed: int) -> str:
        row = _problem_of(messages)  # the way chat models answer: prose, a fence, the whole function
        return f"Here is the solution:\n```python\n{row['prompt']}{row['canonical_solution']}\n```\nIt works."

    def stub(messages: list[dict[str, str]], index: int, seed: int) -> str:
        row = _problem_of(messages)
        return f"```python\n{row['prompt']}    return None\n```"

    good = _run_humaneval(canonical, tmp_path / "good.db")
    assert good["summary"]["n_problems"] == 164 and good["summary"]["accuracy"]["mean"] == 1.0
    bad = _run_humaneval(stub, tmp_path / "bad.db")
    assert bad["summary"]["accuracy"]["mean"] == 0.0


def test_the_sanitizer() -> None:
    row = ROWS[10]  # make_palindrome, with a helper is_palindrome in its prompt
    reply = ("Sure!\n```\npython\ndef make_palindrome(string):\n    if is_palindrome(string):\n        return string\n"
             "    for i in range(len(string)):\n        if is_palindrome(string[i:]):\n"
             "            return string + string[:i][::-1]\n\nprint(make_palindrome('cat'))\n"
             "assert make_palindrome('x') == 'wrong'\nif __name__ == '__main__':\n    print('hi')\n```")
    program = sanitize(reply, row["entry_point"], row["prompt"])
    assert program is not None
    assert not program.startswith("python") and "assert" not in program and "print" not in program
    assert "def is_palindrome" in program  # the prompt's helper, prepended
    checker = CodeChecker()
    problem = humaneval_problem(row, "x")
    answer, ok = checker.grade_text(reply, problem.answer)
    assert ok and answer is not None and answer.startswith("behaviour:")
    # the prompt's imports come along; a reply cut off by max_tokens keeps what parses
    row0 = ROWS[0]
    body = "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n\ndef broken(:\n"
    fixed = sanitize(f"```python\n{body}", row0["entry_point"], row0["prompt"])
    assert fixed is not None and fixed.startswith("from typing import List") and "broken" not in fixed
    assert checker.grade_text(f"```python\n{body}", humaneval_problem(row0, "x").answer)[1]
    # a completion-style reply: only the function's body
    assert checker.grade_text("    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])",
                              humaneval_problem(row0, "x").answer)[1]  # fmt: skip
    assert sanitize("no code here at all, sorry") is None


def test_a_code_vote_groups_programs_by_behaviour_on_the_prompts_examples_only() -> None:
    row = ROWS[0]
    problem = humaneval_problem(row, "x")
    assert json.loads(problem.answer)["examples"] == example_calls(row["prompt"], row["entry_point"])
    assert all("has_close_elements(" in call for call in json.loads(problem.answer)["examples"])
    checker = CodeChecker()
    right_a = "def has_close_elements(numbers, threshold):\n    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i+1:])"
    right_b = ("def has_close_elements(numbers, threshold):\n    s = sorted(numbers)\n"
               "    return any(y - x < threshold for x, y in zip(s, s[1:]))")
    # right on the docstring's two examples, wrong on the hidden tests (it ignores the threshold's strictness)
    wrong_same = ("def has_close_elements(numbers, threshold):\n    if numbers == [1.0, 2.0, 3.0]:\n        return False\n"
                  "    if len(numbers) == 6:\n        return True\n    return False")
    wrong_diff = "def has_close_elements(numbers, threshold):\n    return True"
    graded = {name: checker.grade_text(f"```python\n{code}\n```", problem.answer)
              for name, code in [("a", right_a), ("b", right_b), ("same", wrong_same), ("diff", wrong_diff)]}  # fmt: skip
    assert graded["a"][0] == graded["b"][0] == graded["same"][0] != graded["diff"][0]  # grouping by examples only
    assert graded["a"][1] and graded["b"][1] and not graded["same"][1] and not graded["diff"][1]  # verdicts by the tests


def test_mbpp_rows(tmp_path: Path) -> None:
    data = tmp_path / "mbpp.jsonl"
    rows = [
        {"task_id": 2, "text": "Write a function to find the shared elements of two lists.",
         "test_list": ["assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))",
                       "assert set(similar_elements((1, 2, 3, 4),(5, 4, 3, 7))) == set((3, 4))"],
         "test_setup_code": ""},
        {"task_id": 3, "text": "Write a python function to identify non-prime numbers.",
         "test_list": ["assert is_not_prime(2) == False", "assert is_not_prime(10) == True"]},
    ]  # fmt: skip
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    task = get_task(str(data))
    assert task.spec["name"] == "mbpp" and isinstance(task.checker, CodeChecker)
    assert [p.id for p in task.problems] == ["Mbpp/2", "Mbpp/3"]
    assert "similar_elements((3, 4, 5, 6)" in task.messages(task.problems[0])[-1]["content"]  # one example test shown
    good = "```python\ndef is_not_prime(n):\n    return n < 2 or any(n % d == 0 for d in range(2, int(n ** 0.5) + 1))\n```"
    assert task.checker.grade_text(good, task.problems[1].answer)[1]  # type: ignore[attr-defined]
    assert not task.checker.grade_text("```python\ndef is_not_prime(n):\n    return False\n```", task.problems[1].answer)[1]  # type: ignore[attr-defined]


def test_humaneval_is_built_in_and_needs_no_download() -> None:
    task = get_task("humaneval")
    assert len(task) == 164 and task.system_prompt == "" and task.spec == {"name": "humaneval", "limit": None}
    message = task.messages(task.problems[0])
    assert message[0]["role"] == "user" and "self-contained Python script" in message[0]["content"]


@pytest.mark.model
def test_humaneval_on_the_embedded_model(tmp_path: Path) -> None:
    proc = _cli("run", "--task", "humaneval", "--limit", "2", "--n", "8", "--max-tokens", "96", "--store",
                str(tmp_path / "he.db"), "--json", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)["summary"]
    assert summary["n_problems"] == 2 and summary["n_samples"] == 8
    with sqlite3.connect(tmp_path / "he.db") as db:
        answers = [a for (a,) in db.execute("SELECT answer FROM samples")]
    assert len(answers) == 16 and any(a and a.startswith("behaviour:") for a in answers)
