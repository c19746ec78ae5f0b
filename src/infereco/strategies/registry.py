"""The strategy registry: every strategy by name, with the facts the rest of infereco asks about it.

An entry says what the CLI, the run description, the Runner, sweeps and reports need to know
without importing the strategy's module (heavy modules are imported on first build):
- `aliases`: other names the CLI accepts;
- `options`: the option models (`strategies.options`) it takes: any other strategy option given
  with it is refused, naming the strategies that do take it;
- `uses_verifier`: it takes `--verifier`;
- `pools_samples`: it draws step "sample" 0..N-1 of the run's one pool (its N is not part of the
  run's identity, so a larger N extends the pool, and every pooled strategy on the same task,
  model, sampling and seed shares it); False for searches, whose answers are their own outcomes;
- `stops_early`: it may use fewer than N samples (adaptive).

Adding a strategy is one module with its class and a `register(StrategyEntry(...))` call (see
docs/architecture.md, "How to add a strategy"; tests/test_registry.py does exactly that).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from infereco.errors import UserError
from infereco.registry import Entry, Registry
from infereco.strategies.options import (
    AdaptiveOptions,
    BeamOptions,
    EntropicOptions,
    ParticleOptions,
    SpeculativeOptions,
    StepOptions,
    SubmitOptions,
    VerifierOptions,
    option_fields,
)

#: a builder: (n, seed, verifier or None, strategy keyword options) -> a Strategy
Builder = Callable[..., Any]


@dataclass(frozen=True)
class StrategyEntry(Entry):
    """One strategy and its facts (see the module docstring)."""

    aliases: tuple[str, ...] = ()
    options: tuple[type[BaseModel], ...] = ()
    uses_verifier: bool = False
    pools_samples: bool = True
    #: may answer with fewer than N samples (adaptive stopping): it does not fill a pool to N
    stops_early: bool = False

    @property
    def option_names(self) -> set[str]:
        return option_fields(self.options)


_REGISTRY: Registry[StrategyEntry] = Registry("strategy")


def register(entry: StrategyEntry) -> StrategyEntry:
    """Add (or replace) a strategy; its name and aliases become valid `--strategy` values."""
    return _REGISTRY.register(entry)


def unregister(name: str) -> None:
    """Remove a strategy (tests that register their own clean up with this)."""
    _REGISTRY.unregister(name)


def entry(name: str) -> StrategyEntry:
    """The entry for a name or alias; an unknown one is a `UserError` listing the known ones."""
    found = _REGISTRY.get(name)
    if found is None:
        raise UserError(f"--strategy {name!r} is unknown; choose one of: {', '.join(_REGISTRY.names())}")
    return found


def entries() -> list[StrategyEntry]:
    return _REGISTRY.entries()


def takers(option: str) -> list[str]:
    """The strategies that take an option (by field name), in registry order."""
    return [e.name for e in _REGISTRY if option in e.option_names]


def uses_verifier(name: str) -> bool:
    """Whether a strategy (by CLI name or alias) takes a --verifier."""
    return entry(name).uses_verifier


def pools_samples(name: str) -> bool:
    """Whether a strategy (by name or alias) draws the run's one pool of samples (see module doc)."""
    return entry(name).pools_samples


