"""Hostile servers, kills, a full disk, a second process, bad stores, leaked keys, bad flags, SIGTERM.

Every case ends with the same checks (`_audit`): no request paid twice (the server's bill holds
each request key once, and a resume sends nothing that arrived), no traceback, a store that passes
`PRAGMA integrity_check`, and a ledger whose spend equals what the server billed. The server is
tests/fakeserver.py with `mutate` (odd answers) or run in its own process (kills, SIGTERM).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from fakeserver import FakeServer, fake_server_process
from infereco.api import run as api_run
from infereco.errors import UserError
from infereco.store import MAX_TOKENS_STORED, Store

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
LIMIT, N = 6, 4


def _run(fake: FakeServer, store: Path, **options: Any) -> Any:
    kwargs: dict[str, Any] = dict(
        backend="openai", base_url=fake.base_url, model="fake", n=N, limit=LIMIT, level=1, max_n=4, concurrency=4,
        max_tokens=40, input_price=1.0, output_price=2.0, store=store, max_retries=1,
    )  # fmt: skip
    kwargs.update(options)
    return api_run("arithmetic", **kwargs)


def _integrity(store: Path) -> str:
    conn = sqlite3.connect(store)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def _ledger_tokens(store: Path) -> tuple[int, int, int]:
    """(stored prompt + completion tokens, unconfirmed tokens, requests) of every run in the store."""
    with Store(store) as db:
        every = [db.totals(r["run_id"]) for r in db.runs()]
    return (
        sum(t["prompt_tokens"] + t["completion_tokens"] for t in every),
        sum(t["unconfirmed_tokens"] for t in every),
        sum(t["requests"] for t in every),
    )


def _audit(fake: FakeServer, store: Path) -> dict[str, Any]:
    """The checks every case ends with; returns the figures docs/reliability.md reports."""
    keys = [k for k, _, _ in fake.model.billed]
    twice = [k for k, c in Counter(keys).items() if c > 1]
    assert not twice, f"paid twice: {twice}"
    assert _integrity(store) == "ok"
    billed = sum(min(int(p), MAX_TOKENS_STORED) + min(int(c), MAX_TOKENS_STORED) for _, p, c in fake.model.billed)
    stored, unconfirmed, requests = _ledger_tokens(store)
    assert stored + unconfirmed == billed, (stored, unconfirmed, billed)
    return {"billed_requests": len(keys), "billed_tokens": billed, "stored_requests": requests}


def _resume_sends_nothing(fake: FakeServer, store: Path, **options: Any) -> None:
    before = len(fake.model.billed)
    _run(fake, store, **options)
    assert len(fake.model.billed) == before, "a resume asked again for something that had arrived"


# -- odd 200 answers -----------------------------------------------------------------------------
def _message_is_a_string(answer: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    for c in answer["choices"]:
        c["message"] = c["message"]["content"]
    return answer


def _finish_reason_is_an_object(answer: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    for c in answer["choices"]:
        c["finish_reason"] = {"type": "stop", "detail": [1, 2]}
    return answer


def _content_is_a_number_in_one_choice(answer: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    answer["choices"][-1]["message"]["content"] = 42
    return answer


def _content_is_parts_and_a_choice_is_junk(answer: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    c = answer["choices"][0]
    c["message"]["content"] = [{"type": "text", "text": c["message"]["content"]}]
    if len(answer["choices"]) > 1:
        answer["choices"][1] = "junk"
    return answer


def _fewer_choices(answer: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    kept = answer["choices"][: max(1, len(answer["choices"]) // 2)]
    answer["choices"] = kept
    answer["usage"]["completion_tokens"] = sum(len(c["message"]["content"].split()) for c in kept)
    return answer


ODD = {
    "message is a string": _message_is_a_string,
    "finish_reason is an object": _finish_reason_is_an_object,
    "content is a number": _content_is_a_number_in_one_choice,
    "content parts, a choice not an object": _content_is_parts_and_a_choice_is_junk,
    "fewer choices than n": _fewer_choices,
}


@pytest.mark.parametrize("case", list(ODD))
def test_odd_answers_are_stored_once_and_never_asked_for_again(case: str, tmp_path: Path) -> None:
    store = tmp_path / "odd.db"
    with FakeServer(mutate=ODD[case]) as fake:
        result = _run(fake, store)
        assert result.totals["samples"] == LIMIT * N  # every sample the server sent is kept
        figures = _audit(fake, store)
        _resume_sends_nothing(fake, store)
    print(f"\n{case}: {figures}")
    if case == "fewer choices than n":  # asked for 4, got 2: the rest was asked for under new keys
        assert figures["billed_requests"] > LIMIT and all("+4" in k or "+2" in k or "+1" in k for k, _, _ in fake.model.billed)
    if case == "content is a number":
        with Store(store) as db:
            reasons = {r[0] for r in db.conn.execute("SELECT finish_reason FROM samples")}
        assert any(r and r.startswith("unusable:") for r in reasons)


def _absurd_usage(answer: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    answer["usage"]["completion_tokens"] = 1e20
    return answer


def _huge_prompt(answer: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    answer["usage"]["prompt_tokens"] = 100_000
    return answer


def _ignores_max_tokens(answer: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    for c in answer["choices"]:
        c["message"]["content"] = "blah " * 300 + c["message"]["content"]
    answer["usage"]["completion_tokens"] = sum(len(c["message"]["content"].split()) for c in answer["choices"])
    return answer


@pytest.mark.parametrize(
    ("mutate", "what"),
    [(_absurd_usage, "completion tokens"), (_huge_prompt, "prompt tokens"), (_ignores_max_tokens, "completion tokens")],
)
def test_a_server_breaking_the_budget_stops_the_run_at_once(
    mutate: Any, what: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "v.db"
    budget = 4000
    with FakeServer(mutate=mutate, delay_s=0.02) as fake:
        with pytest.raises(UserError) as info:
            _run(fake, store, budget_tokens=budget)
        message = str(info.value)
        assert "broke the budget" in message and what in message and "over" in message and "\n" not in message
        # nothing was sent after the first violating answer but what was already in flight
        assert len(fake.model.billed) <= 4  # --concurrency 4
        figures = _audit(fake, store)
        with Store(store) as db:
            run_id = db.runs()[0]["run_id"]
            events = db.events(run_id)
            assert db.runs()[0]["status"] == "interrupted"
        assert events and events[0]["kind"] == "budget-violation"
        spent = sum(min(int(p), MAX_TOKENS_STORED) + min(int(c), MAX_TOKENS_STORED) for _, p, c in fake.model.billed)
        with capsys.disabled():
            print(f"\n{mutate.__name__}: {figures['billed_requests']} requests billed (all in flight at the first "
                  f"violation), {spent} tokens vs budget {budget}; error: {message}")
    # the overspend is what the answers in flight reported, no more, and the report shows it
    code, _ = _cli_main(["report", str(store)], capsys)
    assert code == 0 and "budget-violation" in capsys.readouterr().out + _last_out[0]
    assert figures["billed_requests"] >= 1


def test_a_server_breaking_the_budget_without_a_budget_is_stored_and_recorded(tmp_path: Path) -> None:
    store = tmp_path / "nb.db"
    with FakeServer(mutate=_absurd_usage) as fake:
        result = _run(fake, store, limit=2)
        _audit(fake, store)
    assert result.totals["completion_tokens"] == 2 * MAX_TOKENS_STORED  # 1e20 each, capped at 1e12 in the store
    assert result.summary["ledger"]["inflight_requests"] == 0


def test_a_reservation_that_does_not_fit_waits_for_the_ones_in_flight(tmp_path: Path) -> None:
    # worst case per request: prompt bound 290 + 4 x 150 = 890 tokens; real use ~55: a 3,000-token
    # budget must reach far beyond the 677 tokens at which the first refused reservation used to end it
    store = tmp_path / "w.db"
    with FakeServer(delay_s=0.01) as fake:
        result = _run(fake, store, limit=80, max_tokens=150, budget_tokens=3000)
        _audit(fake, store)
    spent = result.totals["prompt_tokens"] + result.totals["completion_tokens"]
    assert spent <= 3000
    print(f"\nreservations wait: spent {spent} of 3000 tokens, {result.totals['requests']} requests")
    assert spent > 3000 - 890 and result.budget_note, spent  # stopped only when one worst case no longer fits with none in flight


# -- the write-ahead ledger ----------------------------------------------------------------------
def test_a_request_that_fails_for_good_leaves_its_lost_tries_in_the_store(tmp_path: Path) -> None:
    store = tmp_path / "lost.db"
    with FakeServer(faults={"reset": 1.0}) as fake:  # every answer generated, then the connection dropped
        with pytest.raises(UserError, match="gave up"):
            _run(fake, store, limit=1, n=2, max_retries=1, concurrency=1)
        figures = _audit_lost(fake, store)
    assert figures["lost_requests"] == 1 and figures["unconfirmed_tokens"] >= figures["billed"]


def _audit_lost(fake: FakeServer, store: Path) -> dict[str, Any]:
    assert _integrity(store) == "ok"
    billed = sum(p + c for _, p, c in fake.model.billed)
    with Store(store) as db:
        t = db.totals(db.runs()[0]["run_id"])
    return {"lost_requests": t["lost_requests"], "unconfirmed_tokens": t["unconfirmed_tokens"], "billed": billed}


def _lost_keys(store: Path) -> list[str]:
    with Store(store) as db:
        run_id = db.runs()[0]["run_id"]  # what request keys sent to the server start with
        # lost requests are charged to the run's pool (its ledger), whose id differs from the run's:
        # reading them under the run's id found none, and a request lost in flight and resent by the
        # resume looked "sent twice" whenever the server had received it before the kill
        return [f"{run_id}/{k}" for (k,) in db.conn.execute("SELECT request_key FROM lost")]


def _stats(url: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"{url}/stats", timeout=5) as response:
        return json.load(response)


def _cli_command(server: str, store: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "infereco.cli", "run", "--backend", "openai", "--base-url", f"{server}/v1",
        "--model", "fake", "--n", "4", "--max-n", "2", "--limit", "10", "--concurrency", "4",
        "--input-price", "1", "--output-price", "2", "--store", str(store), "--quiet", *extra,
    ]  # fmt: skip


def _wait_for(store: Path, sql: str, at_least: int, proc: subprocess.Popen[Any], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be stopped"
        try:
            conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=1)
            try:
                if conn.execute(sql).fetchone()[0] >= at_least:
                    return
            finally:
                conn.close()
        except sqlite3.Error:
            pass
        time.sleep(0.01)
    raise AssertionError("timed out")


def test_a_kill_with_requests_in_flight_is_counted_by_the_resume_under_a_budget(tmp_path: Path) -> None:
    store = tmp_path / "k.db"
    budget = 3000
    with fake_server_process(0.3) as server:
        command = _cli_command(server, store, "--budget-tokens", str(budget))
        proc = subprocess.Popen(command, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _wait_for(store, "SELECT COUNT(*) FROM inflight", 1, proc)
        _wait_for(store, "SELECT COUNT(*) FROM requests", 1, proc)
        proc.kill()
        proc.wait(timeout=10)
        time.sleep(0.5)  # the answers in flight are generated (and billed) after the client died
        journal = sqlite3.connect(store).execute("SELECT COUNT(*) FROM inflight").fetchone()[0]
        assert journal >= 1  # the requests in flight are in the store's journal
        done = subprocess.run(command + ["--resume"], env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert "Traceback" not in done.stderr and done.returncode in (0, 2), done.stderr
        stats = _stats(server)
    billed = sum(p + c for _, p, c in stats["billed"])
    stored, unconfirmed, _ = _ledger_tokens(store)
    assert _integrity(store) == "ok"
    assert billed <= budget, (billed, budget)  # the provider's bill stays within the budget
    assert stored + unconfirmed >= billed  # the ledger counts every billed token (lost ones at their worst case)
    assert stored + unconfirmed <= budget
    with Store(store) as db:
        keys = {f"{db.runs()[0]['run_id']}/{k}" for (k,) in db.conn.execute("SELECT request_key FROM requests")}
    served = [k for k, _, _ in stats["billed"]]
    assert len(served) - len(set(served)) <= journal  # only requests lost in flight were sent twice
    sent = Counter(served)
    twice = {k: sent[k] for k in keys - set(_lost_keys(store)) if sent[k] != 1}
    assert not twice, f"stored, not lost before, yet sent {twice}"  # stored, and not lost before: sent once
    print(f"\nkill: journal {journal} in flight; billed {billed} <= budget {budget}; ledger {stored}+{unconfirmed}")


# -- one writer per run --------------------------------------------------------------------------
def test_a_second_process_on_the_same_run_refuses_in_one_line_and_another_run_proceeds(tmp_path: Path) -> None:
    store = tmp_path / "two.db"
    with fake_server_process(1.0) as server:  # 20 requests 4 at a time: the first run takes ~5 s
        first = subprocess.Popen(_cli_command(server, store), env=ENV, cwd=ROOT, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)  # fmt: skip
        _wait_for(store, "SELECT COUNT(*) FROM writers", 1, first)
        second = subprocess.run(_cli_command(server, store), env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=60)
        other = subprocess.run(_cli_command(server, store, "--seed", "7", "--limit", "2"), env=ENV, cwd=ROOT,
                               capture_output=True, text=True, timeout=60)  # fmt: skip
        _, err = first.communicate(timeout=60)
        stats = _stats(server)
    assert first.returncode == 0, err
    assert second.returncode == 2 and "being written by process" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1 and "Traceback" not in second.stderr
    assert other.returncode == 0, other.stderr  # a different run in the same store goes ahead
    keys = [k for k, _, _ in stats["billed"]]
    assert len(keys) == len(set(keys)) == 20 + 4  # nothing sent twice
    assert _integrity(store) == "ok"


# -- store faults --------------------------------------------------------------------------------
def test_a_full_disk_keeps_the_answers_and_the_resume_stores_them_without_asking_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "full.db"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    real = Store.record_requests
    calls = {"n": 0}

    def filling_up(self: Store, run_id: str, batch: Any) -> None:
        calls["n"] += 1
        if calls["n"] > 2:
            raise sqlite3.OperationalError("database or disk is full")
        real(self, run_id, batch)

    with FakeServer(delay_s=0.01) as fake:
        monkeypatch.setattr(Store, "record_requests", filling_up)
        monkeypatch.setattr(Store, "record_result", lambda *a: (_ for _ in ()).throw(sqlite3.OperationalError("database or disk is full")))
        with pytest.raises(UserError) as info:
            _run(fake, store)
        message = str(info.value)
        assert "disk is full" in message and "--resume" in message and "\n" not in message
        monkeypatch.undo()
        sent = len(fake.model.billed)
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        result = _run(fake, store)  # space is back
        figures = _audit(fake, store)
    assert result.totals["samples"] == LIMIT * N
    print(f"\ninjected full disk: answers received before the fault {sent}; {figures}")
    assert figures["billed_requests"] == LIMIT * N // 4  # every request once: the spilled ones were not asked again
    assert sent < figures["billed_requests"] or sent == figures["billed_requests"]


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


def test_a_real_full_disk_on_a_small_tmpfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    disk = tmp_path / "disk"
    if os.geteuid() != 0 or not _mount_tmpfs(disk, "400k"):
        pytest.skip("needs root to mount a small tmpfs")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    try:
        store = disk / "t.db"
        with FakeServer() as fake:
            _run(fake, store, limit=1)  # the store exists, then the disk fills up
            filler = disk / "filler"
            try:
                with open(filler, "wb") as f:
                    while True:
                        f.write(b"x" * 4096)
                        f.flush()
            except OSError:
                pass  # full
            with pytest.raises(UserError) as info:
                _run(fake, store, limit=LIMIT, n=N)
            assert "\n" not in str(info.value) and "full" in str(info.value)
            print(f"\nreal full disk: {info.value}")
            filler.unlink()  # space is back
            result = _run(fake, store, limit=LIMIT, n=N)
            _audit(fake, store)
        assert result.totals["samples"] == LIMIT * N
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


_last_out = [""]


def _cli_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The CLI in this process: (exit code, stderr); any exception but SystemExit is a traceback."""
    from infereco.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    _last_out[0] = captured.out
    return code, captured.err


