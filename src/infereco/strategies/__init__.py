"""Inference-time scaling strategies (one module each), found by name through `strategies.registry`.

This package imports only the contract and the registry: a strategy's own module is imported when
it is first built, so `import infereco` stays light and no strategy module imports another's factory.
"""

from infereco.strategies.base import SamplingContext, SamplingParams, Strategy, StrategyResult
from infereco.strategies.registry import StrategyEntry, descriptions, entry, make_strategy, register, uses_verifier
from infereco.strategies.sampling import MajorityVote, OracleBestOfN, RepeatedSampling

__all__ = [
    "SamplingContext",
    "SamplingParams",
    "Strategy",
    "StrategyEntry",
    "StrategyResult",
    "MajorityVote",
    "OracleBestOfN",
    "RepeatedSampling",
    "descriptions",
    "entry",
    "make_strategy",
    "register",
    "uses_verifier",
]
