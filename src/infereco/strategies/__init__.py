"""Inference-time scaling strategies (one module each)."""

from infereco.strategies.base import SamplingContext, SamplingParams, Strategy, StrategyResult
from infereco.strategies.sampling import SEARCH_STRATEGIES, STRATEGIES, MajorityVote, OracleBestOfN, RepeatedSampling, make_strategy

__all__ = [
    "SamplingContext",
    "SamplingParams",
    "Strategy",
    "StrategyResult",
    "STRATEGIES",
    "SEARCH_STRATEGIES",
    "MajorityVote",
    "OracleBestOfN",
    "RepeatedSampling",
    "make_strategy",
]