def make_strategy(name: str, n: int, seed: int = 0, verifier: Any = None, **options: Any) -> Any:
    """Build a strategy from its CLI name with its own keyword options (the strategy classes' names:
    `width`, `temperature`, `delimiter`, `rule`, ...; None means the strategy's default).

    `verifier` is a name, a stored `describe()` dict or a Verifier; given to a strategy that takes
    none it is a `UserError` (a flag that would silently change nothing).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserError(f"--n must be an integer >= 1, got {n!r}")
    found = entry(name)
    if verifier is not None and not found.uses_verifier:
        users = ", ".join(e.name for e in _REGISTRY if e.uses_verifier)
        raise UserError(f"--verifier {verifier!r} applies to {users} only; --strategy {name} uses none")
    return found.builder()(n, seed, verifier, **options)


def _sample_verifier(verifier: Any) -> Any:
    from infereco.verifiers import get_verifier

    return get_verifier(verifier or "arithmetic")


# ---- builders of the built-in strategies (each imports its module only when called) ----


def _repeated(n: int, seed: int, verifier: Any, **options: Any) -> Any:
    from infereco.strategies.sampling import RepeatedSampling

    return RepeatedSampling(n)


def _majority(n: int, seed: int, verifier: Any, **options: Any) -> Any:
    if options.get("generator"):  # speculative steps: majority over step-wise chains
        return _stepwise(n, seed, verifier, **options)
    given = sorted(k for k, v in options.items() if v is not None)
    if given:
        raise UserError(f"--strategy majority takes {', '.join(given)} only with --draft-model (speculative steps)")
    from infereco.strategies.sampling import MajorityVote

    return MajorityVote(n, seed)


def _oracle(n: int, seed: int, verifier: Any, **options: Any) -> Any:
    from infereco.strategies.sampling import OracleBestOfN

    return OracleBestOfN(n)


def _verified(cls_name: str) -> Builder:
    def build(n: int, seed: int, verifier: Any, submit: int | None = None, **unused: Any) -> Any:
        from infereco.strategies.verified import BestOfMajority, BestOfN, WeightedMajority

        _refuse(unused, cls_name)
        submit = 1 if submit is None else submit
        if isinstance(submit, bool) or not isinstance(submit, int) or submit < 1:
            raise UserError(f"--submit must be an integer >= 1, got {submit!r}")
        cls = {"BestOfN": BestOfN, "WeightedMajority": WeightedMajority, "BestOfMajority": BestOfMajority}[cls_name]
        return cls(n, _sample_verifier(verifier), seed, submit)

    return build


def _search(key: str) -> Builder:
    def build(n: int, seed: int, verifier: Any, **options: Any) -> Any:
        from infereco.strategies.search import make_search

        return make_search(key, n, seed, verifier, **options)

    return build


def _stepwise(n: int, seed: int, verifier: Any, **options: Any) -> Any:
    from infereco.strategies.speculative import StepwiseVote

    allowed = {k: v for k, v in options.items() if k in ("max_steps", "delimiter", "generator") and v is not None}
    return StepwiseVote(n, seed, **allowed)


def _adaptive(n: int, seed: int, verifier: Any, **options: Any) -> Any:
    from infereco.strategies.adaptive import make_adaptive

    return make_adaptive(n, seed, verifier, **options)


def _refuse(unused: dict[str, Any], name: str) -> None:
    given = sorted(k for k, v in unused.items() if v is not None)
    if given:
        raise UserError(f"--strategy {name}: unknown option(s) {', '.join(given)}")


_SEARCH_OPTIONS = (VerifierOptions, StepOptions, SpeculativeOptions)
for _entry in (
    StrategyEntry("repeated", "N independent samples; the final answer is the first (pass@k curves come from the pool)",
                  _repeated, aliases=("sample", "sampling")),
    StrategyEntry("majority", "N samples, the most frequent answer wins (self-consistency)", _majority,
                  aliases=("vote", "self-consistency"), options=(SpeculativeOptions, StepOptions)),
    StrategyEntry("pass@n", "oracle best-of-N: right if any of N samples is right (coverage; needs a perfect verifier)",
                  _oracle, aliases=("oracle", "best-of-n-oracle", "pass@k")),
    StrategyEntry("bon", "best-of-N by a verifier's score (--verifier arithmetic|oracle)", _verified("BestOfN"),
                  aliases=("best-of-n",), options=(VerifierOptions, SubmitOptions), uses_verifier=True),
    StrategyEntry("weighted", "weighted majority: the answer whose verifier scores sum highest", _verified("WeightedMajority"),
                  aliases=("weighted-majority",), options=(VerifierOptions, SubmitOptions), uses_verifier=True),
    StrategyEntry("bom", "Best-of-Majority: the best-scored answer among those at least 1/8 of samples agree on",
                  _verified("BestOfMajority"), aliases=("best-of-majority",), options=(VerifierOptions, SubmitOptions),
                  uses_verifier=True),
    StrategyEntry("beam", "step-level beam search: keep the N/M best partial solutions by process score, expand each M ways",
                  _search("beam"), options=(*_SEARCH_OPTIONS, BeamOptions), uses_verifier=True, pools_samples=False),
    StrategyEntry("pf", "particle filtering: N partial solutions resampled each step by softmax(process score / T)",
                  _search("pf"), aliases=("particle-filter",), options=(*_SEARCH_OPTIONS, ParticleOptions),
                  uses_verifier=True, pools_samples=False),
    StrategyEntry("epf", "entropic particle filtering: pf that raises T whenever the weights' entropy falls too low",
                  _search("epf"), aliases=("entropic-pf",), options=(*_SEARCH_OPTIONS, ParticleOptions, EntropicOptions),
                  uses_verifier=True, pools_samples=False),
    StrategyEntry("adaptive", "majority (weighted with --verifier) over samples drawn in rounds until the vote converges, at most N",
                  _adaptive, options=(VerifierOptions, AdaptiveOptions), uses_verifier=True, stops_early=True),
    StrategyEntry("spec-majority", "majority over N step-wise chains whose steps a small model drafts and the target rates",
                  _stepwise, options=(StepOptions, SpeculativeOptions), pools_samples=False),
):  # fmt: skip
    register(_entry)


def descriptions() -> dict[str, str]:
    """name -> one-line description of every registered strategy (for help texts and `--strategy` errors)."""
    return {e.name: e.description for e in _REGISTRY}


__all__ = [
    "StrategyEntry", "descriptions", "entries", "entry", "make_strategy", "pools_samples", "register", "takers",
    "unregister", "uses_verifier",
]  # fmt: skip
