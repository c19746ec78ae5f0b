"""`infereco serve` driven by the official `openai` client against a loopback upstream.

Each server is the real command (`python -m infereco.cli serve --port 0 ...`) in a subprocess; the
upstream (tests/chatupstream.py) keeps its own bill, and every usage and cost figure the proxy
returns is checked against that bill and the price flags.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from chatupstream import upstream

IN_PRICE, OUT_PRICE = 1.5, 6.0  # USD per 1M tokens, given as flags
SECRET = "sk-upstream-secret-4242"
Q = [{"role": "user", "content": "What is 17 + 25?"}]


class Served:
    def __init__(self, proc: subprocess.Popen[str], url: str, store: Path) -> None:
        self.proc, self.url, self.store = proc, url, store
        self.stderr: list[str] = []

    def client(self, **kw: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url, api_key="client-key", max_retries=0, timeout=30, **kw)


@contextmanager
def serving(base_url: str, tmp_path: Path, *flags: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    store = tmp_path / "served.db"
    cmd = [sys.executable, "-m", "infereco.cli", "serve", "--port", "0", "--backend", "openai", "--base-url", base_url,
           "--model", "fake", "--input-price", str(IN_PRICE), "--output-price", str(OUT_PRICE), "--store", str(store),
           "--max-retries", "1", *flags]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "OPENAI_API_KEY": SECRET, **(env or {})})
    assert proc.stderr is not None
    line = proc.stderr.readline()
    found = re.search(r"(http://127\.0\.0\.1:\d+/v1)", line)
    if not found:
        proc.kill()
        raise AssertionError(f"serve did not start: {line}{proc.stderr.read()}")
    served = Served(proc, found.group(1), store)
    reader = threading.Thread(target=lambda: served.stderr.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        yield served
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
        reader.join(timeout=5)
        log = "".join(served.stderr)
        assert "Traceback" not in log, log


def price(prompt: int, completion: int) -> float:
    return prompt * IN_PRICE / 1e6 + completion * OUT_PRICE / 1e6


def test_plain_request_bills_every_upstream_call(tmp_path: Path) -> None:
    with upstream() as (up, url), serving(url, tmp_path, "--strategy", "majority", "--n", "5", "--max-n", "2") as srv:
        client = srv.client()
        assert [m.id for m in client.models.list()] == ["fake"]
        r = client.chat.completions.create(model="fake", messages=Q)
        info = r.infereco  # type: ignore[attr-defined]
        # N=5 in requests of at most 2 samples: 3 upstream calls, every one in the usage
        requests, prompt, completion = up.bill_for(info["request_id"])
        assert requests == 3 == info["upstream_requests"]
        assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (prompt, completion)
        assert r.usage.total_tokens == prompt + completion
        assert r.usage.cost_usd == pytest.approx(price(prompt, completion))  # type: ignore[attr-defined]
        assert info["cost_usd"] == pytest.approx(r.usage.cost_usd)  # type: ignore[attr-defined]
        # one choice: the full text of a sample that gave the majority's answer
        assert len(r.choices) == 1
        text = r.choices[0].message.content
        assert text.endswith(f"Answer: {info['answer']}")
        votes = {a["answer"]: a["votes"] for a in info["answers"]}
        assert sum(votes.values()) == info["samples"] == 5
        assert votes[info["answer"]] == max(votes.values())
        assert (info["strategy"], info["n"]) == ("majority", 5)
        # the proxy's own client key and the upstream key: only the upstream's is sent upstream
        assert all(h.get("Authorization") == f"Bearer {SECRET}" for h in up.headers)
    # the store holds the run, readable by report, and no key anywhere
    db = srv.store.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("served.db-*"))
    assert SECRET.encode() not in db and b"client-key" not in db
    report = subprocess.run([sys.executable, "-m", "infereco.cli", "report", str(srv.store), "--json"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert report.returncode == 0, report.stderr
    [summary] = json.loads(report.stdout)
    assert summary["run_id"] == info["run_id"] and "serve: fake / majority" in summary["label"]


def test_stream_single_sample_streams_from_the_upstream(tmp_path: Path) -> None:
    with upstream(hold_after_first=True, hold_s=10) as (up, url), serving(url, tmp_path, "--strategy", "repeated") as srv:
        stream = srv.client().chat.completions.create(model="fake", messages=Q, stream=True,
                                                      stream_options={"include_usage": True})  # fmt: skip
        pieces: list[str] = []
        chunks = []
        for chunk in stream:
            chunks.append(chunk)
            if chunk.choices and chunk.choices[0].delta.content:
                if not pieces:
                    up.release()  # the upstream waits for this: only a real stream gets here in time
                pieces.append(chunk.choices[0].delta.content)
        assert up.released_in_time is True
        assert up.bodies[0]["stream"] is True and up.bodies[0]["stream_options"] == {"include_usage": True}
        assert len(pieces) > 3  # word by word, as the upstream sent it
        usage_chunk = chunks[-1]
        assert usage_chunk.choices == []
        info = usage_chunk.infereco  # type: ignore[attr-defined]
        requests, prompt, completion = up.bill_for(info["request_id"])
        assert requests == 1
        assert (usage_chunk.usage.prompt_tokens, usage_chunk.usage.completion_tokens) == (prompt, completion)
        assert usage_chunk.usage.cost_usd == pytest.approx(price(prompt, completion))  # type: ignore[attr-defined]
        assert "".join(pieces) == up.model.answer(up.bodies[0])["choices"][0]["message"]["content"]
        assert info["streamed_from_upstream"] is True and info["ttft_s"] > 0
        assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)
    with sqlite3.connect(srv.store) as db:
        [(stored,)] = db.execute("SELECT info_json FROM results WHERE problem_id=?", (info["request_id"],)).fetchall()
    assert json.loads(stored)["ttft_s"] == info["ttft_s"]  # time to first token, recorded per request


def test_stream_aggregating_strategy_sends_its_choice(tmp_path: Path) -> None:
    with upstream() as (up, url), serving(url, tmp_path, "--strategy", "majority", "--n", "3") as srv:
        client = srv.client()
        chunks = list(client.chat.completions.create(model="fake", messages=Q, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        final = chunks[-1]
        info = final.infereco  # type: ignore[attr-defined]
        assert final.choices[0].finish_reason == "stop"
        assert final.usage is None  # not asked for with stream_options.include_usage
        assert text.endswith(f"Answer: {info['answer']}")
        assert all(not b.get("stream") for b in up.bodies)  # the samples themselves are not streamed
        assert info["samples"] == 3 and info["streamed_from_upstream"] is False
        assert up.bill_for(info["request_id"])[0] == info["upstream_requests"]


def test_per_request_budget(tmp_path: Path) -> None:
    with upstream() as (up, url), serving(url, tmp_path, "--strategy", "majority", "--n", "4") as srv:
        client = srv.client()
        # worst case: 4 × 256 completion tokens at $6/M alone is $0.006; $0.001 cannot cover it
        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(model="fake", messages=Q, extra_headers={"X-Infereco-Budget-Usd": "0.001"})
        assert refused.value.status_code == 402
        assert refused.value.body["type"] == "budget_exceeded"  # type: ignore[index]
        assert "X-Infereco-Budget-Usd" in refused.value.body["message"]  # type: ignore[index]
        assert up.bodies == []  # nothing was sent upstream
        # the same with a smaller max_tokens fits, and costs no more than the budget
        r = client.chat.completions.create(model="fake", messages=Q, max_tokens=32,
                                           extra_headers={"X-Infereco-Budget-Usd": "0.001"})  # fmt: skip
        assert r.usage.cost_usd <= 0.001  # type: ignore[attr-defined]
        assert r.infereco["budget_usd"] == 0.001  # type: ignore[attr-defined]
        assert up.bodies[0]["max_tokens"] == 32
        # streamed requests are refused the same way, before any event
        with pytest.raises(openai.APIStatusError) as refused_stream:
            client.chat.completions.create(model="fake", messages=Q, stream=True,
                                           extra_headers={"X-Infereco-Budget-Usd": "0"})  # fmt: skip
        assert refused_stream.value.status_code == 402
        bad = httpx.post(f"{srv.url}/chat/completions", json={"model": "fake", "messages": Q},
                         headers={"X-Infereco-Budget-Usd": "lots"})  # fmt: skip
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "X-Infereco-Budget-Usd"


def test_server_budget_is_hard_across_requests(tmp_path: Path) -> None:
    with upstream() as (up, url), serving(url, tmp_path, "--strategy", "repeated", "--budget-usd", "0.004") as srv:
        client = srv.client()
        spent, answered, refused = 0.0, 0, 0
        for _ in range(8):  # each may cost up to ~$0.0016 (256 tokens at $6/M + prompt); real ones far less
            try:
                r = client.chat.completions.create(model="fake", messages=Q)
                spent += r.usage.cost_usd  # type: ignore[attr-defined]
                answered += 1
            except openai.APIStatusError as exc:
                assert exc.status_code == 402 and exc.body["type"] == "budget_exceeded"  # type: ignore[index]
                refused += 1
        assert answered >= 2 and spent <= 0.004
        billed = sum(price(p, c) for _, p, c in up.billed)
        assert billed == pytest.approx(spent)
    # a restarted server counts what serving already spent in the store
    with upstream() as (up2, url2), serving(url2, tmp_path, "--strategy", "repeated", "--budget-usd", str(spent + 0.001)) as srv2:
        with pytest.raises(openai.APIStatusError) as exc:
            srv2.client().chat.completions.create(model="fake", messages=Q)
        assert exc.value.status_code == 402 and up2.bodies == []


def test_override_picks_another_run(tmp_path: Path) -> None:
    with upstream() as (up, url), serving(url, tmp_path, "--strategy", "majority", "--n", "3") as srv:
        client = srv.client()
        plain = client.chat.completions.create(model="fake", messages=Q)
        over = client.chat.completions.create(model="fake", messages=Q, extra_body={"infereco": {"strategy": "repeated", "n": 2}})
        a, b = plain.infereco, over.infereco  # type: ignore[attr-defined]
        assert (b["strategy"], b["n"], b["samples"]) == ("repeated", 2, 2)
        assert a["run_id"] != b["run_id"]
        _, prompt, completion = up.bill_for(b["request_id"])
        assert over.usage.cost_usd == pytest.approx(price(prompt, completion))  # type: ignore[attr-defined]
        for body, param in (({"n": 0}, "infereco.n"), ({"strategy": "nope"}, "infereco.strategy"),
                            ({"colour": "red"}, "infereco.colour"), ({"strategy": "majority", "verifier": "judge"}, "infereco.verifier"),
                            ({"judge_base_url": "http://127.0.0.1:1/v1"}, "infereco.judge_base_url"),  # where calls go: the server's choice
                            ({"strategy": "beam", "beam_width": 0}, "infereco.beam_width")):  # fmt: skip
            with pytest.raises(openai.BadRequestError) as bad:
                client.chat.completions.create(model="fake", messages=Q, extra_body={"infereco": body})
            assert bad.value.body["param"] == param, bad.value.body  # type: ignore[index]
    with sqlite3.connect(srv.store) as db:
        labels = {r[0] for r in db.execute("SELECT label FROM runs WHERE status != 'pool'")}
    assert labels == {"serve: fake / majority N=3", "serve: fake / repeated N=2"}


def test_bad_requests_name_the_field(tmp_path: Path) -> None:
    with upstream() as (up, url), serving(url, tmp_path) as srv:
        post = lambda body, **kw: httpx.post(f"{srv.url}/chat/completions", content=body if isinstance(body, bytes) else json.dumps(body), **kw)  # noqa: E731
        cases = [
            (b"{not json", 400, None),
            ([1, 2], 400, None),
            ({"messages": Q}, 400, "model"),
            ({"model": "fake"}, 400, "messages"),
            ({"model": "fake", "messages": []}, 400, "messages"),
            ({"model": "fake", "messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages[0].role"),
            ({"model": "fake", "messages": [{"role": "user", "content": 7}]}, 400, "messages[0].content"),
            ({"model": "fake", "messages": Q, "max_tokens": 0}, 400, "max_tokens"),
            ({"model": "fake", "messages": Q, "temperature": 5}, 400, "temperature"),
            ({"model": "fake", "messages": Q, "n": 3}, 400, "n"),
            ({"model": "fake", "messages": Q, "tools": [{"type": "function"}]}, 400, "tools"),
            ({"model": "other", "messages": Q}, 404, "model"),
        ]
        for body, status, param in cases:
            r = post(body)
            assert r.status_code == status, (body, r.text)
            err = r.json()["error"]
            assert err["param"] == param and err["message"] and "Traceback" not in err["message"], (body, err)
        assert httpx.get(f"{srv.url}/nowhere").json()["error"]["type"] == "not_found_error"
        assert up.bodies == []


def test_upstream_failure_is_a_502_naming_it(tmp_path: Path) -> None:
    with upstream(fail_status=500) as (up, url), serving(url, tmp_path, "--strategy", "repeated") as srv:
        client = srv.client()
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model="fake", messages=Q)
        assert failed.value.status_code == 502
        assert url in failed.value.body["message"] and "gave up after 2 tries" in failed.value.body["message"]  # type: ignore[index]
        assert SECRET not in json.dumps(failed.value.body)
        with pytest.raises(openai.APIError):  # streamed: the error arrives as an event
            list(client.chat.completions.create(model="fake", messages=Q, stream=True))
        assert len(up.bodies) == 4  # two requests, each tried twice (--max-retries 1)


def test_concurrent_requests_bounded_by_concurrency(tmp_path: Path) -> None:
    with upstream(delay_s=0.3) as (up, url), serving(url, tmp_path, "--strategy", "repeated", "--concurrency", "3") as srv:
        client = srv.client()
        results: list[Any] = []
        threads = [threading.Thread(target=lambda: results.append(client.chat.completions.create(model="fake", messages=Q)))
                   for _ in range(8)]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(results) == 8
        assert up.max_in_flight == 3  # served concurrently, never more than --concurrency at once
        assert len({r.infereco["request_id"] for r in results}) == 8  # type: ignore[attr-defined]


def test_server_api_key(tmp_path: Path) -> None:
    with upstream() as (up, url), serving(url, tmp_path, "--serve-api-key-env", "SERVE_KEY", env={"SERVE_KEY": "let-me-in"}) as srv:
        with pytest.raises(openai.AuthenticationError):
            srv.client().chat.completions.create(model="fake", messages=Q)
        ok = openai.OpenAI(base_url=srv.url, api_key="let-me-in", max_retries=0).chat.completions.create(model="fake", messages=Q)
        assert ok.choices[0].message.content
        assert all("let-me-in" not in json.dumps(h) for h in up.headers)


def test_bad_flags_are_one_line(tmp_path: Path) -> None:
    for flags, needle in ((["--strategy", "nope"], "--strategy"), (["--n", "0"], "--n"), (["--concurrency", "0"], "--concurrency"),
                          (["--budget-usd", "-1"], "--budget-usd")):  # fmt: skip
        r = subprocess.run([sys.executable, "-m", "infereco.cli", "serve", "--port", "0", "--backend", "openai",
                            "--base-url", "http://127.0.0.1:9/v1", "--model", "fake", "--input-price", "0", "--output-price", "0",
                            "--store", str(tmp_path / "x.db"), *flags], capture_output=True, text=True, timeout=60)  # fmt: skip
        assert r.returncode == 2, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr, r.stderr


def test_judge_calls_are_in_the_usage(tmp_path: Path) -> None:
    with upstream() as (up, url), serving(url, tmp_path, "--strategy", "bon", "--verifier", "judge", "--n", "3") as srv:
        r = srv.client().chat.completions.create(model="fake", messages=Q)
        info = r.infereco  # type: ignore[attr-defined]
        requests, prompt, completion = up.bill_for(info["request_id"])
        judged = [b for b in up.bodies if b.get("max_tokens") == 1]  # the judge's one-token yes/no calls
        assert judged and requests == 1 + len(judged) == info["upstream_requests"]
        assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (prompt, completion)
        assert r.usage.cost_usd == pytest.approx(price(prompt, completion))  # type: ignore[attr-defined]
        assert all("score" in a for a in info["answers"])


def test_client_hanging_up_mid_stream(tmp_path: Path) -> None:
    with upstream(hold_after_first=True, hold_s=10) as (up, url), serving(url, tmp_path, "--strategy", "repeated") as srv:
        with httpx.stream("POST", f"{srv.url}/chat/completions", timeout=30,
                          json={"model": "fake", "messages": Q, "stream": True}) as r:  # fmt: skip
            for line in r.iter_lines():
                if '"content": "Adding' in line:
                    break  # the first word arrived: hang up
        up.release()
        again = srv.client().chat.completions.create(model="fake", messages=Q)  # the server carries on
        assert again.choices[0].message.content
    with sqlite3.connect(srv.store) as db:  # the abandoned request was paid for: it is stored, whole
        rows = db.execute("SELECT COUNT(*) FROM results").fetchone()[0], db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    assert rows == (2, 2) and len(up.billed) == 2


def test_stream_cut_by_the_upstream_is_not_retried(tmp_path: Path) -> None:
    with upstream(break_after_first=True) as (up, url), serving(url, tmp_path, "--strategy", "repeated", "--max-retries", "3") as srv:
        stream = srv.client().chat.completions.create(model="fake", messages=Q, stream=True)
        got: list[str] = []
        with pytest.raises(openai.APIError) as failed:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    got.append(chunk.choices[0].delta.content)
        assert got == ["Adding "]  # the client has the first word; a retry could have contradicted it
        assert "after streaming began" in str(failed.value)
        assert len(up.bodies) == 1  # not retried


@pytest.mark.model
def test_embedded_model_streams_and_bills(tmp_path: Path) -> None:
    """The default backend: llama.cpp's server streams its tokens through the proxy (with the
    logprobs that count them), and the request is billed its share of machine time."""
    store = tmp_path / "served.db"
    proc = subprocess.Popen([sys.executable, "-m", "infereco.cli", "serve", "--port", "0", "--strategy", "repeated",
                             "--store", str(store), "--timeout", "120"], stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+/v1)", line)
        assert found, line + proc.stderr.read()
        client = openai.OpenAI(base_url=found.group(1), api_key="unused", max_retries=0, timeout=300)
        [model] = [m.id for m in client.models.list()]
        chunks = list(client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Count from 1 to 5."}], max_tokens=12, temperature=0,
            stream=True, stream_options={"include_usage": True},
        ))  # fmt: skip
        pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
        final = chunks[-1]
        assert len(pieces) > 2 and final.infereco["streamed_from_upstream"] is True  # type: ignore[attr-defined]
        assert 0 < final.usage.completion_tokens <= 12 and final.usage.prompt_tokens > 0
        assert final.usage.cost_usd > 0  # type: ignore[attr-defined]  # machine time at --usd-per-hour's default
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0
