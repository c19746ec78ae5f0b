"""The one run description (`RunConfig`): every front door builds it, inapplicable options are refused,
roles their backends cannot serve are refused, old stored runs still resume.
"""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from fakeserver import FakeServer
from infereco import api
from infereco.cli import main
from infereco.errors import BackendError, UserError
from infereco.runconfig import STRATEGY_OPTIONS, RunConfig, flag
from infereco.strategies import registry

FREE = {"input_price": 0.0, "output_price": 0.0}


def _cli(argv: list[str]) -> tuple[int, str, str]:
    err, out = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            main(argv)
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def _one_line(argv: list[str]) -> str:
    code, out, err = _cli(argv)
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err + out
    return lines[0]


_VALUES: dict[str, str] = {
    "verifier": "arithmetic", "judge_model": "j", "judge_base_url": "http://127.0.0.1:9/v1", "judge_prompt": "{solution}?",
    "reward_url": "http://127.0.0.1:9/pooling", "reward_model": "rm", "reward_price": "0", "submit": "2", "max_steps": "3",
    "step_delimiter": "\\n", "beam_width": "2", "pf_temperature": "0.5", "pf_argmax": "", "entropy_floor": "0.4",
    "round_size": "2", "stop_rule": "margin", "stop_confidence": "0.9", "stop_margin": "2", "draft_model": "d",
    "draft_base_url": "http://127.0.0.1:9/v1", "accept_threshold": "5",
}  # fmt: skip


def _inapplicable() -> list[tuple[str, str]]:
    cases = []
    for option in sorted(STRATEGY_OPTIONS):
        for strategy in registry.entries():
            if option not in strategy.option_names:
                cases.append((strategy.name, option))
    return cases


def test_every_strategy_option_has_a_value_here() -> None:
    assert set(_VALUES) == STRATEGY_OPTIONS  # a new option must join the refusal test below


@pytest.fixture(scope="module")
def server() -> Any:
    with FakeServer() as fake:
        yield fake


