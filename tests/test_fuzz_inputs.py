"""Fuzzing the files users hand to `infereco run`: config, task and price files.

Every generated file has at least one defect. Through the real CLI entry point (in-process, so
hundreds of cases take seconds), each must give exit code 2, exactly one line on stderr naming the
file, no traceback, and leave an existing store byte for byte as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import socket
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infereco.cli import main
from infereco.store import Store

CASES = {"config": 0, "task": 0, "price": 0}
SETTINGS = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CLOSED = f"http://127.0.0.1:{_closed_port()}/v1"
OPENAI = ["--backend", "openai", "--base-url", CLOSED, "--model", "fake", "--max-retries", "0"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "kept.db"
    with Store(path) as db:
        db.ensure_run("r1", "an earlier run", {"strategy": {"name": "majority", "n": 1}})
    return path


def _digest(path: Path) -> tuple[str, bool]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), Path(f"{path}-wal").exists()


def _one_line_error(argv: list[str], store: Path, named: str) -> str:
    before = _digest(store)
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv + ["--store", str(store), "--quiet"])
        except SystemExit as exc:
            code = exc.code
    text = err.getvalue()
    assert code == 2, (code, text, argv)
    assert "Traceback" not in text + out.getvalue()
    lines = text.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    assert named in lines[0], lines[0]
    assert _digest(store) == before, "the store changed"
    return lines[0]


# -- values of every TOML type, good and bad --------------------------------------------------
_scalars = st.one_of(
    st.integers(-(10**12), 10**12), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.text(string.printable, max_size=12), st.just(""),
)  # fmt: skip
_values = st.one_of(_scalars, st.lists(_scalars, max_size=3), st.dictionaries(st.sampled_from("ab"), _scalars, max_size=2))


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v == float("inf") else "-inf" if v == float("-inf") else repr(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    assert isinstance(v, dict)
    return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"


# -- config files -----------------------------------------------------------------------------
GOOD_CONFIG = {
    "backend": "openai", "base-url": CLOSED, "model": "fake", "max-retries": 0, "input-price": 0, "output-price": 0,
    "level": 1, "n": 2, "limit": 2, "max-tokens": 16,
}  # fmt: skip
BAD_CONFIG = {  # one certainly wrong value per key
    "level": [0, 6, "3", 2.5, True], "n": [0, -1, "8", [1]], "limit": [0, "x"], "max-tokens": [0, 1.5, "64"],
    "temperature": [-0.1, 2.5, "hot", float("nan")], "top-p": [0.0, 1.5], "timeout": [0, -3, float("inf")],
    "concurrency": [0, "many"], "max-n": [0], "max-retries": [-1], "backend": ["vllm", 3, ""], "api": ["rest", 1],
    "base-url": ["ftp://x", "127.0.0.1:8080", 8080], "api-key-env": ["", "has space", "1ABC", 5],
    "input-price": [-1, "cheap", float("nan"), float("inf")], "budget-usd": [-0.5, "lots", float("inf")],
    "budget-tokens": [-1, 1.5], "strategy": ["beamzz", 3], "task": ["no-such-task", 7], "seed": ["x", 1.5],
    "verifier": ["psychic"], "no-such-flag": [1], "max_tokens_": [3],
}  # fmt: skip


@st.composite
def config_files(draw: st.DrawFn) -> str:
    config = dict(GOOD_CONFIG)
    for key in draw(st.lists(st.sampled_from(sorted(BAD_CONFIG)), min_size=1, max_size=3, unique=True)):
        config[key] = draw(st.sampled_from(BAD_CONFIG[key]))
    for key in draw(st.lists(st.sampled_from(sorted(BAD_CONFIG)), max_size=2)):  # any value at all
        config.setdefault(key, draw(_values))
    lines = [f"{k} = {_toml_value(v)}" for k, v in config.items()]
    lines = draw(st.permutations(lines))
    syntax = draw(st.sampled_from(["", "", "", "level = ", "[table", "n = 1\nn = 2", "key = 'unterminated", "= 3"]))
    if syntax:
        lines.insert(draw(st.integers(0, len(lines))), syntax)
    return "\n".join(lines) + "\n"


@settings(max_examples=220, **SETTINGS)
@given(text=config_files())
def test_fuzzed_config_files(text: str, store: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("cfg") / "run.toml"
    path.write_text(text)
    _one_line_error(["run", "--config", str(path)], store, "run.toml")
    CASES["config"] += 1


# -- task files ---------------------------------------------------------------------------------
_GOOD_ROWS = [
    {"question": "What is 2 + 3?", "answer": "2 + 3 = 5\n#### 5"},
    {"question": "What is 10 - 4?", "answer": "#### 6"},
]
_BAD_ROWS = [
    '{"question": "What is 1 + 1?"}', '{"answer": "#### 2"}', '{"question": "", "answer": "#### 1"}',
    '{"question": "Q?", "answer": "no final answer"}', '{"question": "Q?", "answer": "#### many"}',
    '{"question": 5, "answer": "#### 5"}', '{"question": "Q?", "answer": null}', '[1, 2, 3]', '"just a string"',
    '{"question": "Q?", "answer": "#### 1"', "not json at all", '{"problem": "P", "solution": "no box"}',
    '{"id": "dup", "question": "A?", "answer": "#### 1"}\n{"id": "dup", "question": "B?", "answer": "#### 2"}',
    '{"question": "Q?", "answer": {"nested": true}}', "\x00\x01\x02", '{"question": "Q?", "answer": "#### 1/0"}',
]  # fmt: skip


@st.composite
def jsonl_files(draw: st.DrawFn) -> bytes:
    rows = [json.dumps(draw(st.sampled_from(_GOOD_ROWS))) for _ in range(draw(st.integers(0, 4)))]
    noise = st.one_of(
        st.sampled_from(_BAD_ROWS),
        st.dictionaries(st.sampled_from(["question", "answer", "problem", "solution", "id", "x"]), _scalars,
                        max_size=3).map(json.dumps),
        st.text(max_size=30),
    )  # fmt: skip
    rows.insert(draw(st.integers(0, len(rows))), draw(st.sampled_from(_BAD_ROWS)))  # always one defect
    for _ in range(draw(st.integers(0, 2))):
        rows.insert(draw(st.integers(0, len(rows))), draw(noise))
    data = "\n".join(rows).encode()
    return draw(st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe"])) + data  # BOM / not UTF-8


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    header = draw(st.sampled_from(["question,answer", "question,answer,id", "q,a", "answer", "", '"question,answer']))
    good = ["What is 2 + 2?,4", '"What is 1,000 + 1?","1,001"', "What is 3 + 3?,#### 6"]
    bad = [",5", "What?,", "What?,many", "What?,#### x", '"unterminated,4', "What?,1,2,3"]
    rows = [draw(st.sampled_from(good)) for _ in range(draw(st.integers(0, 3)))]
    rows.insert(draw(st.integers(0, len(rows))), draw(st.sampled_from(bad)))
    if draw(st.booleans()):
        rows.insert(draw(st.integers(0, len(rows))), draw(st.text(max_size=20)))
    return ("\n".join([header, *rows]) + "\n").encode()


@settings(max_examples=200, **SETTINGS)
@given(kind=st.sampled_from(["gsm8k-jsonl", "auto-jsonl", "csv"]), data=st.data())
def test_fuzzed_task_files(kind: str, data: st.DataObject, store: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    name = "tasks.csv" if kind == "csv" else "tasks.jsonl"
    path = tmp_path_factory.mktemp("task") / name
    path.write_bytes(data.draw(csv_files() if kind == "csv" else jsonl_files()))
    task = ["--task", "gsm8k", "--data", str(path)] if kind == "gsm8k-jsonl" else ["--task", str(path)]
    _one_line_error(["run", *task, *OPENAI, "--input-price", "0", "--output-price", "0"], store, name)
    CASES["task"] += 1


# -- price files ----------------------------------------------------------------------------------
_PRICE_FIELDS = ["input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "usd_per_hour", "source", "discount"]
_BAD_PRICES = [-1, -0.001, "cheap", float("inf"), float("nan"), [1], {"a": 1}, True]


@st.composite
def price_files(draw: st.DrawFn) -> str:
    table = draw(st.sampled_from(['[models."fake"]', "[default]", '[models."other"]', "[models]", "models = 3", "[fake]"]))
    fields = {f: draw(st.floats(0, 100)) for f in draw(st.lists(st.sampled_from(_PRICE_FIELDS[:4]), max_size=3, unique=True))}
    if table in ('[models."fake"]', "[default]"):  # the table that applies must hold a defect
        bad_field = draw(st.sampled_from(_PRICE_FIELDS))
        fields[bad_field] = draw(st.sampled_from(_BAD_PRICES)) if bad_field != "discount" else draw(_scalars)
        if bad_field == "source":
            fields[bad_field] = draw(st.sampled_from([1, 2.5, [1], {"a": 1}, True]))
    for _ in range(draw(st.integers(0, 2))):
        fields[draw(st.sampled_from(_PRICE_FIELDS))] = draw(_values)
    body = "\n".join(f"{k} = {_toml_value(v)}" for k, v in fields.items())
    syntax = draw(st.sampled_from(["", "", "", "input_per_mtok = ", "[[broken", "x = 'open"]))
    text = f"{table}\n{body}\n{syntax}\n"
    if table == "models = 3":
        text = f"models = 3\n{body}\n{syntax}\n"
    return text


@settings(max_examples=160, **SETTINGS)
@given(text=price_files())
def test_fuzzed_price_files(text: str, store: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("price") / "prices.toml"
    path.write_text(text)
    _one_line_error(["run", *OPENAI, "--n", "1", "--limit", "1", "--prices", str(path)], store, "prices.toml")
    CASES["price"] += 1


def test_at_least_500_cases_were_fuzzed() -> None:
    """Runs last in this module (pytest keeps file order): the figure docs/reliability.md quotes."""
    if 0 in CASES.values():
        pytest.skip("run the whole module to count the cases")
    print(f"\nfuzzed {sum(CASES.values())} input files: {CASES}")
    assert sum(CASES.values()) >= 500