def test_foreign_and_damaged_stores_are_named_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE runs (x)")
    conn.commit()
    conn.close()
    for argv in (["report", str(foreign)], ["run", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
                                            "--input-price", "0", "--output-price", "0", "--store", str(foreign), "--quiet"]):
        code, err = _cli_main(argv, capsys)
        assert code == 2 and "not an infereco store" in err and len(err.strip().splitlines()) == 1, err
    damaged = tmp_path / "damaged.db"
    with FakeServer() as fake:
        _run(fake, damaged, limit=3)
    data = bytearray(damaged.read_bytes())
    for offset in range(4096 * 2, len(data), 997):  # scribble over the pages, not the header
        data[offset : offset + 64] = os.urandom(64)
    damaged.write_bytes(bytes(data))
    code, err = _cli_main(["report", str(damaged)], capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "damaged" in err or "not an infereco store" in err


# -- credentials ---------------------------------------------------------------------------------
def test_userinfo_in_a_url_is_refused_before_anything_is_stored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "u.db"
    for flag in ("--base-url", "--judge-base-url", "--draft-base-url", "--reward-url"):
        argv = ["run", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--input-price", "0",
                "--output-price", "0", "--store", str(store), "--quiet", flag, "http://user:SECRETKEY@127.0.0.1:9/v1"]  # fmt: skip
        code, err = _cli_main(argv, capsys)
        assert code == 2 and "credentials" in err and "SECRETKEY" not in err and len(err.strip().splitlines()) == 1, err
        assert not store.exists()


def test_each_endpoint_gets_its_own_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAIN_KEY", "main-key-123456")
    monkeypatch.setenv("JUDGE_KEY", "judge-key-654321")
    with FakeServer() as main, FakeServer() as judge:
        def sent(fake: FakeServer) -> set[str]:
            return {h.get("Authorization", "") for h in fake.model.headers}

        prices = tmp_path / "prices.toml"
        prices.write_text('[models."fake"]\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n')
        common = dict(strategy="bon", verifier="judge", judge_model="fake", judge_base_url=judge.base_url, limit=1, n=2,
                      api_key_env="MAIN_KEY", prices=prices, input_price=None, output_price=None)  # fmt: skip
        _run(main, tmp_path / "a.db", **common)  # another host: no key
        assert sent(main) == {"Bearer main-key-123456"} and sent(judge) == {""}
        _run(main, tmp_path / "b.db", **common, judge_api_key_env="JUDGE_KEY")
        assert sent(judge) == {"", "Bearer judge-key-654321"}
        for db in ("a.db", "b.db"):
            raw = (tmp_path / db).read_bytes()
            assert b"main-key-123456" not in raw and b"judge-key-654321" not in raw


# -- numeric flags -------------------------------------------------------------------------------
BAD_FLAGS = [
    ["--timeout", "inf"], ["--timeout", "nan"], ["--timeout", "0"], ["--timeout", "-1"], ["--input-price", "nan"],
    ["--output-price", "inf"], ["--output-price", "-1"], ["--concurrency", "0"], ["--concurrency", "-4"],
    ["--max-n", "0"], ["--max-retries", "-1"], ["--max-retries", "100000"], ["--max-tokens", "0"],
    ["--temperature", "nan"], ["--temperature", "3"], ["--top-p", "0"], ["--top-p", "nan"], ["--budget-usd", "nan"],
    ["--budget-usd", "inf"], ["--budget-usd", "-1"], ["--budget-tokens", "-3"], ["--budget-usd-per-problem", "nan"],
    ["--n", "0"], ["--n", "-2"], ["--limit", "0"], ["--level", "9"], ["--usd-per-hour", "nan"],
    ["--base-url", "http://[::1"], ["--base-url", "http://127.0.0.1:99999/v1"], ["--base-url", "ftp://x/v1"],
    ["--base-url", "http:///v1"], ["--judge-base-url", "http://[::1"], ["--reward-url", "http://a b/"],
    ["--accept-threshold", "nan"], ["--pf-temperature", "inf"], ["--stop-confidence", "2"], ["--entropy-floor", "nan"],
    ["--api-key-env", "NOT A NAME"], ["--judge-api-key-env", "1X"],
]  # fmt: skip


def test_every_bad_numeric_flag_is_one_line_before_any_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "f.db"
    with FakeServer() as fake:
        for bad in BAD_FLAGS:
            argv = ["run", "--backend", "openai", "--base-url", fake.base_url, "--model", "fake", "--input-price", "1",
                    "--output-price", "1", "--limit", "1", "--n", "1", "--store", str(store), "--quiet"]  # fmt: skip
            argv += bad  # the last value of a repeated flag wins (base-url repeats: a list)
            if bad[0] == "--base-url":
                argv = [a for i, a in enumerate(argv) if not (a == "--base-url" and i < 4) and not (i == 4)]
                argv = ["run", "--backend", "openai", "--model", "fake", *argv[1:]]
            code, err = _cli_main(argv, capsys)
            assert code == 2, (bad, err)
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (bad, err)
            assert fake.model.attempts == 0, bad
            assert not store.exists(), bad


# -- SIGTERM -------------------------------------------------------------------------------------
def test_sigterm_stops_a_run_like_ctrl_c(tmp_path: Path) -> None:
    store = tmp_path / "term.db"
    with fake_server_process(0.2) as server:
        command = _cli_command(server, store)
        proc = subprocess.Popen(command, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for(store, "SELECT COUNT(*) FROM requests", 2, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        status = sqlite3.connect(store).execute("SELECT status FROM runs WHERE status != 'pool'").fetchone()[0]
        assert status == "interrupted"
        done = subprocess.run(command + ["--resume"], env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        stats = _stats(server)
    assert _integrity(store) == "ok"
    keys = [k for k, _, _ in stats["billed"]]
    with Store(store) as db:
        t = db.totals(db.runs()[0]["run_id"])
    assert t["samples"] == 40 and t["inflight_requests"] == 0
    assert len(keys) - len(set(keys)) <= t["lost_requests"]  # only answers cut off in flight were asked again
    print(f"\nSIGTERM: {len(keys)} answers billed, {len(keys) - len(set(keys))} re-sent (cut off in flight), "
          f"{t['lost_requests']} journaled as lost, {t['unconfirmed_tokens']} tokens charged for them")