@pytest.mark.parametrize(("strategy", "option"), _inapplicable())
def test_an_option_the_strategy_does_not_take_is_refused_by_name(strategy: str, option: str, server: FakeServer,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    value = _VALUES[option]
    argv = ["run", "--backend", "openai", "--base-url", server.base_url, "--model", "fake", "--input-price", "0",
            "--output-price", "0", "--limit", "1", "--n", "2", "--strategy", strategy, "--store", str(tmp_path / "s.db"),
            flag(option)] + ([value] if value else [])  # fmt: skip
    sent = len(server.model.keys)
    line = _one_line(argv)
    assert flag(option) in line
    for taker in registry.takers(option):  # the strategies that do take it are named
        assert taker in line
    assert len(server.model.keys) == sent  # nothing was sent
    assert not (tmp_path / "s.db").exists()  # nor stored


def test_the_issues_examples_are_refused() -> None:
    for argv, named in (
        (["--strategy", "majority", "--submit", "3"], ["--submit", "bon", "weighted", "bom"]),
        (["--strategy", "bon", "--round-size", "2"], ["--round-size", "adaptive"]),
        (["--strategy", "majority", "--beam-width", "2"], ["--beam-width", "beam"]),
        (["--strategy", "beam", "--round-size", "2"], ["--round-size", "adaptive"]),
    ):
        line = _one_line(["run", *argv])
        assert "unexpected keyword" not in line
        for text in named:
            assert text in line


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--strategy", "bon", "--judge-model", "j"], ["--judge-model", "--verifier judge"]),
        (["--strategy", "bon", "--verifier", "arithmetic", "--reward-url", "http://x/pooling"], ["--reward-url", "--verifier reward"]),
        (["--strategy", "beam", "--accept-threshold", "5"], ["--accept-threshold", "--draft-model"]),
        (["--strategy", "adaptive", "--stop-margin", "2"], ["--stop-margin", "--stop-rule margin"]),
        (["--strategy", "majority", "--max-steps", "3"], ["max_steps", "--draft-model"]),
        (["--strategy", "bon", "--verifier", "judge", "--judge-prompt", "Right?"], ["--judge-prompt", "{solution}"]),
        (["--ray-address", "auto"], ["--ray-address", "--executor ray"]),
    ],
)
def test_an_option_that_needs_another_is_refused_without_it(argv: list[str], named: list[str]) -> None:
    line = _one_line(["run", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", *argv])
    for text in named:
        assert text in line


def test_the_library_refuses_the_same_options_before_building_anything(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--submit applies to --strategy bon, weighted, bom only"):
        api.run("arithmetic", strategy="majority", submit=3, store=tmp_path / "s.db")
    with pytest.raises(UserError, match="--beam-width"):
        api.Experiment("arithmetic", "pf", beam_width=2)
    with pytest.raises(UserError, match="--temperature must be <= 2"):
        api.run("arithmetic", temperature=3.0, store=tmp_path / "s.db")
    assert not (tmp_path / "s.db").exists()


def test_cli_library_and_experiment_make_the_same_run(server: FakeServer, tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    common = dict(backend="openai", base_url=server.base_url, model="fake", limit=2, n=3, level=1, max_tokens=16, **FREE)
    first = api.run("arithmetic", strategy="majority", store=store, **common)
    sent = len(server.model.keys)
    exp = api.Experiment("arithmetic", "majority", "fake", **{k: v for k, v in common.items() if k != "model"})
    second = exp.run(store)
    code, _, err = _cli(["run", "--backend", "openai", "--base-url", server.base_url, "--model", "fake", "--limit", "2",
                         "--level", "1", "--n", "3", "--max-tokens", "16", "--input-price", "0", "--output-price", "0", "--store",
                         str(store), "--quiet"])  # fmt: skip
    assert code == 0, err
    assert first.run_id == second.run_id
    assert len(server.model.keys) == sent  # the same description: everything came from the store
    bigger = exp.replace(n=4).run(store)
    assert bigger.run_id == first.run_id  # a pooled strategy's N is not its identity: the pool grows
    with sqlite3.connect(store) as conn:
        [(config,)] = conn.execute("SELECT config_json FROM runs").fetchall()
    description = json.loads(config)["description"]
    assert description["strategy"] == "majority" and description["n"] == 4 and description["base_url"] == server.base_url
    assert RunConfig.build(description).n == 4  # the store keeps a valid description


def test_a_config_file_is_the_description_and_an_inapplicable_key_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('strategy = "majority"\nn = 4\nsubmit = 2\n')
    line = _one_line(["run", "--config", str(path), "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"])
    assert f"{path}:3" in line and "submit" in line and "bon" in line


# -- backend capabilities: a judge needs logprobs ------------------------------------------------


def test_a_judge_on_a_backend_that_cannot_give_logprobs_is_refused_before_any_request(tmp_path: Path) -> None:
    from infereco.backends import registry as backends
    from infereco.backends.openai import OpenAIBackend

    def build(o: backends.BackendOptions) -> OpenAIBackend:
        return OpenAIBackend(str(o.base_url), o.model or "m", max_retries=0)

    backends.register(backends.BackendEntry("plain-text", "a server that never returns logprobs", build, logprobs="no"))
    try:
        with FakeServer() as fake:
            with pytest.raises(UserError, match="needs logprobs.*cannot return them"):
                api.run("arithmetic", strategy="bon", verifier="judge", backend="plain-text", base_url=fake.base_url,
                        model="m", limit=1, n=2, store=tmp_path / "s.db", **FREE)  # fmt: skip
            assert fake.model.keys == []
            line = _one_line(["run", "--backend", "plain-text", "--base-url", fake.base_url, "--model", "m", "--strategy",
                              "pf", "--verifier", "judge", "--input-price", "0", "--output-price", "0", "--store",
                              str(tmp_path / "t.db")])  # fmt: skip
            assert "logprobs" in line and fake.model.keys == []
    finally:
        backends.unregister("plain-text")


def test_a_judge_on_a_server_that_answers_without_logprobs_stops_at_the_first_answer(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    with FakeServer(logprobs=False) as fake:
        with pytest.raises(BackendError, match="without the logprobs") as caught:
            api.run("arithmetic", strategy="bon", verifier="judge", backend="openai", base_url=fake.base_url, model="m",
                    limit=4, n=2, concurrency=1, store=store, **FREE)  # fmt: skip
        assert "\n" not in str(caught.value) and "judge" in str(caught.value)
        judged = [b for b in fake.model.bodies if b.get("max_tokens") == 1]
        assert len(judged) == 1  # one judge call, not one per candidate
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 0  # no 0.5-scored answer stored
        assert conn.execute("SELECT status FROM runs").fetchone()[0] == "interrupted"
    with FakeServer(logprobs=False) as fake:  # resumed: the stored logprob-less answer stops it again, for free
        with pytest.raises(BackendError, match="without the logprobs"):
            api.resume(store)
        assert not any(b.get("max_tokens") == 1 for b in fake.model.bodies)


# -- old stored configs -------------------------------------------------------------------------


def test_a_run_stored_before_descriptions_resumes_with_the_same_samples(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    with FakeServer() as fake:
        common = dict(backend="openai", base_url=fake.base_url, model="fake", limit=3, n=4, max_n=2, max_tokens=16, **FREE)
        full = api.run("arithmetic", strategy="bon", store=tmp_path / "full.db", **common)
        api.run("arithmetic", strategy="bon", store=store, **common)
        before = len(fake.model.keys)
    with sqlite3.connect(store) as conn:  # as the previous version stored it: no description, one problem unfinished
        (config,) = conn.execute("SELECT config_json FROM runs").fetchone()
        legacy = json.loads(config)
        del legacy["description"]
        conn.execute("UPDATE runs SET config_json=?, status='interrupted'", (json.dumps(legacy),))
        conn.execute("DELETE FROM samples WHERE problem_id=(SELECT MIN(problem_id) FROM problems) AND sample_index >= 2")
        conn.execute("DELETE FROM requests WHERE problem_id=(SELECT MIN(problem_id) FROM problems) AND start_index >= 2")
        conn.execute("DELETE FROM results WHERE problem_id=(SELECT MIN(problem_id) FROM problems)")
    with FakeServer(port=int(fake.base_url.rsplit(":", 1)[1].split("/")[0])) as again:
        resumed = api.resume(store)
        assert len(again.model.keys) == 1  # exactly the one missing request (samples 2..3 of one problem)
    assert before > 0 and resumed.run_id == full.run_id
    assert resumed.summary["final_accuracy"] == full.summary["final_accuracy"]


def test_an_unreadable_old_config_is_refused_with_how_to_redo_it(tmp_path: Path) -> None:
    from infereco.store import Store

    store = tmp_path / "s.db"
    with Store(store) as db:
        db.ensure_run("r1", "an old run", {"strategy": {"name": "majority", "n": 1}})
    line = _one_line(["run", "--resume", "--store", str(store)])
    assert "stored run config" in line and "rerun it with its flags" in line


# -- a strategy added through the registry alone --------------------------------------------------


class Shortest:
    """Pool strategy for the test: the answer of the shortest of N samples."""

    name = "shortest"

    def __init__(self, n: int) -> None:
        self.n = n

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "n": self.n}

    async def solve(self, ctx: Any) -> Any:
        from infereco.strategies.base import StrategyResult

        samples = await ctx.sample("sample", self.n)
        best = min(samples, key=lambda s: (len(s.text), s.index))
        return StrategyResult(best.answer, best.correct, {"length": len(best.text)})


def test_a_strategy_registered_in_a_test_module_runs_from_the_cli_and_the_library(tmp_path: Path) -> None:
    from infereco.strategies.options import SubmitOptions  # noqa: F401  (not taken: refused below)

    registry.register(registry.StrategyEntry("shortest", "the shortest sample's answer", lambda n, seed, verifier, **o: Shortest(n),
                                             aliases=("short",)))  # fmt: skip
    try:
        with FakeServer() as fake:
            base = ["--backend", "openai", "--base-url", fake.base_url, "--model", "fake", "--input-price", "0",
                    "--output-price", "0", "--limit", "2", "--n", "3", "--store", str(tmp_path / "s.db"), "--quiet"]  # fmt: skip
            code, _, err = _cli(["run", *base, "--strategy", "short"])
            assert code == 0, err
            line = _one_line(["run", *base, "--strategy", "shortest", "--submit", "2"])
            assert "--submit" in line and "bon" in line and "shortest" in line
            result = api.run("arithmetic", strategy="shortest", backend="openai", base_url=fake.base_url, model="fake",
                             limit=2, n=3, store=tmp_path / "s.db", **FREE)  # fmt: skip
        with sqlite3.connect(tmp_path / "s.db") as conn:
            infos = [json.loads(i) for (i,) in conn.execute("SELECT info_json FROM results")]
        assert len(infos) == 2 and all("length" in i for i in infos)
        assert result.summary["n_problems"] == 2
    finally:
        registry.unregister("shortest")
    with pytest.raises(UserError, match="--strategy 'shortest' is unknown"):
        RunConfig.build({"strategy": "shortest"})
