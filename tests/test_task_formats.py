"""Task formats, prompts and a run that knows its data: detection, --format, templates, system
prompts, multiple choice, free-form graded by a judge model, the content digest in the run id,
and tasks built in Python that resume."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import infereco as ie
from chatserver import chat_server
from infereco.errors import UserError
from infereco.problem import Problem
from infereco.tasks import Task, get_task
from infereco.tasks.choice import ChoiceChecker, extract_letter
from infereco.tasks.freeform import JudgeChecker, parse_verdict

FREE = ["--input-price", "0", "--output-price", "0"]


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "infereco.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


CHOICE_ROWS = [
    {"id": "q1", "question": "Which planet is largest?", "choices": ["Mars", "Jupiter", "Venus"], "answer": "B"},
    {"id": "q2", "question": "2 + 2 = ?", "choices": ["3", "4", "5", "22"], "answer": 1},
    {"id": "q3", "question": "Capital of France?", "choices": ["Paris", "Rome"], "answer": "Paris"},
]


@pytest.mark.parametrize(
    ("text", "letter"),
    [("Answer: B", "B"), ("The answer is (C).", "C"), ("**D**", "D"), ("B) Jupiter, clearly", "B"),
     ("Thinking...\nA", "A"), ("The correct option is C.", "C"), ("A looks wrong. Answer: **B**", "B"),
     ("\\boxed{D}", "D"), ("No idea.", None), ("The answer is a tricky one", None)],
)  # fmt: skip
def test_choice_letters_are_extracted_robustly(text: str, letter: str | None) -> None:
    assert extract_letter(text) == letter


def test_formats_are_detected_from_the_first_row_and_can_be_forced(tmp_path: Path) -> None:
    choice = get_task(str(_write(tmp_path / "mc.jsonl", CHOICE_ROWS)))
    assert choice.spec["name"] == "choice" and isinstance(choice.checker, ChoiceChecker)
    assert [p.answer for p in choice.problems] == ["B", "B", "A"]  # a letter, an index, the choice's text
    shown = choice.messages(choice.problems[0])[-1]["content"]
    assert "A. Mars\nB. Jupiter\nC. Venus" in shown and "(A, B, C)" in shown
    free = get_task(str(_write(tmp_path / "ff.jsonl", [{"question": "Who wrote Hamlet?", "reference": "Shakespeare"}])))
    assert free.spec["name"] == "freeform" and isinstance(free.checker, JudgeChecker)
    qa = _write(tmp_path / "qa.jsonl", [{"question": "Who wrote Hamlet?", "answer": "William Shakespeare"}])
    with pytest.raises(UserError, match=r"qa.jsonl:1: .*'####'"):
        get_task(str(qa))  # detected as GSM8K, whose answers end in '#### N'
    forced = get_task("jsonl", path=str(qa), format="freeform")
    assert forced.problems[0].answer == "William Shakespeare" and forced.spec["format"] == "freeform"
    assert get_task(**forced.spec).digest() == forced.digest()  # the spec rebuilds it (--resume)
    with pytest.raises(UserError, match="--format 'nope' is unknown"):
        get_task("jsonl", path=str(qa), format="nope")


@pytest.mark.parametrize(
    ("row", "message"),
    [({"question": "q", "choices": ["a"], "answer": "A"}, "2-26 strings"),
     ({"question": "q", "choices": ["a", "b"], "answer": "C"}, "neither a letter"),
     ({"question": "q", "choices": ["a", "b"], "answer": 5}, "out of range"),
     ({"question": "q", "choices": ["a", "b"]}, "missing field 'answer'"),
     ({"task_id": "x", "prompt": "def f():", "test": "", "entry_point": "f"}, "'test' must be a non-empty"),
     ({"text": "t", "test_list": []}, "test_list"),
     ({"foo": 1}, "cannot tell the format")],
)  # fmt: skip
def test_bad_rows_are_one_line_errors_naming_file_and_line(tmp_path: Path, row: dict[str, Any], message: str) -> None:
    path = _write(tmp_path / "bad.jsonl", [row])
    proc = _cli("run", "--task", str(path), "--store", str(tmp_path / "s.db"), cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = proc.stderr.strip()
    assert "\n" not in line and message in line and "bad.jsonl:1" in line, line
    assert not (tmp_path / "s.db").exists()  # nothing stored (or paid) before the input is valid


def _choice_reply(messages: list[dict[str, str]], index: int, seed: int) -> str:
    text = messages[-1]["content"]
    return {"Which planet": "Jupiter is the largest.\nAnswer: B", "2 + 2": "(B)", "Capital": "**A**"}[
        next(k for k in ("Which planet", "2 + 2", "Capital") if k in text)] if index % 2 == 0 else "Answer: C"  # fmt: skip


def test_multiple_choice_run_with_a_custom_system_prompt_from_a_file(tmp_path: Path) -> None:
    data = _write(tmp_path / "mc.jsonl", CHOICE_ROWS)
    sys_file = tmp_path / "system.txt"
    sys_file.write_text("You are a careful examiner.")
    with chat_server(_choice_reply) as (url, received):
        proc = _cli("run", "--task", str(data), "--backend", "openai", "--base-url", url, "--model", "m", *FREE,
                    "--n", "4", "--system-prompt", f"@{sys_file}", "--store", str(tmp_path / "s.db"), "--json", cwd=tmp_path)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert received[0]["messages"][0] == {"role": "system", "content": "You are a careful examiner."}
    summary = json.loads(proc.stdout)["summary"]
    assert summary["accuracy"]["mean"] == pytest.approx(0.5)  # samples 0, 2 right; 1, 3 say C
    assert summary["coverage"]["mean"] == 1.0


def test_prompt_templates_and_their_errors(tmp_path: Path) -> None:
    data = _write(tmp_path / "mc.jsonl", CHOICE_ROWS)
    task = get_task(str(data), prompt_template="Q: {question}\nOptions:\n{choices}\nReply with one of {letters}.")
    assert task.messages(task.problems[2])[-1]["content"] == "Q: Capital of France?\nOptions:\nA. Paris\nB. Rome\nReply with one of A, B."
    for bad, message in [("{qestion}", "unknown field {qestion}"), ("{question", "literal braces"), ("{question!r}", "conversion")]:
        proc = _cli("run", "--task", str(data), "--prompt-template", bad, "--store", str(tmp_path / "s.db"), cwd=tmp_path)
        assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    proc = _cli("run", "--task", str(data), "--system-prompt", "@/no/such/file", cwd=tmp_path)
    assert proc.returncode == 2 and "--system-prompt @/no/such/file: no such file" in proc.stderr


def test_the_prompt_is_part_of_the_run_identity(tmp_path: Path) -> None:
    data = _write(tmp_path / "mc.jsonl", CHOICE_ROWS)
    store = tmp_path / "s.db"
    with chat_server(_choice_reply) as (url, received):
        kw = dict(backend="openai", base_url=url, model="m", input_price=0, output_price=0, n=2, store=store)
        first = ie.run(str(data), **kw)
        again = ie.run(str(data), **kw)
        other = ie.run(str(data), system_prompt="Answer with a letter.", **kw)
        templ = ie.run(str(data), prompt_template="{question}\n{choices}", **kw)
    assert first.run_id == again.run_id and again.sent_requests == 0
    assert len({first.run_id, other.run_id, templ.run_id}) == 3 and other.sent_requests > 0 and templ.sent_requests > 0


def test_a_changed_row_is_never_graded_with_the_old_samples(tmp_path: Path) -> None:
    """The stale-reuse case: edit a row (question and reference), rerun into the same store."""
    rows = [{"id": "a", "question": "What is 2 + 3?", "answer": "#### 5"},
            {"id": "b", "question": "What is 4 + 4?", "answer": "#### 8"}]  # fmt: skip
    data = _write(tmp_path / "gsm.jsonl", rows)
    store = tmp_path / "s.db"

    def adder(messages: list[dict[str, str]], index: int, seed: int) -> str:
        import re

        a, b = map(int, re.findall(r"\d+", messages[-1]["content"].split("Question")[-1])[-2:])
        return f"Answer: {a + b}"

    with chat_server(adder) as (url, received):
        args = ("run", "--task", str(data), "--backend", "openai", "--base-url", url, "--model", "m", *FREE, "--n", "2",
                "--strategy", "repeated", "--store", str(store), "--json")  # fmt: skip
        first = _cli(*args, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        sent = len(received)
        rows[1] = {"id": "b", "question": "What is 10 + 7?", "answer": "#### 17"}
        _write(data, rows)
        second = _cli(*args, cwd=tmp_path)
        assert second.returncode == 0, second.stderr
        assert len(received) > sent  # the changed data was asked again, not reused
        assert any("10 + 7" in b["messages"][-1]["content"] for b in received[sent:])
        resumed = _cli("run", "--resume", "--run", json.loads(first.stdout)["run_id"], "--store", str(store), cwd=tmp_path)
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert one["run_id"] != two["run_id"] and two["summary"]["accuracy"]["mean"] == 1.0
    with sqlite3.connect(store) as db:
        prompt, ref = db.execute("SELECT prompt, reference FROM problems WHERE run_id=? AND problem_id='b'", (two["run_id"],)).fetchone()
        (ledger,) = db.execute("SELECT COALESCE(json_extract(config_json, '$.pool'), run_id) FROM runs WHERE run_id=?",
                               (two["run_id"],)).fetchone()  # a pooled run's samples are kept in its pool
        texts = [t for (t,) in db.execute("SELECT text FROM samples WHERE run_id=? AND problem_id='b'", (ledger,))]
    assert prompt == "What is 10 + 7?" and ref == "17" and texts == ["Answer: 17", "Answer: 17"]
    # resuming the old run against the edited file is refused, naming the changed problem
    assert resumed.returncode == 2 and "changed: b" in resumed.stderr and resumed.stderr.count("\n") == 1, resumed.stderr


def test_a_task_built_in_python_runs_and_resumes(tmp_path: Path) -> None:
    problems = tuple(Problem(id=f"p{i}", prompt=f"Pick the even number: (A) {2 * i + 1} (B) {2 * i}", answer="B") for i in range(3))
    task = Task(name="my-choice", problems=problems, checker=ChoiceChecker(), system_prompt="Answer with a letter.",
                spec={"name": "whatever"})  # fmt: skip
    store = tmp_path / "s.db"
    with chat_server(lambda m, i, s: "Answer: B") as (url, received):
        kw = dict(backend="openai", base_url=url, model="m", input_price=0, output_price=0, store=store)
        first = ie.run(task, n=2, **kw)
        assert first.summary["accuracy"]["mean"] == 1.0
        with sqlite3.connect(store) as db:  # as if killed before the last problem
            db.execute("DELETE FROM samples WHERE problem_id='p2'")
            db.execute("DELETE FROM requests WHERE problem_id='p2'")
            db.execute("DELETE FROM results WHERE problem_id='p2'")
            db.execute("UPDATE runs SET status='interrupted'")
        before = len(received)
        resumed = ie.resume(store)
        assert resumed.run_id == first.run_id and len(received) == before + 1  # only p2 is asked again
        assert resumed.summary["n_problems"] == 3 and resumed.summary["accuracy"]["mean"] == 1.0
        assert received[-1]["messages"][0]["content"] == "Answer with a letter."


def _judge_world(messages: list[dict[str, str]], index: int, seed: int) -> str:
    text = messages[-1]["content"]
    if text.startswith("You are grading"):
        candidate = text.split("Candidate answer: ", 1)[1].split("\n", 1)[0]
        return "Yes." if "Shakespeare" in candidate or "1564" in candidate else "No"
    if "Hamlet" in text:
        return ["It was Shakespeare.\nAnswer: William Shakespeare", "Answer: Marlowe"][index % 2]
    return "Answer: 1564"


def test_free_form_answers_graded_by_a_judge_model_under_its_own_role(tmp_path: Path) -> None:
    data = _write(tmp_path / "ff.jsonl", [
        {"id": "hamlet", "question": "Who wrote Hamlet?", "reference": "Shakespeare"},
        {"id": "born", "question": "In which year was Shakespeare born?", "reference": "1564"},
    ])  # fmt: skip
    store = tmp_path / "s.db"
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."grader"]\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n'
                      '[models."m"]\ninput_per_mtok = 0.0\noutput_per_mtok = 0.0\n')
    with chat_server(_judge_world) as (url, main_calls), chat_server(_judge_world) as (grader_url, grader_calls):
        result = ie.run(str(data), backend="openai", base_url=url, model="m", input_price=0, output_price=0, n=4,
                        store=store, grader_model="grader", grader_base_url=grader_url, prices=prices)  # fmt: skip
        assert all(not b["messages"][-1]["content"].startswith("You are grading") for b in main_calls)
        # "William Shakespeare" and "Marlowe" need a verdict; "1564" equals its reference: no call
        assert len(grader_calls) == 2 and all(b["temperature"] == 0 for b in grader_calls)
        again = ie.run(str(data), backend="openai", base_url=url, model="m", input_price=0, output_price=0, n=4,
                       store=store, grader_model="grader", grader_base_url=grader_url, prices=prices)  # fmt: skip
        assert again.sent_requests == 0 and len(grader_calls) == 2  # verdicts are stored: nothing paid twice
    assert result.summary["accuracy"]["mean"] == pytest.approx(0.75)  # hamlet 2/4, born 4/4
    with sqlite3.connect(store) as db:
        verdicts = db.execute("SELECT step, text, cost_usd FROM samples WHERE step LIKE 'grade/%'").fetchall()
        graded = db.execute("SELECT answer, correct FROM samples WHERE step='sample' AND problem_id='hamlet'").fetchall()
    assert sorted(t for _, t, _ in verdicts) == ["No", "Yes."] and all(c > 0 for _, _, c in verdicts)  # priced
    assert set(graded) == {("William Shakespeare", 1), ("Marlowe", 0)}
    assert result.pool.config["roles"]["grader"]["backend"]["model"] == "grader"


def test_grader_flags_on_other_tasks_and_verdict_parsing(tmp_path: Path) -> None:
    assert parse_verdict("Yes, it is") is True and parse_verdict("no.") is False and parse_verdict("maybe") is None
    proc = _cli("run", "--task", "arithmetic", "--grader-model", "x", "--store", str(tmp_path / "s.db"), cwd=tmp_path)
    assert proc.returncode == 2 and "--grader-model applies to --task freeform" in proc.stderr
