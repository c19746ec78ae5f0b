"""Step-level searches keep their requests where their prefix is cached (issue 18, third item).

The step requests of one search name a family (`affinity`); the runner makes it one family per
run and problem; the embedded llama.cpp backend sends a family to one home slot (`id_slot`) and
starts its server with idle slots kept. Checked against a loopback server (what goes over the
wire) and, marked `model`, on the embedded model (what the server then reuses).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import infereco
from fakeserver import FakeServer
from infereco.api import run as api_run
from infereco.backends.base import GenerationRequest
from infereco.backends.llamacpp import LlamaServer
from infereco.backends.openai import OpenAIBackend
from infereco.backends.slots import SlotHomes


def test_a_family_keeps_its_home_and_homes_are_the_upper_half_of_the_slots() -> None:
    homes = SlotHomes(16)
    assert homes.homes == [15, 14, 13, 12, 11, 10, 9, 8]  # llama.cpp puts extra samples in the lowest free slots
    first = {f"p{i}": homes.slot_for(f"p{i}") for i in range(8)}
    assert sorted(first.values()) == list(range(8, 16))  # eight families in flight: eight different homes
    assert all(homes.slot_for(f) == s for f, s in first.items())  # asked again: the same home
    homes.slot_for("p0")  # p0 used again: p1 is now the family used longest ago
    assert homes.slot_for("new") == first["p1"]  # a ninth family takes the home of the stalest one
    assert homes.slot_for("p0") == first["p0"]  # ... and the families still in use keep theirs
    assert SlotHomes(1).slot_for("a") == SlotHomes(1).slot_for("b") == 0  # one slot: every family shares it
    assert SlotHomes(3).homes == [2]


def _bodies(fake: FakeServer) -> list[dict[str, Any]]:
    return [b for b in fake.model.bodies if "messages" in b]


def test_a_request_of_a_family_names_its_home_slot_only_where_homes_are_used() -> None:
    messages = ({"role": "user", "content": "What is 2 + 3?"},)
    with FakeServer() as fake:

        async def send(backend: OpenAIBackend, affinity: str) -> None:
            try:
                await backend.generate(GenerationRequest(messages, n=2, max_tokens=8, affinity=affinity))
            finally:
                await backend.aclose()

        homes = SlotHomes(4)
        pinned = OpenAIBackend(fake.base_url, "fake", api_key_env=None, llamacpp=True, home_slot=homes.slot_for)
        asyncio.run(send(pinned, "run|p1|steps"))
        pinned = OpenAIBackend(fake.base_url, "fake", api_key_env=None, llamacpp=True, home_slot=homes.slot_for)
        asyncio.run(send(pinned, ""))  # no family: the server picks the slot
        plain = OpenAIBackend(fake.base_url, "fake", api_key_env=None)  # a server infereco did not start
        asyncio.run(send(plain, "run|p1|steps"))
        sent = _bodies(fake)
    assert [b.get("id_slot") for b in sent] == [3, None, None]


def test_the_runner_gives_each_problems_search_its_own_family_and_plain_sampling_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, str]] = []  # (request key, affinity)
    original = OpenAIBackend.generate

    async def spy(self: OpenAIBackend, request: GenerationRequest) -> Any:
        seen.append((request.key, request.affinity))
        return await original(self, request)

    monkeypatch.setattr(OpenAIBackend, "generate", spy)
    options = dict(level=1, limit=3, backend="openai", model="fake", input_price=1.0, output_price=2.0, max_n=4)
    with FakeServer() as fake:
        api_run("arithmetic", strategy="pf", n=4, base_url=fake.base_url, store=tmp_path / "pf.db", **options)  # type: ignore[arg-type]
        searched = list(seen)
        seen.clear()
        api_run("arithmetic", strategy="majority", n=4, base_url=fake.base_url, store=tmp_path / "m.db", **options)  # type: ignore[arg-type]
    problems = {key.split("/", 1)[1].split("|")[0] for key, _ in searched}
    assert len(problems) == 3 and all(affinity for _, affinity in searched)
    families = {key.split("/", 1)[1].split("|")[0]: affinity for key, affinity in searched}
    assert len(set(families.values())) == 3  # one family per problem ...
    assert all(problem in affinity for problem, affinity in families.items())  # ... named by it
    assert seen and all(affinity == "" for _, affinity in seen)  # plain sampling: the server chooses


def test_the_embedded_server_keeps_idle_slots_unless_the_user_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    server = LlamaServer(Path("model.gguf"), slots=4)
    monkeypatch.delenv("LLAMA_ARG_CACHE_IDLE_SLOTS", raising=False)
    assert server.environment()["LLAMA_ARG_CACHE_IDLE_SLOTS"] == "0"
    monkeypatch.setenv("LLAMA_ARG_CACHE_IDLE_SLOTS", "1")
    assert server.environment()["LLAMA_ARG_CACHE_IDLE_SLOTS"] == "1"
    assert "--cache-idle-slots" not in " ".join(server.command()[1:])  # a flag would stop an older server


@pytest.mark.model
def test_each_later_step_on_the_embedded_model_reuses_its_problems_prompt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two problems searched at once: every step after the first finds its problem's prompt (and
    usually the steps so far) cached, instead of only the system prompt both problems share."""
    bodies: list[dict[str, Any]] = []
    original = OpenAIBackend._body

    def spy(self: OpenAIBackend, request: GenerationRequest) -> dict[str, Any]:
        body = original(self, request)
        bodies.append(body)
        return body

    monkeypatch.setattr(OpenAIBackend, "_body", spy)
    db = tmp_path / "pf.db"
    infereco.run("arithmetic", level=3, limit=2, strategy="pf", n=4, max_tokens=48, store=db, search={"max_steps": 4})
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT problem_id, step, prompt_tokens, cached_prompt_tokens FROM requests").fetchall()
    first = {p: prompt for p, step, prompt, _ in rows if step.startswith("step/0/")}
    later = [(p, prompt, cached) for p, step, prompt, cached in rows if not step.startswith("step/0/")]
    assert len(first) == 2 and later, rows
    # the problem's whole first prompt is reused (llama.cpp evaluates at least one token of each request)
    assert all(cached >= first[p] - 1 for p, _, cached in later), (first, later)
    slots = [b.get("id_slot") for b in bodies if b.get("messages")]
    assert all(isinstance(s, int) and s >= 8 for s in slots), slots  # every step request went to a home slot
    by_problem = {json.dumps(b["messages"][1]): b["id_slot"] for b in bodies if b.get("messages")}
    assert len(set(by_problem.values())) == 2  # the two problems' searches in two different homes
