"""A planted API key never reaches the store, logs, reports, or any output, even when the server echoes it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fakeserver import FakeServer

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-infereco-planted-7f3a9c1e5b2d4f60a8e1"
KEY_ENV = "INFERECO_TEST_SECRET_KEY"


def _cli(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), KEY_ENV: KEY, "HOME": str(home),
           "XDG_CACHE_HOME": str(home / ".cache")}  # fmt: skip
    env.pop("INFERECO_CACHE", None)
    return subprocess.run([sys.executable, "-m", "infereco.cli", *args], env=env, cwd=home, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def _run_args(base_url: str, store: Path) -> list[str]:
    return [
        "run", "--backend", "openai", "--base-url", base_url, "--model", "fake", "--api-key-env", KEY_ENV,
        "--n", "2", "--limit", "3", "--input-price", "1", "--output-price", "2", "--store", str(store),
        "--max-retries", "1", "--quiet",
    ]  # fmt: skip


def test_a_planted_key_is_sent_but_never_written_or_printed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    store = tmp_path / "s.db"
    outputs: list[str] = []
    with FakeServer(echo_auth=True) as ok:
        done = _cli(_run_args(ok.base_url, store), home)
        assert done.returncode == 0, done.stderr
        outputs += [done.stdout, done.stderr]
        assert ok.model.headers and all(h.get("Authorization") == f"Bearer {KEY}" for h in ok.model.headers)
    for status in ("401", "429"):  # refused for good / refused until the retries run out; both quote the key
        with FakeServer(echo_auth=True, fail_first=100, fail_status=int(status), retry_after="0") as bad:
            failed = _cli(_run_args(bad.base_url, tmp_path / f"failed-{status}.db") + ["--seed", "1"], home)
        assert failed.returncode == 2 and "invalid credentials" in failed.stderr, failed.stderr
        assert "[redacted]" in failed.stderr
        outputs += [failed.stdout, failed.stderr]
    report = _cli(["report", str(store), "--out", str(tmp_path / "report"), "--html", str(tmp_path / "r.html"),
                   "--json"], home)  # fmt: skip
    assert report.returncode == 0, report.stderr
    outputs += [report.stdout, report.stderr]
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".html" for p in written) and any(p.name.endswith(".db") for p in written)
    assert KEY_ENV in store.read_bytes().decode("latin-1")  # the variable's name is stored, for resume ...
    for path in written:  # ... its value nowhere: store (and WAL), caches and logs under HOME, reports
        assert KEY.encode() not in path.read_bytes(), path
    for text in outputs:
        assert KEY not in text and KEY[:12] not in text
