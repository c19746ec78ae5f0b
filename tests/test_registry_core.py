"""`infereco.registry.Registry`: what the strategy, backend and task-format registries share."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from infereco.backends import registry as backends
from infereco.errors import UserError
from infereco.registry import Entry, Registry
from infereco.strategies import registry as strategies
from infereco.tasks import registry as tasks


@dataclass(frozen=True)
class Thing(Entry):
    aliases: tuple[str, ...] = ()


def test_names_and_aliases_in_any_case_clashes_refused_replacement_in_place() -> None:
    reg: Registry[Thing] = Registry("thing")
    a = reg.register(Thing("alpha", "first", lambda: 1, aliases=("a", "First")))
    reg.register(Thing("beta", "second", lambda: 2))
    assert reg.get(" ALPHA ") is a and reg.get("first") is a and reg.get("gamma") is None
    with pytest.raises(ValueError, match="thing name 'A' is already taken by 'alpha'"):
        reg.register(Thing("gamma", "third", lambda: 3, aliases=("A",)))
    assert reg.get("gamma") is None  # a refused entry leaves nothing behind
    a2 = reg.register(Thing("alpha", "first, again", lambda: 4, aliases=("one",)))
    assert reg.names() == ["alpha", "beta"] and reg.entries()[0] is a2  # replaced where it stood
    assert reg.get("a") is None and reg.get("one") is a2  # the old aliases went with the old entry
    assert reg.unregister("alpha") is a2 and reg.get("one") is None and [e.name for e in reg] == ["beta"]


def test_exact_names_and_builders_imported_on_first_use() -> None:
    reg: Registry[Thing] = Registry("format", fold=False)
    reg.register(Thing("jsonl", "rows", "json:dumps"))
    assert reg.get("JSONL") is None and reg.get("jsonl ") is None
    found = reg.get("jsonl")
    assert found is not None and found.builder()([1]) == "[1]"


def test_the_three_registries_keep_their_own_messages() -> None:
    with pytest.raises(UserError, match=r"--strategy 'nope' is unknown; choose one of: repeated, majority"):
        strategies.entry("nope")
    with pytest.raises(UserError, match=r"--backend 'nope' is unknown; choose llamacpp or openai$"):
        backends.entry("nope")  # the reward model is built by assembly only: not offered
    with pytest.raises(UserError, match=r"--task 'Arithmetic' is unknown \(expected one of: arithmetic,"):
        tasks.resolve("Arithmetic")  # task names are exact
    assert strategies.entry(" Vote ").name == "majority" and backends.entry("EMBEDDED").name == "llamacpp"
    assert tasks.resolve("data/Q.JSONL").name == "file"
