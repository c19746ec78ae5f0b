"""The embedded server's layout: how many slots it has, and how many samples one request asks for."""

from __future__ import annotations

from pathlib import Path

import pytest

from infereco.backends import llamacpp
from infereco.backends.llamacpp import LlamaCppBackend


@pytest.fixture(autouse=True)
def no_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(llamacpp, "resolve_model", lambda name: ("m", tmp_path / "m.gguf"))
    monkeypatch.setattr(llamacpp, "find_server_binary", lambda: Path("/bin/llama-server"))


def test_requests_may_ask_for_fewer_samples_than_the_server_has_slots() -> None:
    backend = LlamaCppBackend(slots=32, max_n=16, concurrency=3)
    command = backend.server.command()
    assert command[command.index("--parallel") + 1] == "32"
    assert backend.max_samples_per_request() == 16 and backend.max_concurrency() == 3
    assert LlamaCppBackend(slots=8).max_samples_per_request() == 8  # default: one request fills the slots
    assert LlamaCppBackend(slots=8, max_n=64).max_samples_per_request() == 8  # never more than the slots


def test_how_the_server_is_laid_out_is_not_part_of_what_it_samples() -> None:
    a, b = LlamaCppBackend(slots=32, max_n=16), LlamaCppBackend()
    assert {k: v for k, v in a.describe().items() if k != "slots"} == {k: v for k, v in b.describe().items() if k != "slots"}
