"""Task options the chosen task cannot use are refused by name (CLI, library, TOML), before anything is sent.

Each task declares the options it takes where it is registered (`tasks.registry.TaskFormat.options`
and `rows`, `tasks.formats.Format.options`; `tasks.options`); `--level` for HumanEval, `--grader-model`
for multiple choice or `--format` for arithmetic would otherwise be dropped silently. Defaults never
count, and a stored run's description resumes as it was made.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from fakeserver import FakeServer
from test_run_description import _cli, _one_line  # the one-line-error helpers, shared
from infereco import api
from infereco.errors import UserError
from infereco.runconfig import RunConfig, flag
from infereco.tasks import arithmetic_task
from infereco.tasks import registry as task_registry
from infereco.tasks.options import TASK_OPTIONS
from infereco.tasks.registry import takes

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CHOICE = str(EXAMPLES / "choice.jsonl")
FREEFORM = str(EXAMPLES / "freeform.jsonl")
FREE = {"input_price": 0.0, "output_price": 0.0}


@pytest.fixture(scope="module")
def server() -> Any:
    with FakeServer() as fake:
        yield fake


@pytest.fixture(scope="module")
def sums(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A GSM8K-style file of sums the fake server answers."""
    path = tmp_path_factory.mktemp("data") / "sums.jsonl"
    rows = [{"id": f"s{i}", "question": f"What is {i} + {i + 2}?", "answer": f"#### {2 * i + 2}"} for i in range(1, 5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _run_argv(server: FakeServer, store: Path, *argv: str) -> list[str]:
    return ["run", "--backend", "openai", "--base-url", server.base_url, "--model", "fake", "--input-price", "0",
            "--output-price", "0", "--n", "2", "--max-tokens", "16", "--store", str(store), "--quiet", *argv]  # fmt: skip


# (task flags, what the one line must name): the examples and every task option on a task without it
REFUSED: list[tuple[list[str], list[str]]] = [
    (["--task", "humaneval", "--level", "3"], ["--level applies to --task arithmetic only", "--task humaneval does not take it"]),
    (["--task", "humaneval", "--task-seed", "1"], ["--task-seed", "arithmetic"]),
    (["--task", "gsm8k", "--data", "x.jsonl", "--level", "2"], ["--level", "--task gsm8k"]),
    (["--task", "arithmetic", "--format", "humaneval"], ["--format applies to --task jsonl, PATH.jsonl|PATH.csv only"]),
    (["--task", "choice", "--data", CHOICE, "--format", "mbpp"], ["--format", "--task choice"]),
    (["--task", "arithmetic", "--data", "x.jsonl"], ["--data", "gsm8k", "--task arithmetic"]),
    (["--task", "humaneval", "--data", "x.jsonl"], ["--data", "--task humaneval"]),
    (["--task", CHOICE, "--data", CHOICE], ["--data", "the file given as --task is the data"]),
    (["--task", "arithmetic", "--sandbox-packages", "stdlib"], ["--sandbox-packages", "humaneval, mbpp", "--task arithmetic"]),
    (["--task", CHOICE, "--sandbox-packages", "stdlib"], ["--sandbox-packages", "(choice rows)"]),
    (["--task", "humaneval", "--grader-model", "judge"], ["--grader-model applies to --task freeform", "--task humaneval"]),
    (["--task", "humaneval", "--grader-base-url", "http://127.0.0.1:9/v1"], ["--grader-base-url", "freeform"]),
    (["--task", "arithmetic", "--grader-prompt", "{question} {reference} {answer}?"], ["--grader-prompt", "freeform"]),
    (["--task", CHOICE, "--grader-model", "judge"], ["--grader-model", "freeform rows", "(choice rows)"]),
    (["--task", "jsonl", "--data", CHOICE, "--grader-base-url", "http://127.0.0.1:9/v1"], ["--grader-base-url", "(choice rows)"]),
    (["--task", FREEFORM, "--format", "choice", "--grader-model", "judge"], ["--grader-model", "(choice rows)"]),
]


@pytest.mark.parametrize(("argv", "named"), REFUSED, ids=[" ".join(a[1:]).replace(str(EXAMPLES), "examples") for a, _ in REFUSED])
def test_a_task_option_the_task_cannot_use_is_refused_by_name(argv: list[str], named: list[str], server: FakeServer,
                                                              tmp_path: Path) -> None:  # fmt: skip
    sent = len(server.model.keys)
    line = _one_line(_run_argv(server, tmp_path / "s.db", *argv))
    for text in named:
        assert text in line, line
    assert len(server.model.keys) == sent  # nothing was sent
    assert not (tmp_path / "s.db").exists()  # nor stored


def test_what_was_refused_before_still_is(server: FakeServer, tmp_path: Path) -> None:
    """--checker is no flag; a template field the rows lack is refused with the fields they have."""
    line = _one_line(_run_argv(server, tmp_path / "s.db", "--task", CHOICE, "--checker", "python-tests"))
    assert "--checker" in line
    sent = len(server.model.keys)
    line = _one_line(_run_argv(server, tmp_path / "s.db", "--task", CHOICE, "--prompt-template", "{question} {foo}"))
    assert "{foo}" in line and "{choices}" in line
    assert len(server.model.keys) == sent and not (tmp_path / "s.db").exists()


def test_every_task_option_is_taken_by_some_task_and_refused_by_another() -> None:
    formats = task_registry.formats()
    for name in TASK_OPTIONS:
        assert name in RunConfig.model_fields, name
        assert any(name in takes(f) for f in formats), name
    for name in set(TASK_OPTIONS) - {"limit", "system_prompt", "prompt_template"}:
        assert any(name not in takes(f) for f in formats), name


def test_valid_combinations_still_run(server: FakeServer, sums: str, tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    for argv in (
        ["--task", "arithmetic", "--level", "1", "--task-seed", "3", "--limit", "2", "--system-prompt", "Add."],
        ["--task", "jsonl", "--data", sums, "--format", "gsm8k", "--limit", "2"],
        ["--task", sums, "--format", "auto", "--limit", "3", "--prompt-template", "Q: {question}"],
        ["--task", "gsm8k", "--data", sums, "--limit", "2"],
    ):
        code, out, err = _cli(_run_argv(server, store, *argv))
        assert code == 0, (argv, out, err)
    # the options a task does take pass the check (a grader for free-form rows, the sandbox for code)
    RunConfig.build({"task": FREEFORM, "grader_model": "judge", "grader_base_url": "http://127.0.0.1:9/v1"})
    RunConfig.build({"task": "jsonl", "data": FREEFORM, "format": "freeform", "grader_prompt": "{question}{reference}{answer}"})
    RunConfig.build({"task": "humaneval", "sandbox_packages": "stdlib", "limit": 3})
    RunConfig.build({"task": "mbpp", "data": "x.jsonl", "sandbox_packages": "site"})


def test_defaults_are_not_given(server: FakeServer, sums: str, tmp_path: Path) -> None:
    """The description has a level (3) and a task seed (0) for every task; left at their defaults they say nothing."""
    config = RunConfig.build({"task": "humaneval"})
    assert config.level == 3 and config.task_seed == 0 and not config.task_options_given()
    result = api.run("jsonl", data=sums, limit=2, n=2, backend="openai", base_url=server.base_url, model="fake",
                     max_tokens=16, store=tmp_path / "s.db", **FREE)  # fmt: skip
    assert result.summary.n_problems == 2
    # `infereco sweep` hands --level on only when it is given: a sweep of a file task runs
    code, out, err = _cli(["sweep", "--task", "jsonl", "--data", sums, "--limit", "2", "--strategies", "majority",
                           "--budgets", "1", "--backend", "openai", "--base-url", server.base_url, "--model", "fake",
                           "--input-price", "0", "--output-price", "0", "--max-tokens", "16", "--store",
                           str(tmp_path / "sweep.db"), "--quiet"])  # fmt: skip
    assert code == 0, (out, err)
    line = _one_line(["sweep", "--task", "jsonl", "--data", sums, "--level", "2", "--backend", "openai", "--base-url",
                      server.base_url, "--model", "fake", "--store", str(tmp_path / "sweep2.db")])  # fmt: skip
    assert "--level" in line and "--task jsonl" in line


def test_the_library_refuses_the_same_options(server: FakeServer, tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    common: dict[str, Any] = dict(backend="openai", base_url=server.base_url, model="fake", n=2, store=store, **FREE)
    sent = len(server.model.keys)
    with pytest.raises(UserError, match="^--level applies to --task arithmetic only; --task humaneval does not take it$"):
        api.run("humaneval", level=3, **common)
    with pytest.raises(UserError, match="--format applies to --task jsonl"):
        api.Experiment("arithmetic", task_format="humaneval")
    with pytest.raises(UserError, match=r"--grader-model .*\(choice rows\)"):  # known only once the file is read
        api.run(CHOICE, grader_model="judge", **common)
    with pytest.raises(UserError, match="--level"):  # another task for an experiment: checked anew
        api.Experiment("arithmetic", level=2).replace(task="humaneval")
    with pytest.raises(UserError, match="--level"):
        api.Experiment("humaneval").replace(level=2)
    # a Task built in Python brings its problems: a loader's options have nothing to load
    task = arithmetic_task(level=1, limit=2)
    for option, value in (("level", 3), ("limit", 1), ("task_seed", 2), ("data", "x.jsonl"), ("task_format", "choice")):
        with pytest.raises(UserError, match=f"^{flag(option)} applies to a task given by name or file"):
            api.run(task, **{option: value}, **common)
    with pytest.raises(UserError, match="--level"):
        api.Experiment(task).replace(level=2)
    assert len(server.model.keys) == sent and not store.exists()
    # and what it does take runs: its prompts, and the same Task under another N
    done = api.Experiment(task, system_prompt="Add.", max_tokens=16, **{k: v for k, v in common.items() if k != "store"})
    assert done.replace(n=3).run(store).summary.n_problems == 2


def test_a_config_file_names_the_line_of_the_option_its_task_cannot_use(server: FakeServer, tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('task = "humaneval"\nn = 2\nlevel = 3\n')
    line = _one_line(["run", "--config", str(path), "--store", str(tmp_path / "s.db")])
    assert f"{path}:3" in line and "--level applies to --task arithmetic only" in line
    path.write_text(f'task = "{CHOICE}"\ngrader-model = "judge"\n')  # refused once the file is read
    sent = len(server.model.keys)
    line = _one_line(_run_argv(server, tmp_path / "s.db", "--config", str(path)))
    assert f"{path}:2" in line and "--grader-model" in line and "(choice rows)" in line
    assert len(server.model.keys) == sent and not (tmp_path / "s.db").exists()


def test_a_task_registered_in_a_test_module_declares_the_options_it_takes(server: FakeServer, tmp_path: Path) -> None:
    def build(name: str, *, level: int, limit: int | None, seed: int, path: Any) -> Any:
        return arithmetic_task(level=level, limit=limit or 2, seed=seed)

    task_registry.register(task_registry.TaskFormat("sums", "sums of a level, no seed", build, options=("level",)))
    try:
        result = api.run("sums", level=1, backend="openai", base_url=server.base_url, model="fake", n=2, max_tokens=16,
                         store=tmp_path / "s.db", **FREE)  # fmt: skip
        assert result.summary.n_problems == 2
        line = _one_line(_run_argv(server, tmp_path / "t.db", "--task", "sums", "--task-seed", "4"))
        assert "--task-seed applies to --task arithmetic only; --task sums does not take it" in line
        line = _one_line(_run_argv(server, tmp_path / "t.db", "--task", "humaneval", "--level", "4"))
        assert "--level applies to --task arithmetic, sums only" in line
    finally:
        task_registry.unregister("sums")


def test_a_stored_description_resumes_even_with_an_option_its_task_does_not_take(sums: str, tmp_path: Path) -> None:
    """A stored description is what the run was made with, not input: one that carries `level` (as a
    version that took it silently could store) for a file task resumes, paying only what is missing."""
    store = tmp_path / "s.db"
    with FakeServer() as fake:
        common = dict(backend="openai", base_url=fake.base_url, model="fake", limit=3, n=4, max_n=2, max_tokens=16, **FREE)
        full = api.run("jsonl", data=sums, store=tmp_path / "full.db", **common)
        api.run("jsonl", data=sums, store=store, **common)
        port = int(fake.base_url.rsplit(":", 1)[1].split("/")[0])
    with sqlite3.connect(store) as conn:  # as such a version stored it, one problem unfinished
        (config,) = conn.execute("SELECT config_json FROM runs WHERE status != 'pool'").fetchone()
        stored = json.loads(config)
        stored["description"].update(level=1, task_seed=5)
        conn.execute("UPDATE runs SET config_json=? WHERE status != 'pool'", (json.dumps(stored),))
        conn.execute("UPDATE runs SET status='interrupted' WHERE status != 'pool'")
        conn.execute("DELETE FROM samples WHERE problem_id=(SELECT MIN(problem_id) FROM problems) AND sample_index >= 2")
        conn.execute("DELETE FROM requests WHERE problem_id=(SELECT MIN(problem_id) FROM problems) AND start_index >= 2")
        conn.execute("DELETE FROM results WHERE problem_id=(SELECT MIN(problem_id) FROM problems)")
    with FakeServer(port=port) as again:
        code, out, err = _cli(["run", "--resume", "--store", str(store), "--quiet"])
        assert code == 0, (out, err)
        assert len(again.model.keys) == 1  # exactly the one missing request (samples 2..3 of one problem)
    [resumed] = api.load_results(store)
    assert resumed.run_id == full.run_id
    assert resumed.summary.final_accuracy == full.summary.final_accuracy
