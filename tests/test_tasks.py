"""Tasks: generated arithmetic (determinism, correctness, difficulty) and file loading errors."""

from __future__ import annotations

import ast
import json
import re
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infereco.checkers import MathChecker, NumericChecker
from infereco.errors import UserError
from infereco.tasks import (
    DEFAULT_SYSTEM_PROMPT,
    Task,
    arithmetic_task,
    get_task,
    load_csv_task,
    load_jsonl_task,
    task_names,
)

# ------------------------------------------------------------------ an independent evaluator


def _evaluate(expression: str) -> Fraction:
    """Evaluate + - * / over integer literals exactly; any inexact division fails the test."""

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return Fraction(node.value)
        if isinstance(node, ast.BinOp):
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            if isinstance(node.op, ast.Div):
                result = left / right
                assert result.denominator == 1, f"inexact division in {expression}"
                return result
        raise AssertionError(f"unexpected syntax in {expression!r}")

    return walk(ast.parse(expression, mode="eval"))


def _operator_count(expression: str) -> int:
    return len(re.findall(r" [-+*/] ", expression))


# ------------------------------------------------------------------ arithmetic


@pytest.mark.parametrize("level", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_generated_answers_are_correct_nonnegative_integers(level: int, seed: int) -> None:
    task = arithmetic_task(level=level, limit=40, seed=seed)
    assert len(task.problems) == 40
    for p in task.problems:
        value = _evaluate(p.metadata["expression"])
        assert value.denominator == 1 and value >= 0, p
        assert p.answer == str(int(value)), p
        assert p.metadata["level"] == level
        assert p.metadata["steps"] == _operator_count(p.metadata["expression"]), p


@pytest.mark.parametrize("level", [3, 4, 5])
def test_word_problem_prompts_state_every_number_of_the_expression(level: int) -> None:
    """Guards against the text and the hidden expression drifting apart."""
    words = {2: ("double", "twice"), 3: ("triple",)}
    for p in arithmetic_task(level=level, limit=60, seed=3).problems:
        shown = set(re.findall(r"\d+", p.prompt))
        for literal in re.findall(r"\d+", p.metadata["expression"]):
            assert literal in shown or any(w in p.prompt for w in words.get(int(literal), ())), p
        assert p.prompt.rstrip().endswith("?")


def test_level_1_and_2_have_the_promised_shapes() -> None:
    for p in arithmetic_task(level=1, limit=50).problems:
        a, b = map(int, re.findall(r"\d+", p.prompt))
        assert 10 <= a <= 99 and 10 <= b <= 99 and "+" in p.prompt
    kinds = set()
    for p in arithmetic_task(level=2, limit=60).problems:
        a, b = map(int, re.findall(r"\d+", p.prompt))
        if "×" in p.prompt:
            kinds.add("product")
            assert 10 <= a <= 99 and 2 <= b <= 9
        else:
            kinds.add("sum" if "+" in p.prompt else "difference")
            assert 100 <= a <= 999 and 100 <= b <= 999
    assert kinds == {"sum", "difference", "product"}


def test_levels_get_harder() -> None:
    steps = {
        lvl: [p.metadata["steps"] for p in arithmetic_task(level=lvl, limit=50, seed=7).problems]
        for lvl in range(1, 6)
    }
    assert set(steps[1]) == set(steps[2]) == {1}
    assert set(steps[3]) == {2}
    assert set(steps[4]) == {3}
    assert set(steps[5]) <= {3, 4} and 4 in steps[5]
    # level 2 numbers are bigger than level 1 numbers
    sizes = {
        lvl: sum(int(p.answer) for p in arithmetic_task(level=lvl, limit=50).problems)
        for lvl in (1, 2)
    }
    assert sizes[2] > sizes[1]


def test_level_5_mixes_multiplication_and_exact_division() -> None:
    for p in arithmetic_task(level=5, limit=50, seed=2).problems:
        assert "/" in p.metadata["expression"] and "*" in p.metadata["expression"], p


def test_generation_is_deterministic_and_seed_dependent() -> None:
    a = arithmetic_task(level=3, limit=20, seed=0)
    b = arithmetic_task(level=3, limit=20, seed=0)
    c = arithmetic_task(level=3, limit=20, seed=1)
    assert [(p.prompt, p.answer) for p in a.problems] == [(p.prompt, p.answer) for p in b.problems]
    assert [p.prompt for p in a.problems] != [p.prompt for p in c.problems]


def test_golden_first_problem_is_stable_across_runs() -> None:
    """A regression pin: changing the generator silently would invalidate stored runs."""
    first = arithmetic_task(level=1, limit=1, seed=0).problems[0]
    assert (first.prompt, first.answer) == ("What is 86 + 32?", "118")


def test_smaller_limit_is_a_prefix() -> None:
    short = arithmetic_task(level=4, limit=5, seed=9).problems
    long = arithmetic_task(level=4, limit=25, seed=9).problems
    assert short == long[:5]


def test_problems_are_diverse_and_ids_unique() -> None:
    task = arithmetic_task(level=4, limit=60, seed=0)
    prompts = [p.prompt for p in task.problems]
    assert len(set(prompts)) == len(prompts)
    ids = [p.id for p in task.problems]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"arith-L4-\d{4}", i) for i in ids)
    assert len({p.prompt.split()[0] for p in task.problems}) >= 8  # many different names
    assert len({re.search(r"\d+ (\w+)", p.prompt).group(1) for p in task.problems}) >= 6  # objects


