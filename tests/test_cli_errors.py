"""Bad input at the command line: exit code 2 and exactly one line on stderr, never a traceback."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CLOSED = f"http://127.0.0.1:{_closed_port()}/v1"
# An OpenAI backend on a closed port: nothing is ever sent in the cases below that do not test the
# connection itself, and nothing tries the embedded model.
OPENAI = ["--backend", "openai", "--base-url", CLOSED, "--model", "fake", "--max-retries", "0", "--input-price", "0",
          "--output-price", "0"]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # no --quiet: the progress bar must not add a line to an error
    return subprocess.run(
        [sys.executable, "-m", "infereco.cli", *args], env=ENV, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    line = lines[0]
    assert line.strip() and line.startswith("error: "), line
    return line


def test_unknown_strategy(tmp_path: Path) -> None:
    line = _one_line_error(_cli("run", *OPENAI, "--strategy", "beamzz", "--store", str(tmp_path / "s.db"), cwd=tmp_path))
    assert "--strategy" in line and "beamzz" in line and "majority" in line


def test_level_out_of_range(tmp_path: Path) -> None:
    line = _one_line_error(_cli("run", "--level", "9", "--store", str(tmp_path / "s.db"), cwd=tmp_path))
    assert "--level" in line and "9" in line


def test_n_zero(tmp_path: Path) -> None:
    line = _one_line_error(_cli("run", *OPENAI, "--n", "0", "--store", str(tmp_path / "s.db"), cwd=tmp_path))
    assert "--n" in line and ">= 1" in line


def test_missing_data_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    line = _one_line_error(_cli("run", *OPENAI, "--task", "gsm8k", "--data", str(missing), cwd=tmp_path))
    assert "nope.jsonl" in line


def test_malformed_jsonl_row_names_file_and_line(tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text(
        '{"question": "What is 1 + 1?", "answer": "1 + 1 = 2\\n#### 2"}\n'
        '\n'
        '{"question": "What is 2 + 2?", "answer": "#### 4"\n'
    )
    line = _one_line_error(_cli("run", *OPENAI, "--task", "gsm8k", "--data", str(data), cwd=tmp_path))
    assert "bad.jsonl:3" in line


def test_openai_without_base_url(tmp_path: Path) -> None:
    line = _one_line_error(_cli("run", "--backend", "openai", "--model", "fake", "--store", str(tmp_path / "s.db"), cwd=tmp_path))
    assert "--base-url" in line


def test_unreachable_server(tmp_path: Path) -> None:
    line = _one_line_error(_cli("run", *OPENAI, "--limit", "1", "--n", "1", "--store", str(tmp_path / "s.db"), cwd=tmp_path))
    assert CLOSED in line and "connect" in line.lower()


def test_negative_max_retries(tmp_path: Path) -> None:
    args = ["--backend", "openai", "--base-url", CLOSED, "--model", "fake", "--max-retries", "-1"]
    line = _one_line_error(_cli("run", *args, "--store", str(tmp_path / "s.db"), cwd=tmp_path))
    assert "--max-retries" in line


@pytest.mark.parametrize(
    ("toml", "must_name"),
    [
        ('[models."fake"]\ninput_per_mtok = "cheap"\n', ['models."fake"', "input_per_mtok"]),
        ('[models."fake"]\ninput_per_mtok = 1.0\noutptu_per_mtok = 2.0\n', ['models."fake"', "outptu_per_mtok"]),
        ("[default]\nusd_per_hour = -1\n", ["[default]", "usd_per_hour"]),
        ('[models."fake"\ninput_per_mtok = 1\n', ["TOML", "line 1"]),
    ],
    ids=["bad-value", "unknown-field", "negative", "syntax"],
)
def test_bad_price_file_names_file_and_field(tmp_path: Path, toml: str, must_name: list[str]) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(toml)
    line = _one_line_error(_cli("run", *OPENAI, "--prices", str(prices), "--store", str(tmp_path / "s.db"), cwd=tmp_path))
    assert str(prices) in line
    for text in must_name:
        assert text in line


def test_store_is_a_directory(tmp_path: Path) -> None:
    line = _one_line_error(_cli("run", *OPENAI, "--store", str(tmp_path), cwd=tmp_path))
    assert str(tmp_path) in line and "directory" in line
    assert list(tmp_path.iterdir()) == []  # nothing was created in it


def test_store_is_not_sqlite(tmp_path: Path) -> None:
    store = tmp_path / "notes.db"
    store.write_text("my notes, not a database\n" * 100)
    line = _one_line_error(_cli("run", *OPENAI, "--store", str(store), cwd=tmp_path))
    assert str(store) in line


@pytest.mark.parametrize(
    ("args", "must_name"),
    [
        (["run", "--bogus-flag"], "--bogus-flag"),
        (["run", "--n", "lots"], "--n"),
        (["run", "--n"], "--n"),
        (["no-such-command"], "no-such-command"),
    ],
    ids=["unknown-flag", "not-an-int", "missing-value", "unknown-command"],
)
def test_usage_errors_are_one_line(tmp_path: Path, args: list[str], must_name: str) -> None:
    line = _one_line_error(_cli(*args, cwd=tmp_path))
    assert must_name in line
    assert "Usage:" not in line


def test_resume_unknown_run_id(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    from infereco.store import Store

    Store(store).close()  # an empty store
    line = _one_line_error(_cli("run", "--resume", "--run", "zz9", "--store", str(store), cwd=tmp_path))
    assert "zz9" in line


def test_no_arguments_prints_the_help_not_an_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "infereco.cli"], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")},
    )  # fmt: skip
    assert result.returncode == 0
    assert "Commands" in result.stdout and "run" in result.stdout and "error" not in result.stdout.lower()


def test_unknown_api(tmp_path: Path) -> None:
    line = _one_line_error(_cli("run", *OPENAI, "--api", "embeddings", "--store", str(tmp_path / "s.db"), cwd=tmp_path))
    assert "--api" in line and "completions" in line


def test_completions_api_with_the_embedded_model_is_an_error_not_ignored(tmp_path: Path) -> None:
    # refused before any model is resolved or started
    line = _one_line_error(_cli("run", "--api", "completions", "--store", str(tmp_path / "s.db"), cwd=tmp_path))
    assert "--api completions" in line and "--backend openai" in line


@pytest.mark.parametrize("value", ["0", "-1"])
def test_non_positive_timeout(tmp_path: Path, value: str) -> None:
    line = _one_line_error(_cli("run", *OPENAI, "--timeout", value, "--store", str(tmp_path / "s.db"), cwd=tmp_path))
    assert "--timeout" in line


def _fake_server(**kwargs: object):
    sys.path.insert(0, str(ROOT / "tests"))
    from fakeserver import FakeServer

    return FakeServer(**kwargs)


def _fake_args(base_url: str) -> list[str]:
    return ["--backend", "openai", "--base-url", base_url, "--model", "fake", "--n", "1", "--limit", "1",
            "--input-price", "0", "--output-price", "0"]  # fmt: skip


def test_a_request_slower_than_timeout_is_one_line(tmp_path: Path) -> None:
    # the server answers only after 40 s (the CLI's own start-up on a loaded machine can take
    # seconds, so a tight bound on wall time would test the machine, not the client)
    started = time.monotonic()
    with _fake_server(delay_s=40.0) as fake:
        args = [*_fake_args(fake.base_url), "--timeout", "0.5", "--max-retries", "0", "--store", str(tmp_path / "s.db")]
        line = _one_line_error(_cli("run", *args, cwd=tmp_path))
        assert fake.model.attempts == 1  # --max-retries 0: the one try, given up
    assert "timed out after 0.5s" in line and "/chat/completions" in line
    assert time.monotonic() - started < 40  # the client gave up; it did not wait for the answer


def test_timeout_given_with_resume_replaces_the_stored_one(tmp_path: Path) -> None:
    """A run that failed on timeouts is finished by `--resume --timeout LONGER`, not failed again."""
    store = str(tmp_path / "s.db")
    with _fake_server(delay_s=1.0) as fake:
        args = [*_fake_args(fake.base_url), "--timeout", "0.3", "--max-retries", "0", "--store", store]
        assert "timed out" in _one_line_error(_cli("run", *args, cwd=tmp_path))
        # 1 s answers within 30 s however loaded the machine; within 0.3 s never (the delay is the server's)
        done = _cli("run", "--resume", "--store", store, "--timeout", "30", "--max-retries", "0", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT status FROM runs WHERE status != 'pool'").fetchall() == [("done",)]
        assert conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 1


def test_completions_api_end_to_end_and_part_of_the_run_identity(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    with _fake_server() as fake:
        args = ["--backend", "openai", "--base-url", fake.base_url, "--model", "fake", "--n", "2", "--limit", "2",
                "--input-price", "0", "--output-price", "0"]
        for api in ("completions", "chat"):
            done = _cli("run", *args, "--api", api, "--store", str(store), "--quiet", "--json", cwd=tmp_path)
            assert done.returncode == 0, done.stderr
        bodies = fake.model.bodies
        paths = fake.model.paths
    assert ["prompt" in b for b in bodies] == [True, True, False, False]  # 2 problems each, in that order
    assert paths == ["/v1/completions"] * 2 + ["/v1/chat/completions"] * 2
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs WHERE status != 'pool'").fetchone()[0] == 2  # chat vs completions: two runs


def test_resume_alone_keeps_the_completions_api(tmp_path: Path) -> None:
    """`--resume` rebuilds the backend from the stored config: a completions run stays one."""
    store = str(tmp_path / "s.db")
    with _fake_server(fail_after=1) as fake:  # the second request is refused: the run stops half done
        args = ["--backend", "openai", "--base-url", fake.base_url, "--model", "fake", "--n", "2", "--max-n", "2",
                "--limit", "2", "--concurrency", "1", "--api", "completions", "--input-price", "0",
                "--output-price", "0", "--store", store]  # fmt: skip
        assert "injected failure" in _one_line_error(_cli("run", *args, cwd=tmp_path))
        fake.model.fail_after = None
        done = _cli("run", "--resume", "--store", store, "--quiet", cwd=tmp_path)
        paths = fake.model.paths
    assert done.returncode == 0, done.stderr
    assert paths == ["/v1/completions"] * 3  # served, refused, then the resumed one
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT status FROM runs WHERE status != 'pool'").fetchall() == [("done",)]
        assert conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 4


def test_a_remote_model_without_any_price_is_an_error_not_a_silent_zero(tmp_path: Path) -> None:
    args = ["--backend", "openai", "--base-url", CLOSED, "--model", "my-private-model", "--max-retries", "0"]
    line = _one_line_error(_cli("run", *args, "--store", str(tmp_path / "s.db"), cwd=tmp_path))
    assert "my-private-model" in line and "--input-price" in line and "--prices" in line


def test_a_known_hosted_model_is_priced_from_genai_prices() -> None:
    from infereco.api import make_price
    from infereco.backends.openai import OpenAIBackend

    price = make_price(OpenAIBackend(CLOSED, "gpt-4o-mini"))
    assert price.input_per_mtok > 0 and price.output_per_mtok > price.input_per_mtok
    assert price.source.startswith("genai-prices") and "gpt-4o-mini" in price.source
    cheaper = make_price(OpenAIBackend(CLOSED, "gpt-4o-mini"), output_price=0.0)  # a flag overrides one field
    assert cheaper.output_per_mtok == 0 and cheaper.input_per_mtok == price.input_per_mtok
