"""`--executor ray` on a local Ray cluster gives the store the local executor gives, and resumes alike.

One Ray cluster (2 CPUs) is started for the module: `ray.init` takes a few seconds.
"""

from __future__ import annotations

import os
import sqlite3
import time
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakeserver import FakeServer, fake_server_process
from infereco.api import run as api_run
from infereco.errors import UserError

ray = pytest.importorskip("ray")

LIMIT, N, MAX_N = 6, 4, 2


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    # no token authentication: a driver in a subprocess joins this cluster (test_kill9_...) and must
    # not depend on ~/.ray/auth_token matching, which another local cluster may have rewritten
    before = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=80 * 1024 * 1024)
    try:
        yield
    finally:
        ray.shutdown()
        if before is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = before


def _sweep(fake: FakeServer, store: Path, **overrides: Any) -> Any:
    kwargs: dict[str, Any] = dict(
        level=2, limit=LIMIT, strategy="majority", n=N, backend="openai", base_url=fake.base_url, model="fake",
        max_n=MAX_N, input_price=1.0, output_price=2.0, store=store,
    )  # fmt: skip
    kwargs.update(overrides)
    return api_run("arithmetic", **kwargs)


def _contents(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """What a sweep stored, without what depends on wall time (latency, busy time, timestamps)."""
    conn = sqlite3.connect(path)
    try:
        q = {
            "runs": "SELECT run_id, label, status FROM runs WHERE status != 'pool' ORDER BY run_id",
            "problems": "SELECT * FROM problems ORDER BY run_id, problem_id",
            "requests": "SELECT run_id, request_key, problem_id, step, start_index, n, seed, prompt_tokens, "
            "cached_prompt_tokens, completion_tokens FROM requests ORDER BY run_id, request_key",
            "samples": "SELECT run_id, problem_id, step, sample_index, request_key, text, finish_reason, answer, correct, "
            "prompt_tokens, cached_prompt_tokens, completion_tokens, reasoning_tokens, seed, logprobs_json "
            "FROM samples ORDER BY run_id, problem_id, step, sample_index",
            "results": "SELECT * FROM results ORDER BY run_id, problem_id",
        }
        return {name: conn.execute(sql).fetchall() for name, sql in q.items()}
    finally:
        conn.close()


def test_ray_and_local_executors_store_identical_results(tmp_path: Path, cluster: None) -> None:
    with FakeServer() as fake:
        local = _sweep(fake, tmp_path / "local.db")
        local_requests = len(fake.model.keys)
    with FakeServer() as fake:
        remote = _sweep(fake, tmp_path / "ray.db", executor="ray")
        ray_keys = list(fake.model.keys)
    assert remote.run_id == local.run_id
    assert local_requests == len(ray_keys) == LIMIT * N // MAX_N
    assert len(set(ray_keys)) == len(ray_keys)  # no request sent twice across workers
    stored = _contents(tmp_path / "ray.db")
    assert stored == _contents(tmp_path / "local.db")
    assert len(stored["samples"]) == LIMIT * N and len(stored["results"]) == LIMIT
    assert remote.totals["cost_usd"] == pytest.approx(local.totals["cost_usd"])  # token-priced: exact
    assert remote.pool.answers.tolist() == local.pool.answers.tolist()


@pytest.mark.parametrize("strategy", ["pf", "bon"])
def test_verifier_and_search_strategies_store_the_same_on_ray(tmp_path: Path, cluster: None, strategy: str) -> None:
    # pf: content-named steps; bon with the judge: a second backend role the workers rebuild from the config
    extra = {"verifier": "judge"} if strategy == "bon" else {}
    stores = {}
    for executor in ("local", "ray"):
        with FakeServer() as fake:
            stores[executor] = _sweep(fake, tmp_path / f"{executor}.db", strategy=strategy, executor=executor, **extra)
    assert stores["ray"].run_id == stores["local"].run_id
    assert _contents(tmp_path / "ray.db") == _contents(tmp_path / "local.db")
    judged = sqlite3.connect(tmp_path / "ray.db").execute("SELECT COUNT(*) FROM requests WHERE step LIKE '%judge/%'")  # under the verifier's prefix in the pool
    assert (judged.fetchone()[0] > 0) == (strategy == "bon")


def test_ray_resume_sends_only_what_is_missing(tmp_path: Path, cluster: None) -> None:
    db = tmp_path / "resume.db"
    # the server serves 5 requests and then refuses: the run stops part-way with whole requests stored
    with FakeServer(fail_after=5) as fake:
        with pytest.raises(UserError):
            _sweep(fake, db, executor="ray", max_retries=0)
    first = _contents(db)
    assert len(first["requests"]) == 5 and first["runs"][0][2] == "interrupted"
    with FakeServer() as fake:
        done = _sweep(fake, db, executor="ray")  # the same flags: the same run, resumed
        resent = list(fake.model.keys)
    assert len(resent) == LIMIT * N // MAX_N - 5  # stored requests are never paid twice
    assert not {k.split("/", 1)[1] for k in resent} & {r[1] for r in first["requests"]}
    with FakeServer() as fake:
        _sweep(fake, tmp_path / "clean.db")
    assert _contents(db) == _contents(tmp_path / "clean.db")
    assert done.totals["samples"] == LIMIT * N


def test_a_run_wide_budget_is_refused_with_ray(tmp_path: Path, cluster: None) -> None:
    with FakeServer() as fake, pytest.raises(UserError, match="not supported with --executor ray"):
        _sweep(fake, tmp_path / "b.db", executor="ray", budget_usd=1.0)
    assert len(fake.model.keys) == 0


def test_without_the_flag_nothing_imports_ray() -> None:
    code = (
        "import sys, infereco, infereco.api, infereco.cli, infereco.runner, infereco.backends.openai\n"
        "assert 'ray' not in sys.modules, 'ray imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_executor_ray_and_its_flag_errors(tmp_path: Path, cluster: None, capsys: Any) -> None:
    import json

    from infereco.cli import main

    with FakeServer() as fake:
        args = ["run", "--backend", "openai", "--model", "fake", "--base-url", fake.base_url, "--limit", "3",
                "--n", "2", "--input-price", "0", "--output-price", "0", "--store", str(tmp_path / "c.db"), "--quiet"]  # fmt: skip
        main([*args, "--executor", "ray", "--json"])
        assert json.loads(capsys.readouterr().out)["totals"]["samples"] == 6
        for extra, message in (
            (["--ray-address", "auto"], "--ray-address needs --executor ray"),
            (["--executor", "spark"], "--executor must be local or ray"),
        ):
            with pytest.raises(SystemExit) as exit_:
                main([*args, *extra])
            assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_a_missing_ray_is_one_line_naming_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with FakeServer() as fake, pytest.raises(UserError, match=r"pip install 'infereco\[ray\]'"):
        _sweep(fake, tmp_path / "m.db", executor="ray")
    assert len(fake.model.keys) == 0


def test_per_problem_budgets_hold_on_ray_as_locally(tmp_path: Path, cluster: None) -> None:
    from infereco.budget import prompt_token_bound
    from infereco.tasks import arithmetic_task

    task = arithmetic_task(level=2, limit=LIMIT)
    # room for one request (n=2, max_tokens 30) of every problem, never for two
    per_problem = max(prompt_token_bound(task.messages(p)) + 2 * 30 for p in task.problems)
    results = []
    for executor in ("local", "ray"):
        with FakeServer() as fake:
            results.append(_sweep(fake, tmp_path / f"{executor}.db", executor=executor, max_tokens=30,
                                  budget_tokens_per_problem=per_problem))  # fmt: skip
    local, remote = results
    assert _contents(tmp_path / "ray.db") == _contents(tmp_path / "local.db")
    # every problem stops at its budget and is answered from the one request it could pay for
    assert remote.totals["requests"] == LIMIT and remote.totals["problems_done"] == LIMIT
    assert remote.budget_note == local.budget_note and f"{LIMIT} problem(s) stopped" in (remote.budget_note or "")


def test_kill9_of_a_ray_driver_then_resume_on_ray(tmp_path: Path, cluster: None) -> None:
    """A real `infereco run --executor ray` joins this module's cluster; SIGKILL it mid-run, resume."""
    import signal

    import test_kill_resume as kr

    address = ray.get_runtime_context().gcs_address
    with fake_server_process(kr.DELAY_S) as server:
        reference = tmp_path / "clean.db"
        assert kr._cli(kr._command(server, reference)).returncode == 0  # local, uninterrupted
        served_reference = len(kr._stats(server))
        store = tmp_path / "killed.db"
        command = kr._command(server, store) + ["--executor", "ray", "--ray-address", address]
        log = tmp_path / "driver.log"
        env = {**kr.ENV, "RAY_AUTH_MODE": "disabled"}
        with open(log, "w") as err:
            driver = subprocess.Popen(command, env=env, cwd=kr.ROOT, stdout=subprocess.DEVNULL, stderr=err)
        try:
            kr._wait_for_samples(driver, store)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {log.read_text()[-500:]}") from None
        finally:
            driver.send_signal(signal.SIGKILL)
            driver.wait(timeout=10)
        time.sleep(1.0)  # Ray ends the dead driver's workers; answers in flight finish on the server
        run_id = kr._query(store, "SELECT run_id FROM runs WHERE status != 'pool'")[0][0]
        stored = {f"{run_id}/{key}" for (key,) in kr._query(store, "SELECT request_key FROM requests")}
        assert kr._check_killed_store(store) == len(stored)
        served_before = kr._stats(server)[served_reference:]
        done = subprocess.run(command + ["--resume"], env=env, cwd=kr.ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        served_after = kr._stats(server)[served_reference:]
        assert served_after[: len(served_before)] == served_before
        new = served_after[len(served_before) :]
        assert not set(new) & stored, "a request stored before the kill was sent again"
        assert len(new) == kr.TOTAL_REQUESTS - len(stored), "resume must send exactly the missing requests"
        kr._assert_whole_requests(store)
        assert kr._content(store) == kr._content(reference)

