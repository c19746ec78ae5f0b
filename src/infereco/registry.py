"""One registry of named entries, for strategies, backends and task formats.

Why one: each of the three registries (`strategies.registry`, `backends.registry`,
`tasks.registry`) keeps its entries in registration order, finds one by its name or an alias, refuses
a name another entry already holds, and imports an entry's builder only when it is first used (so
`import infereco` stays light). That is the same logic three times; here it is once. What differs
stays with each registry: its entry's facts and its own "unknown --flag" message, which names the
flag and the choices the way its users need.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar


def load(build: str | Callable[..., Any]) -> Callable[..., Any]:
    """A builder given as a callable, or as "module:function", imported now (on its first use)."""
    if callable(build):
        return build
    module, _, attr = build.partition(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Entry:
    """What every registry's entry has: its name, a line for help texts and errors, its builder."""

    name: str
    description: str
    #: the builder, or "module:function" imported on first use (keeps `import infereco` light)
    build: str | Callable[..., Any]

    def builder(self) -> Callable[..., Any]:
        return load(self.build)


E = TypeVar("E", bound=Entry)


class Registry(Generic[E]):
    """Entries by name and alias (an entry's `aliases`, where it has them), in registration order.

    `what` names the kind of entry in errors ("strategy name 'x' is already taken by 'y'").
    `fold`: names are matched without regard to case or surrounding spaces (`--strategy Majority`);
    False matches them exactly.
    """

    def __init__(self, what: str, *, fold: bool = True) -> None:
        self.what = what
        self.fold = fold
        self._entries: dict[str, E] = {}
        self._names: dict[str, str] = {}  # every name and alias (folded) -> the entry's name

    def _key(self, name: Any) -> Any:
        return str(name).strip().lower() if self.fold else name

    def register(self, entry: E) -> E:
        """Add an entry, or replace the one of the same name (in its place); its name and aliases
        become valid. A name or alias held by another entry is a `ValueError` (a programming error)."""
        names = (entry.name, *getattr(entry, "aliases", ()))
        for name in names:
            owner = self._names.get(self._key(name))
            if owner is not None and owner != entry.name:
                raise ValueError(f"{self.what} name {name!r} is already taken by {owner!r}")
        for stale in [k for k, v in self._names.items() if v == entry.name]:  # a replaced entry's aliases
            del self._names[stale]
        self._entries[entry.name] = entry
        for name in names:
            self._names[self._key(name)] = entry.name
        return entry

    def unregister(self, name: str) -> E:
        """Remove an entry by its name (a `KeyError` if there is none); its aliases go with it."""
        entry = self._entries.pop(name)
        for stale in [k for k, v in self._names.items() if v == name]:
            del self._names[stale]
        return entry

    def get(self, name: Any) -> E | None:
        """The entry a name or alias stands for; None for one no entry has."""
        key = self._names.get(self._key(name))
        return self._entries[key] if key is not None else None

    def entries(self) -> list[E]:
        return list(self._entries.values())

    def names(self) -> list[str]:
        """The entries' names (not aliases), in registration order."""
        return list(self._entries)

    def __iter__(self) -> Iterator[E]:
        return iter(list(self._entries.values()))


__all__ = ["Entry", "Registry", "load"]
