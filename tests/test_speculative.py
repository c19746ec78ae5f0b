"""Speculative steps: a fake drafter/target pair on loopback; drafts are kept or rewritten exactly per threshold."""

from __future__ import annotations

import json
import math
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from infereco.api import run as api_run
from infereco.strategies.speculative import expected_digit
from loopback import JsonHandler, serving

# the drafter's step at each depth, and the rating the target gives it (in the step's text)
DRAFTS = ["d0 rate=9", "d1 rate=3", "d2 rate=7", "Answer: 6 rate=8"]


class _Pair(JsonHandler):
    """Model "draft" writes DRAFTS[depth]; model "target" rates a draft by its rate=K, or writes "t<depth>"."""

    seen: list[tuple[str, str]] = []

    def answer(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        messages = body["messages"]
        prefix = messages[-1]["content"] if messages[-1]["role"] == "assistant" else ""
        depth = prefix.count("\n")
        n = int(body.get("n", 1))
        if "Reply with one digit" in messages[-1]["content"]:
            kind = "rate"
            digit = re.findall(r"rate=(\d)", messages[-1]["content"].split("Proposed next step:", 1)[1])[0]
            top = [{"token": digit, "logprob": 0.0}, {"token": "x", "logprob": -9.0}]
            choices = [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": digit},
                        "logprobs": {"content": [{"token": digit, "logprob": 0.0, "top_logprobs": top}]}}]  # fmt: skip
            usage = {"prompt_tokens": 40, "completion_tokens": 1}
        else:
            kind = body["model"]
            text = DRAFTS[depth] if kind == "draft" else (f"t{depth}" if depth < 3 else "Answer: 6")
            words = text.split()
            choices = [{"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": prefix + text},
                        "logprobs": {"content": [{"token": w, "logprob": -0.1} for w in words]}} for i in range(n)]  # fmt: skip
            usage = {"prompt_tokens": 20 + depth, "completion_tokens": len(words) * n}
        type(self).seen.append((body["model"], kind))
        return {"choices": choices, "usage": usage}


@pytest.fixture()
def pair() -> Any:
    _Pair.seen = []
    with serving(_Pair) as url:
        yield f"{url}/v1"


def _prices(tmp_path: Path) -> Path:
    """The target at 10x the drafter's price per token."""
    path = tmp_path / "prices.toml"
    path.write_text('[models."target"]\ninput_per_mtok = 10.0\noutput_per_mtok = 30.0\n'
                    '[models."draft"]\ninput_per_mtok = 1.0\noutput_per_mtok = 3.0\n')  # fmt: skip
    return path


def test_expected_digit() -> None:
    top = [{"token": "8", "logprob": -0.1}, {"token": " 2", "logprob": -2.4}, {"token": "no", "logprob": -1.0}]
    p8, p2 = math.exp(-0.1), math.exp(-2.4)
    assert expected_digit([{"token": "8", "logprob": -0.1, "top_logprobs": top}]) == pytest.approx((8 * p8 + 2 * p2) / (p8 + p2))
    assert expected_digit(None) == 0.0


@pytest.mark.parametrize("threshold,kept", [(7.0, [True, False, True, True]), (8.5, [True, False, False, False])])
def test_drafts_are_kept_or_rewritten_per_threshold_and_each_model_is_billed(
    tmp_path: Path, pair: str, threshold: float, kept: list[bool]
) -> None:
    store = tmp_path / "spec.db"
    result = api_run("arithmetic", level=1, limit=1, strategy="majority", n=2, backend="openai", model="target",
                     base_url=pair, prices=_prices(tmp_path), store=store, draft_model="draft", draft_base_url=pair,
                     accept_threshold=threshold, temperature=0.0)  # fmt: skip
    with sqlite3.connect(store) as conn:
        info = json.loads(conn.execute("SELECT info_json FROM results").fetchone()[0])
        rows = conn.execute("SELECT step, prompt_tokens, completion_tokens, cost_usd FROM requests").fetchall()
    expected_authors = {"draft": 2 * sum(kept), "main": 2 * (4 - sum(kept))}  # two chains, four steps each
    assert info["steps_by"] == {k: v for k, v in expected_authors.items() if v}
    by_kind: dict[str, list[tuple[int, int, float]]] = {}
    for step, p, c, usd in rows:
        by_kind.setdefault(step.split("/", 1)[0], []).append((p, c, usd))
    # both chains share every prefix: one draft request (n=2), one rating and (if rejected) one rewrite per depth
    depths = len(DRAFTS)
    assert len(by_kind["draft"]) == depths and len(by_kind["rate"]) == depths
    assert len(by_kind.get("target", [])) == 2 * kept.count(False)  # each chain's rejected draft, rewritten
    # drafter tokens at the drafter's price, ratings and rewrites at the target's
    for p, c, usd in by_kind["draft"]:
        assert usd == pytest.approx((p * 1.0 + c * 3.0) / 1e6)
    for p, c, usd in by_kind["rate"] + by_kind.get("target", []):
        assert usd == pytest.approx((p * 10.0 + c * 30.0) / 1e6)
    assert result.totals["problems_done"] == 1
    models = {m for m, _ in _Pair.seen}
    assert models == {"draft", "target"}


def test_particle_filtering_takes_the_speculative_generator_too(tmp_path: Path, pair: str) -> None:
    store = tmp_path / "pf.db"
    result = api_run("arithmetic", level=1, limit=1, strategy="pf", n=2, backend="openai", model="target",
                     base_url=pair, prices=_prices(tmp_path), store=store, draft_model="draft",
                     draft_base_url=pair, accept_threshold=7.0)  # fmt: skip
    with sqlite3.connect(store) as conn:
        kinds = {step.split("/", 1)[0] for (step,) in conn.execute("SELECT step FROM requests")}
    assert kinds == {"draft", "rate", "target"}  # drafted, rated, the rejected step rewritten
    assert result.pool.config["strategy"]["generator"] == {"draft_model": "draft", "threshold": 7.0}