@settings(max_examples=25, deadline=None)
@given(level=st.integers(1, 5), seed=st.integers(0, 10**6))
def test_checker_accepts_the_reference_answer(level: int, seed: int) -> None:
    task = arithmetic_task(level=level, limit=3, seed=seed)
    for p in task.problems:
        out = f"Let me compute step by step.\nAnswer: {p.answer}"
        assert task.checker.is_correct(task.checker.extract(out), p.answer)
        assert _evaluate(p.metadata["expression"]) == int(p.answer)


@pytest.mark.parametrize(("kwargs", "flag"), [
    ({"level": 7}, "--level must be 1..5, got 7"),
    ({"level": 0}, "--level must be 1..5, got 0"),
    ({"limit": 0}, "--limit"),
    ({"limit": -3}, "--limit"),
])
def test_arithmetic_bad_flags(kwargs: dict, flag: str) -> None:
    with pytest.raises(UserError, match=re.escape(flag)):
        arithmetic_task(**kwargs)


def test_task_messages_and_spec() -> None:
    task = arithmetic_task(level=2, limit=4, seed=5)
    msgs = task.messages(task.problems[0])
    assert msgs == [
        {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
        {"role": "user", "content": task.problems[0].prompt},
    ]
    assert "Answer:" in DEFAULT_SYSTEM_PROMPT and len(DEFAULT_SYSTEM_PROMPT) < 400  # every prompt token is paid
    assert task.spec == {"name": "arithmetic", "level": 2, "limit": 4, "seed": 5}
    assert json.loads(json.dumps(task.spec)) == task.spec
    assert get_task(**task.spec).problems == task.problems
    assert isinstance(task.checker, NumericChecker)


# ------------------------------------------------------------------ files


def _write_jsonl(path: Path, rows: list[object | str]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GSM = [
    {"question": "Ann has 3 pens and buys 2. How many?", "answer": "3 + 2 = <<3+2=5>>5\n#### 5"},
    "",
    {"question": "A farm sells 1,200 eggs a day. How many in 2 days?",
     "answer": "1200*2=2400\n#### 2,400"},
    {"id": "custom-7", "question": "What is 10 - 15?", "answer": "#### -5"},
]


def test_load_gsm8k_jsonl(tmp_path: Path) -> None:
    task = load_jsonl_task(_write_jsonl(tmp_path / "gsm.jsonl", GSM))
    assert isinstance(task.checker, NumericChecker)
    assert [p.answer for p in task.problems] == ["5", "2400", "-5"]
    assert [p.id for p in task.problems] == ["gsm-1", "gsm-3", "custom-7"]  # blank line 2 skipped
    assert task.problems[0].prompt.startswith("Ann has")
    got = task.checker.extract("... so 2,400 eggs.\nAnswer: 2400")
    assert task.checker.is_correct(got, task.problems[1].answer)


def test_load_math_jsonl(tmp_path: Path) -> None:
    rows = [
        {"problem": "Compute 1/2 + 0.", "solution": "So $\\boxed{\\frac{1}{2}}$.",
         "level": "Level 1"},
        {"unique_id": "test/algebra/1.json", "problem": "Simplify.",
         "solution": "\\boxed{\\sqrt{\\frac{a}{b}}}"},
        {"problem": "Answer field wins.", "solution": "\\boxed{wrong}", "answer": "7"},
    ]
    task = load_jsonl_task(_write_jsonl(tmp_path / "math.jsonl", rows))
    assert isinstance(task.checker, MathChecker)
    assert [p.answer for p in task.problems] == ["\\frac{1}{2}", "\\sqrt{\\frac{a}{b}}", "7"]
    assert task.problems[1].id == "test/algebra/1.json"
    assert task.problems[0].metadata["level"] == "Level 1"
    assert "boxed" in task.system_prompt
    assert task.checker.is_correct(task.checker.extract("so \\boxed{0.5}"), task.problems[0].answer)


def test_limit_truncates_and_spec_rebuilds(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "gsm.jsonl", GSM)
    task = get_task("jsonl", path=path, limit=2)
    assert [p.answer for p in task.problems] == ["5", "2400"]
    assert task.spec["name"] == "gsm8k"
    rebuilt = get_task(**task.spec)
    assert rebuilt.problems == task.problems and rebuilt.spec == task.spec


def test_limit_stops_before_bad_rows(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "gsm.jsonl", [GSM[0], "{not json"])
    assert len(load_jsonl_task(path, limit=1).problems) == 1


def _error(call, *args, **kwargs) -> str:
    with pytest.raises(UserError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize(("rows", "line", "needles"), [
    ([GSM[0], "{oops"], 2, ["invalid JSON", "expected"]),
    ([GSM[0], "[1, 2]"], 2, ["not a JSON object"]),
    ([GSM[0], {"question": "q?"}], 2, ["'answer'", "missing field"]),
    ([GSM[0], {"answer": "#### 3", "question": ""}], 2, ["'question'"]),
    ([GSM[0], "", {"question": "q?", "answer": "the answer is 4"}], 3, ["####"]),
    ([{"question": "q?", "answer": "#### four"}], 1, ["not a number"]),
    ([{"problem": "p", "solution": "no box here"}], 1, ["\\boxed{}", "'solution'"]),
    ([{"problem": "p"}], 1, ["missing field 'solution'"]),
    ([{"text": "?"}], 1, ["cannot tell the format", "text"]),
    ([{"id": "a", **GSM[0]}, {"id": "a", **GSM[0]}], 2, ["duplicate id"]),
])
def test_jsonl_errors_name_file_line_and_field(
    tmp_path: Path, rows: list, line: int, needles: list[str]
) -> None:
    path = _write_jsonl(tmp_path / "bad.jsonl", rows)
    message = _error(load_jsonl_task, path)
    assert message.startswith(f"{path}:{line}: "), message
    for needle in needles:
        assert needle in message, message


def test_forced_format_mismatch_names_missing_field(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "gsm.jsonl", GSM)
    assert "missing field 'problem'" in _error(load_jsonl_task, path, fmt="math")
    assert "missing field 'problem'" in _error(get_task, "math", path=path)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    assert "empty file" in _error(load_jsonl_task, empty)
    missing = tmp_path / "nope.jsonl"
    assert _error(load_jsonl_task, missing) == f"no such file: {missing}"
    assert _error(get_task, str(missing)) == f"no such file: {missing}"


def test_load_csv(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_text(
        'question,answer\n"What is 2+2?",4\n"Sum of 1,000 and 1?","1,001"\n'
        '"Multi\nline?","x #### 9"\n',
        encoding="utf-8",
    )
    task = get_task(str(path))
    assert [p.answer for p in task.problems] == ["4", "1001", "9"]
    assert task.problems[2].prompt == "Multi\nline?"
    assert get_task(**task.spec).problems == task.problems


def test_csv_errors(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_text("q,answer\nhi,1\n", encoding="utf-8")
    message = _error(load_csv_task, path)
    assert message.startswith(f"{path}:1: ") and "'question'" in message
    path.write_text("question,answer\nhi,1\nho,lots\n", encoding="utf-8")
    message = _error(load_csv_task, path)
    assert message.startswith(f"{path}:3: ") and "not a number" in message


def test_get_task_errors(tmp_path: Path) -> None:
    assert _error(get_task, "gsm8k") == "--task gsm8k needs --data PATH"
    message = _error(get_task, "squad")
    assert "'squad'" in message and "arithmetic" in message
    assert "--level must be 1..5, got 9" in _error(get_task, "arithmetic", level=9)


def test_get_task_arithmetic_defaults() -> None:
    task = get_task("arithmetic")
    assert isinstance(task, Task) and len(task.problems) == 30
    assert len(get_task("arithmetic", level=3, limit=5).problems) == 5


def test_task_names_describe_each_kind() -> None:
    names = task_names()
    for kind in ("arithmetic", "gsm8k", "math", "jsonl"):
        assert any(line.startswith(f"{kind}: ") for line in names)
    assert all("\n" not in line for line in names)
