"""The embedded default backend, for real: the PyPI-shipped model behind a managed llama.cpp server.

Kept small (level-1 sums, 2 problems, 4 samples, short completions) so the whole module takes well
under a minute on 2 cores.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

import infereco
from infereco.backends.models import QWEN_05B, EmbeddedModel, assemble, resolve_model
from infereco.errors import UserError

pytestmark = pytest.mark.model


def test_default_model_is_assembled_once_and_verified() -> None:
    name, path = resolve_model(None)
    assert name == QWEN_05B.name
    assert path.stat().st_size == QWEN_05B.size
    assert path.with_suffix(".sha256").read_text().strip() == QWEN_05B.sha256
    mtime = path.stat().st_mtime_ns
    assert resolve_model("qwen")[1] == path and path.stat().st_mtime_ns == mtime  # not rebuilt


def test_a_model_whose_checksum_does_not_match_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "fake_model_parts"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "a.bin").write_bytes(b"GGUF" + b"\0" * 60)
    (pkg / "data" / "b.bin").write_bytes(b"tail")
    monkeypatch.syspath_prepend(str(tmp_path))
    good = hashlib.sha256(b"GGUF" + b"\0" * 60 + b"tail").hexdigest()
    parts = (("fake_model_parts", "data/a.bin"), ("fake_model_parts", "data/b.bin"))
    ok = EmbeddedModel("fake", "fake.gguf", good, 68, parts)
    assert assemble(ok, tmp_path / "cache").read_bytes().endswith(b"tail")
    bad = EmbeddedModel("fake2", "fake2.gguf", "0" * 64, 68, parts)
    with pytest.raises(UserError, match="sha256.*refusing"):
        assemble(bad, tmp_path / "cache")
    assert not (tmp_path / "cache" / "fake2.gguf").exists()  # nothing half-written is left to load


def test_embedded_run_stores_priced_samples_and_never_pays_twice(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    first = infereco.run("arithmetic", level=1, limit=2, strategy="majority", n=4, max_tokens=48, store=db)
    t = first.totals
    assert (t["problems_done"], t["samples"], t["requests"]) == (2, 8, 2)  # n=4 in one request each
    assert t["completion_tokens"] > 8 and t["cost_usd"] > 0
    assert t["samples_correct"] >= 1  # the 0.5B model adds 2-digit numbers right most of the time
    with sqlite3.connect(db) as conn:
        per_request = conn.execute(
            "SELECT r.completion_tokens, SUM(s.completion_tokens), COUNT(*) FROM requests r "
            "JOIN samples s ON s.run_id=r.run_id AND s.request_key=r.request_key GROUP BY r.request_key"
        ).fetchall()
        assert all(req == total and count == 4 for req, total, count in per_request)
        assert all(c >= 1 for (c,) in conn.execute("SELECT completion_tokens FROM samples"))
    # the budget's prompt bound really bounds what the model's tokenizer + chat template produce
    from infereco.budget import prompt_token_bound
    from infereco.tasks import arithmetic_task

    task = arithmetic_task(level=1, limit=2)
    bounds = {p.id: prompt_token_bound(task.messages(p)) for p in task.problems}
    with sqlite3.connect(db) as conn:
        for problem_id, prompt_tokens in conn.execute("SELECT problem_id, prompt_tokens FROM requests"):
            assert 0 < prompt_tokens <= bounds[problem_id]
    second = infereco.run("arithmetic", level=1, limit=2, strategy="majority", n=4, max_tokens=48, store=db)
    assert second.sent_requests == 0 and second.reused_samples == 8
    assert second.totals == first.totals


def test_server_dies_with_infereco_even_on_sigkill(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from infereco.backends.llamacpp import LlamaServer
        from infereco.backends.models import resolve_model
        server = LlamaServer(resolve_model(None)[1], slots=1, ctx_per_slot=256)
        server.start()
        print(server.port, flush=True)
        time.sleep(120)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        port = int(proc.stdout.readline())  # type: ignore[union-attr]
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        alive = True
        while alive and time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                time.sleep(0.2)
            except httpx.HTTPError:
                alive = False
        assert not alive, "llama.cpp server outlived the infereco process that started it"
    finally:
        if proc.poll() is None:
            proc.kill()


def _server_counts(log: Path) -> list[int]:
    """The tokens llama.cpp's server says it generated for each finished sequence (its own log)."""
    return sorted(int(n) for n in re.findall(r"\|\s+eval time =.*?/\s*(\d+) tokens", log.read_text()))


def _stored_counts(db: Path) -> list[int]:
    with sqlite3.connect(db) as conn:
        return sorted(n for (n,) in conn.execute("SELECT completion_tokens FROM samples"))


