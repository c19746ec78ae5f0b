"""LLM-as-judge (P(yes) from logprobs) and a remote reward model: scored through the run's ledger."""

from __future__ import annotations

import json
import math
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from fakeserver import FakeServer
from loopback import JsonHandler, serving
from infereco.api import run as api_run
from infereco.errors import UserError
from infereco.verifiers.judge import p_yes
from infereco.verifiers.reward_model import to_unit


def test_p_yes_reads_the_first_tokens_alternatives() -> None:
    first = {"token": "Yes", "logprob": -0.2, "top_logprobs": [
        {"token": "Yes", "logprob": -0.2}, {"token": " no", "logprob": -1.8}, {"token": "The", "logprob": -3.0}]}  # fmt: skip
    value = p_yes([first])
    assert value == pytest.approx(1 / (1 + math.exp(-1.6)))  # e^-0.2 / (e^-0.2 + e^-1.8); "The" is neither
    assert p_yes(None) == 0.5 and p_yes([{"token": "Maybe", "logprob": -0.1}]) == 0.5
    assert p_yes([{"token": "NO", "logprob": -0.01}]) == 0.0


def test_reward_scores_outside_the_unit_interval_are_logits() -> None:
    assert to_unit(0.7) == 0.7 and to_unit(0.0) == 0.0
    assert to_unit(3.0) == pytest.approx(0.9526, abs=1e-4) and to_unit(-1000.0) == pytest.approx(0.0)


class _Verifiers(JsonHandler):
    """A judge (/v1/chat/completions) and a reward model (/pooling) that know what 2 + 3 is.

    Both read "Answer: X" from the text they are shown and like it when X is the sum of the first
    two numbers of the problem.
    """

    calls: list[str] = []

    def _verdict(self, problem: str, solution: str) -> bool:
        numbers = [int(x) for x in re.findall(r"\d+", problem)[:2]]
        answer = re.findall(r"Answer: (-?\d+)", solution)
        return bool(answer) and int(answer[-1]) == sum(numbers)

    def answer(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        type(self).calls.append(path)
        if path == "/pooling":
            problem, solution = body["messages"][0]["content"], body["messages"][1]["content"]
            data = {"data": [{"index": 0, "data": [[0.0, 2.0 if self._verdict(problem, solution) else -2.0]]}],
                    "usage": {"prompt_tokens": 50}}  # fmt: skip
        else:
            prompt = body["messages"][-1]["content"]
            problem = prompt.split("Problem:\n", 1)[1].split("\n\n", 1)[0]
            good = self._verdict(problem, prompt.split("Solution:\n", 1)[1])
            yes, no = (-0.1, -2.5) if good else (-2.5, -0.1)
            top = [{"token": "Yes", "logprob": yes}, {"token": "No", "logprob": no}]
            data = {"choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "Yes" if good else "No"},
                                 "logprobs": {"content": [{"token": top[0 if good else 1]["token"], "logprob": max(yes, no), "top_logprobs": top}]}}],
                    "usage": {"prompt_tokens": 60, "completion_tokens": 1}}  # fmt: skip
        return data


@pytest.fixture()
def verifiers() -> Any:
    _Verifiers.calls = []
    with serving(_Verifiers) as url:
        yield url


def _prices(tmp_path: Path) -> Path:
    path = tmp_path / "prices.toml"
    path.write_text('[models."fake"]\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n'
                    '[models."judge"]\ninput_per_mtok = 10.0\noutput_per_mtok = 20.0\n')  # fmt: skip
    return path


def _verifier_requests(store: Path, run_id: str, prefix: str) -> tuple[int, float]:
    with sqlite3.connect(store) as conn:
        count, cost = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(cost_usd), 0) FROM requests WHERE run_id=? AND step LIKE ?", (run_id, prefix + "%")
        ).fetchone()
    return count, cost


