"""The backend registry: every backend kind by name, with what it can do.

An entry carries the facts assembly needs before anything is sent:
- `logprobs`: "yes" (always returns them when asked), "no" (never: a judge or a speculative rating
  on it is refused before any request), or "server" (depends on the server behind it: the Runner
  stops at the first answer that lacks them, with a one-line error, instead of scoring 0.5);
- `supports_n` (several samples per request) and `supports_seed` (repeatable sampling);
- `apis`: the request shapes it serves ("chat", "completions");
- `local`: priced by machine time unless told otherwise.
The backend class itself is imported only when one is built (`build` may be "module:function").

Adding a backend is one module with a class implementing `backends.base.Backend` and a
`register(BackendEntry(...))` whose builder takes `BackendOptions`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from infereco.errors import UserError
from infereco.registry import Entry, Registry


class BackendOptions(BaseModel):
    """How to reach and drive one model, for any backend kind (a builder uses what applies to it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = "llamacpp"
    model: str | None = None
    base_url: str | list[str] | None = None
    api_key_env: str | None = "OPENAI_API_KEY"  # None: send no key
    concurrency: int | None = None
    max_n: int | None = None
    slots: int = 16
    threads: int | None = None
    timeout_s: float = 600.0
    max_retries: int = 5
    api: str = "chat"


#: a builder: BackendOptions -> a backend (what `BackendEntry.build` names)
Builder = Callable[[BackendOptions], Any]


@dataclass(frozen=True)
class BackendEntry(Entry):
    aliases: tuple[str, ...] = ()
    logprobs: Literal["yes", "no", "server"] = "server"
    supports_n: bool = True
    supports_seed: bool = True
    apis: tuple[str, ...] = ("chat",)
    local: bool = False
    #: shown in `--backend` errors and help; False for kinds only assembly builds (the reward model)
    user_facing: bool = True


_REGISTRY: Registry[BackendEntry] = Registry("backend")
_BUILT: weakref.WeakKeyDictionary[Any, BackendEntry] = weakref.WeakKeyDictionary()  # backend object -> its entry


def register(entry: BackendEntry) -> BackendEntry:
    return _REGISTRY.register(entry)


def unregister(name: str) -> None:
    _REGISTRY.unregister(name)


def entry(kind: str) -> BackendEntry:
    found = _REGISTRY.get(kind)
    if found is None:
        names = [e.name for e in _REGISTRY if e.user_facing]
        raise UserError(f"--backend {kind!r} is unknown; choose {' or '.join(names)}")
    return found


def known(backend: Any) -> BackendEntry | None:
    """The entry a backend object was built by (or of its `kind`); None for one no entry knows."""
    try:
        built = _BUILT.get(backend)
    except TypeError:  # not weak-referenceable
        built = None
    if built is not None:
        return built
    return _REGISTRY.get(getattr(backend, "kind", backend))


def entries() -> list[BackendEntry]:
    return _REGISTRY.entries()


def build(options: BackendOptions) -> Any:
    """A backend from its options; unknown kinds and inapplicable options are one-line `UserError`s."""
    found = entry(options.kind)
    if not options.timeout_s > 0:
        raise UserError(f"--timeout must be > 0 seconds, got {options.timeout_s}")
    if options.max_retries < 0:
        raise UserError(f"--max-retries must be >= 0, got {options.max_retries}")
    if options.api not in ("chat", "completions"):
        raise UserError(f"--api must be chat or completions, got {options.api!r}")
    if options.api not in found.apis:
        raise UserError(f"--api {options.api} needs --backend openai; the embedded model is served by chat only")
    backend = found.builder()(options)
    try:
        _BUILT[backend] = found
    except TypeError:
        pass
    return backend


# ---- the built-in backends ----


def _llamacpp(o: BackendOptions) -> Any:
    from infereco.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(o.model, slots=o.max_n or o.slots, threads=o.threads, timeout_s=o.timeout_s, concurrency=o.concurrency or 2)


def _openai(o: BackendOptions) -> Any:
    from infereco.backends.openai import OpenAIBackend

    if not o.base_url:
        raise UserError("--backend openai needs --base-url (e.g. http://127.0.0.1:8080/v1)")
    if not o.model:
        raise UserError("--backend openai needs --model NAME (the name the server knows the model by)")
    urls = [o.base_url] if isinstance(o.base_url, str) else list(o.base_url)
    return OpenAIBackend(
        urls[0] if len(urls) == 1 else urls, o.model, api_key_env=o.api_key_env, concurrency=o.concurrency or 8,
        max_n=o.max_n or 16, timeout_s=o.timeout_s, max_retries=o.max_retries, api=o.api,
    )  # fmt: skip


def _reward(o: BackendOptions) -> Any:
    from infereco.verifiers.reward_model import RewardModelBackend

    if not o.base_url:
        raise UserError("--verifier reward needs --reward-url (e.g. http://127.0.0.1:8000/pooling)")
    url = o.base_url if isinstance(o.base_url, str) else o.base_url[0]
    return RewardModelBackend(url, o.model or "reward-model", api_key_env=o.api_key_env, concurrency=o.concurrency or 8,
                              timeout_s=o.timeout_s, max_retries=o.max_retries)  # fmt: skip


register(BackendEntry("llamacpp", "the embedded model: llama.cpp's server as a managed subprocess", _llamacpp,
                      aliases=("embedded", "local"), logprobs="yes", local=True))  # fmt: skip
register(BackendEntry("openai", "any OpenAI-compatible server (vLLM, SGLang, llama.cpp, Ollama, hosted APIs)", _openai,
                      logprobs="server", apis=("chat", "completions")))  # fmt: skip
register(BackendEntry("reward", "a reward model behind an HTTP scoring endpoint (the reward verifier's)", _reward,
                      logprobs="no", supports_n=False, supports_seed=False, user_facing=False))  # fmt: skip


__all__ = ["BackendEntry", "BackendOptions", "build", "entries", "entry", "known", "register", "unregister"]
