"""Fuzzing what a user or a server can throw at a run: flags, server answers, store files.

Each input goes through the real code in this process (the CLI's `main`, or `infereco.run`); an
exception other than `SystemExit` (the CLI) or `UserError` (the library) is a traceback a user
would have seen, and fails the test. Errors must be one line. Counts are printed for
docs/reliability.md (run with -s). Derandomized: CI sees the same inputs.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakeserver import FakeServer
from infereco.errors import UserError

SETTINGS = dict(derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None)
TRIED: dict[str, int] = {}


@pytest.fixture(scope="module")
def server():
    with FakeServer() as fake:
        yield fake


def _main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from infereco.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return code, capsys.readouterr().err


# -- flags ---------------------------------------------------------------------------------------
NUMBERS = ["nan", "NaN", "inf", "-inf", "Infinity", "-1", "0", "0.0", "1e-9", "0.5", "1", "2", "3", "1e308", "-1e308",
           "99999999999999999999999", "", "abc", "1e3", "0x10", " 1", "1_0", "١", "1,5", "--", "-0", "5e-324"]  # fmt: skip
URLS = ["http://[::1", "http://[::1]:0/v1", "http://127.0.0.1:99999/v1", "http://u:KEY@127.0.0.1/v1", "ftp://h/v1", "http:///v1",
        "http://a b/v1", "http://127.0.0.1:1/v1", "https://", "http://%zz/", "http://127.0.0.1:abc/v1", "//host/v1", "v1",
        "http://\x00/", "http://:@/"]  # fmt: skip
FLAGS = {
    "--timeout": NUMBERS, "--input-price": NUMBERS, "--output-price": NUMBERS, "--usd-per-hour": NUMBERS,
    "--concurrency": NUMBERS, "--max-n": NUMBERS, "--max-tokens": NUMBERS, "--temperature": NUMBERS,
    "--top-p": NUMBERS, "--budget-usd": NUMBERS, "--budget-tokens": NUMBERS, "--budget-usd-per-problem": NUMBERS,
    "--budget-tokens-per-problem": NUMBERS, "--seed": NUMBERS, "--task-seed": NUMBERS, "--level": NUMBERS,
    "--limit": NUMBERS, "--n": NUMBERS, "--base-url": URLS, "--judge-base-url": URLS, "--reward-url": URLS,
    "--api-key-env": ["", "A B", "1X", "OK_NAME", "$X", "é"], "--judge-api-key-env": ["", "1X", "K"],
    "--max-retries": ["-1", "0", "1e9", "abc", "100000", "nan"], "--accept-threshold": NUMBERS,
    "--stop-confidence": NUMBERS, "--pf-temperature": NUMBERS, "--entropy-floor": NUMBERS,
}  # fmt: skip
_SAFE = {"--n", "--limit", "--max-tokens", "--concurrency", "--max-n", "--max-retries", "--timeout", "--level", "--seed",
         "--task-seed", "--budget-tokens", "--budget-tokens-per-problem"}  # fmt: skip


def _flag_value(flag: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(FLAGS[flag]), st.text(max_size=12))


flag_sets = st.lists(st.sampled_from(sorted(FLAGS)), min_size=1, max_size=3, unique=True).flatmap(
    lambda flags: st.tuples(*(st.tuples(st.just(f), _flag_value(f)) for f in flags))
)


def _bounded(flag: str, value: str) -> bool:
    """Values that would make a valid run slow or huge (N = 1e6) are swapped for small ones."""
    try:
        number = float(value)
    except ValueError:
        return True
    if flag in ("--n", "--limit") and 3 < number <= 1_000_000:
        return False
    return not (flag == "--level" and number == 5) and not (flag == "--timeout" and 0 < number < 0.05)


@settings(max_examples=220, **SETTINGS)
@given(flag_sets)
def test_fuzzed_flags_never_trace_back(server: FakeServer, capsys: pytest.CaptureFixture[str], chosen: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["run", "--backend", "openai", "--model", "fake", "--limit", "1", "--n", "1", "--max-retries", "0",
                "--input-price", "1", "--output-price", "1", "--store", str(Path(tmp) / "f.db"), "--quiet"]  # fmt: skip
        if not any(f == "--base-url" for f, _ in chosen):
            argv += ["--base-url", server.base_url]
        for flag, value in chosen:
            if flag in _SAFE and not _bounded(flag, value):
                value = "1"
            argv += [flag, value]
        code, err = _main(argv, capsys)
    TRIED["flags"] = TRIED.get("flags", 0) + 1
    assert code in (0, 2), (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    if code == 2:
        assert len(err.strip().splitlines()) == 1, (argv, err)


# -- server answers ------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
token_counts = st.one_of(json_values, st.integers(min_value=0, max_value=10**25), st.floats())
top_option = st.fixed_dictionaries({"token": st.sampled_from(["Yes", "No", "yes", 1]), "logprob": token_counts})
token_entry = st.one_of(
    json_values,
    st.fixed_dictionaries({"token": json_values, "logprob": token_counts}, optional={"top_logprobs": st.lists(top_option, max_size=3)}),
)
choice = st.fixed_dictionaries(
    {},
    optional={
        "index": json_values,
        "message": st.one_of(json_values, st.fixed_dictionaries({"content": json_values}, optional={"role": json_values})),
        "text": json_values,
        "finish_reason": json_values,
        "logprobs": st.one_of(json_values, st.fixed_dictionaries({"content": st.lists(token_entry, max_size=3)})),
    },
)
usage = st.one_of(
    json_values,
    st.fixed_dictionaries({}, optional={
        "prompt_tokens": token_counts, "completion_tokens": token_counts,
        "prompt_tokens_details": json_values, "completion_tokens_details": json_values,
    }),
)  # fmt: skip
answers = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"choices": st.one_of(json_values, st.lists(st.one_of(choice, json_values), max_size=4))}, optional={"usage": usage}
    ),
)


@settings(max_examples=220, **SETTINGS)
@given(answers, st.sampled_from(["majority", "bon-judge"]), st.booleans())
def test_fuzzed_server_answers_never_trace_back(server: FakeServer, body: Any, strategy: str, budget: bool) -> None:
    from infereco.api import run

    server.model.mutate = lambda answer, request: body
    options: dict[str, Any] = dict(backend="openai", base_url=server.base_url, model="fake", limit=1, n=2, max_n=2,
                                   max_retries=0, concurrency=2, input_price=1.0, output_price=1.0)  # fmt: skip
    if strategy == "bon-judge":
        options.update(strategy="bon", verifier="judge")
    if budget:
        options["budget_tokens"] = 5000
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "a.db"
        try:
            run("arithmetic", store=store, **options)
        except UserError as exc:
            assert "\n" not in str(exc), str(exc)
        finally:
            server.model.mutate = None
        if store.exists():
            conn = sqlite3.connect(store)
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            conn.close()
    TRIED["answers"] = TRIED.get("answers", 0) + 1


# -- store files ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def good_store(server: FakeServer, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from infereco.api import run

    store = tmp_path_factory.mktemp("good") / "g.db"
    run("arithmetic", backend="openai", base_url=server.base_url, model="fake", limit=3, n=2, input_price=1.0,
        output_price=1.0, store=store)  # fmt: skip
    return store.read_bytes()


def _foreign(kind: int) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.db"
        conn = sqlite3.connect(path)
        if kind == 0:
            conn.execute("CREATE TABLE runs (a, b)")
        elif kind == 1:
            conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.execute("INSERT INTO meta VALUES ('schema_version', 'x9')")
        elif kind == 2:
            conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.execute("INSERT INTO meta VALUES ('schema_version', '3')")
            conn.execute("CREATE TABLE runs (run_id TEXT)")
            conn.execute("INSERT INTO runs VALUES ('r')")
        conn.commit()
        conn.close()
        return path.read_bytes()


@st.composite
def damaged(draw: Any, good: bytes) -> bytes:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return good[: draw(st.integers(0, len(good)))]
    if kind == 1:
        data = bytearray(good)
        for _ in range(draw(st.integers(1, 8))):
            at = draw(st.integers(0, len(data) - 1))
            data[at : at + 32] = draw(st.binary(min_size=1, max_size=32))
        return bytes(data)
    if kind == 2:
        return draw(st.binary(max_size=2048))
    if kind == 3:
        return _foreign(draw(st.integers(0, 2)))
    if kind == 4:  # pages scribbled, header kept
        data = bytearray(good)
        step = draw(st.integers(200, 3000))
        for at in range(4096, len(data), step):
            data[at : at + 16] = os.urandom(16)
        return bytes(data)
    return good[:100] + draw(st.binary(max_size=512)) + good[612:]


@settings(max_examples=120, print_blob=False, verbosity=__import__("hypothesis").Verbosity.quiet, **SETTINGS)
@given(st.data())
def test_fuzzed_store_files_never_trace_back(good_store: bytes, capsys: pytest.CaptureFixture[str], data: Any) -> None:
    content = data.draw(damaged(good_store))
    command = data.draw(st.sampled_from(["report", "resume", "frontier", "report-json"]))
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "s.db"
        store.write_bytes(content)
        argv = {
            "report": ["report", str(store)],
            "report-json": ["report", str(store), "--json"],
            "frontier": ["frontier", str(store)],
            "resume": ["run", "--resume", "--store", str(store), "--quiet", "--max-retries", "0"],
        }[command]
        code, err = _main(argv, capsys)
    TRIED["stores"] = TRIED.get("stores", 0) + 1
    assert code in (0, 2), (command, code, err)
    assert "Traceback" not in err
    if code == 2:
        assert len(err.strip().splitlines()) == 1, err


def test_fuzz_counts() -> None:
    """Runs last in this file: the number of inputs tried (docs/reliability.md)."""
    print(f"\nfuzzed inputs: {json.dumps(TRIED)} = {sum(TRIED.values())}")
    if len(TRIED) == 3:
        assert sum(TRIED.values()) >= 500