@pytest.fixture
def sent_bodies(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Every request body the OpenAI-compatible client sends (the embedded backend uses it too)."""
    from infereco.backends.openai import OpenAIBackend

    bodies: list[dict] = []
    original = OpenAIBackend._body

    def spy(self, request):  # type: ignore[no-untyped-def]
        body = original(self, request)
        bodies.append(body)  # the same dict the request is sent from (stream fields are added to it)
        return body

    monkeypatch.setattr(OpenAIBackend, "_body", spy)
    return bodies


def test_openai_backend_against_a_real_llamacpp_server_counts_every_choice(tmp_path: Path, sent_bodies: list[dict]) -> None:
    """`--backend openai` pointed at llama.cpp's server: each sample's tokens are the server's own
    count (llama.cpp's `usage` covers the first of n choices only), learned before the first request."""
    from infereco.backends.llamacpp import LlamaServer

    server = LlamaServer(resolve_model(None)[1], slots=4, ctx_per_slot=512, log_path=tmp_path / "server.log")
    server.start()
    try:
        db = tmp_path / "remote.db"
        result = infereco.run(
            "arithmetic", level=1, limit=2, n=4, max_n=4, max_tokens=40, backend="openai",
            base_url=server.base_url, model="qwen", store=db, input_price=1.0, output_price=2.0,
        )  # fmt: skip
        assert result.totals["samples"] == 8 and result.totals["samples_correct"] >= 1
        assert _stored_counts(db) == _server_counts(server.log_path)
        assert all(b.get("stream") and "logprobs" not in b for b in sent_bodies)
        expected_cost = (result.totals["prompt_tokens"] * 1.0 + result.totals["completion_tokens"] * 2.0) / 1e6
        assert abs(result.totals["cost_usd"] - expected_cost) < 1e-12
    finally:
        server.stop()


def test_embedded_n16_stores_the_servers_own_count_for_every_sample_without_logprobs(
    tmp_path: Path, sent_bodies: list[dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    from infereco.backends.llamacpp import LlamaServer

    servers: list[LlamaServer] = []
    launch = LlamaServer.launch

    def record(self: LlamaServer) -> None:
        servers.append(self)
        launch(self)

    monkeypatch.setattr(LlamaServer, "launch", record)
    db = tmp_path / "n16.db"
    result = infereco.run("arithmetic", level=3, limit=1, n=16, max_tokens=48, store=db)
    assert result.totals["samples"] == 16
    counts = _stored_counts(db)
    assert counts == _server_counts(servers[0].log_path)
    assert len(set(counts)) > 1  # the samples differ in length: not one count spread over all
    assert sent_bodies and all("logprobs" not in b and "top_logprobs" not in b for b in sent_bodies)


def test_particle_filtering_on_the_embedded_model_continues_its_own_steps(tmp_path: Path) -> None:
    db = tmp_path / "pf.db"
    result = infereco.run("arithmetic", level=3, limit=2, strategy="pf", n=3, max_tokens=40, store=db,
                          search={"max_steps": 5})  # fmt: skip
    with sqlite3.connect(db) as conn:
        steps = [r[0] for r in conn.execute("SELECT step FROM requests")]
        infos = [r[0] for r in conn.execute("SELECT info_json FROM results")]
    assert any(s.startswith("step/1/") for s in steps)  # a second step continued a stored first one
    solutions = [json.loads(i)["solution"] for i in infos]
    assert all(s.count("\n") >= 1 for s in solutions), solutions  # one line per step, joined back
    assert result.totals["problems_done"] == 2 and result.totals["cost_usd"] > 0


def test_the_embedded_model_judges_candidates_by_its_yes_logprob(tmp_path: Path) -> None:
    db = tmp_path / "judge.db"
    result = infereco.run("arithmetic", level=1, limit=1, strategy="bon", n=2, max_tokens=40, store=db, verifier="judge")
    with sqlite3.connect(db) as conn:
        judged = conn.execute(
            "SELECT s.logprobs_json, q.cost_usd FROM samples s JOIN requests q ON q.request_key = s.request_key "
            "WHERE s.step LIKE '%judge/outcome/%'"  # under the verifier's prefix in the run's pool
        ).fetchall()
    assert judged and all(cost > 0 for _, cost in judged)  # each judgement is a priced request
    from infereco.verifiers.judge import p_yes

    scores = [p_yes(json.loads(lp)) for lp, _ in judged]
    assert all(0.0 <= s <= 1.0 for s in scores) and any(s != 0.5 for s in scores)  # yes/no among the top tokens
    assert result.totals["problems_done"] == 1