@pytest.mark.parametrize("verifier", ["judge", "reward"])
def test_a_model_verifier_picks_right_answers_and_is_billed_in_the_same_ledger(
    tmp_path: Path, verifiers: str, verifier: str
) -> None:
    store = tmp_path / "v.db"
    options: dict[str, Any] = dict(level=1, limit=4, n=4, max_n=4, backend="openai", model="fake", store=store,
                                   prices=_prices(tmp_path), strategy="weighted", verifier=verifier)  # fmt: skip
    if verifier == "judge":
        options.update(judge_model="judge", judge_base_url=f"{verifiers}/v1")
    else:
        options.update(reward_url=f"{verifiers}/pooling", reward_price=5.0)
    with FakeServer(p_correct=0.4) as fake:
        result = api_run("arithmetic", base_url=fake.base_url, **options)
        sent = len(fake.model.keys)
        calls = len(_Verifiers.calls)
        again = api_run("arithmetic", base_url=fake.base_url, **options)
        assert len(fake.model.keys) == sent and len(_Verifiers.calls) == calls  # resumed: nobody asked twice
    # the verifier knows the truth, so weighted voting is right wherever any sample is
    assert result.summary["final_accuracy"]["mean"] == pytest.approx(result.summary["coverage"]["mean"])
    assert result.summary["final_accuracy"]["mean"] > result.summary["accuracy"]["mean"]
    count, cost = _verifier_requests(store, result.run_id, verifier + "/outcome/")
    distinct = len({s for s in _Verifiers.calls})
    assert count == calls and distinct == 1 and cost > 0  # one stored, priced request per judged text
    assert result.totals["cost_usd"] == pytest.approx(again.totals["cost_usd"])
    config = json.loads(sqlite3.connect(store).execute("SELECT config_json FROM runs").fetchone()[0])
    assert verifier in config["roles"]  # the verifier's backend and price are stored with the run


def test_a_reward_model_without_a_price_is_an_input_error(tmp_path: Path, verifiers: str) -> None:
    with FakeServer() as fake, pytest.raises(UserError, match="--reward-price"):
        api_run("arithmetic", level=1, limit=1, n=2, backend="openai", model="fake", base_url=fake.base_url,
                input_price=0, output_price=0, store=tmp_path / "x.db", strategy="bon", verifier="reward",
                reward_url=f"{verifiers}/pooling")  # fmt: skip


def test_the_judge_prompt_is_configurable_and_part_of_the_run(tmp_path: Path, verifiers: str) -> None:
    prompt = "Problem:\n{problem}\n\nSolution:\n{solution}\n\nRight? Yes or No."
    options: dict[str, Any] = dict(level=1, limit=2, n=2, max_n=2, backend="openai", model="fake", store=tmp_path / "p.db",
                                   prices=_prices(tmp_path), strategy="bon", verifier="judge", judge_model="judge")  # fmt: skip
    with FakeServer() as fake:
        default = api_run("arithmetic", base_url=fake.base_url, judge_base_url=f"{verifiers}/v1", **options)
        custom = api_run("arithmetic", base_url=fake.base_url, judge_base_url=f"{verifiers}/v1", judge_prompt=prompt, **options)
        with pytest.raises(UserError, match="--judge-prompt"):
            api_run("arithmetic", base_url=fake.base_url, judge_base_url=f"{verifiers}/v1", judge_prompt="Right?", **options)
    assert default.run_id != custom.run_id  # another question is another experiment
    assert custom.pool.config["strategy"]["verifier"]["outcome_prompt"] == prompt


def test_p_yes_reads_garbled_logprobs_as_no_information() -> None:
    from infereco.verifiers.judge import p_yes

    assert p_yes([{"token": "Yes", "logprob": 1000}]) == 1.0  # a log-probability above 0 is read as 0, not e^1000
    assert p_yes([{"token": "Yes", "logprob": "x"}, "junk"]) == 0.5
    assert p_yes(["junk"]) == 0.5 and p_yes({"a": 1}) == 0.5  # type: ignore[arg-type]
    assert p_yes([{"token": "Yes", "top_logprobs": "x"}]) == 0.5
    assert p_yes([{"top_logprobs": [None, {"token": ["Yes"], "logprob": -1}, {"token": "No", "logprob": float("nan")}]}]) == 0.5
