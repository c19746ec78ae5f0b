"""Each strategy's own options, as pydantic models: the one place a strategy flag is declared.

A field here is a flag of `infereco run` (its name with `-` for `_`), a key of a run's TOML file,
a keyword of `infereco.run(...)` and of `ie.Experiment`, and a key of the description a store
keeps: `infereco.runconfig.RunConfig` inherits every model below, and the CLI builds its options
from RunConfig's fields. A strategy's registry entry (`strategies.registry`) names the models it
takes, so a flag given to a strategy that does not take it is refused by name, not dropped.

`Field(description=...)` is the flag's help; `json_schema_extra={"flag": "--x"}` renames a flag.
Every default is None ("the strategy's own default"), so "was it given?" is "is it not None?".
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class VerifierOptions(_Options):
    """A verifier's choice and its model (bon, weighted, bom, beam, pf, epf, adaptive)."""

    verifier: Optional[str] = Field(None, description="for bon/weighted/bom/beam/pf/epf/adaptive: arithmetic (default), oracle, judge, reward")
    judge_model: Optional[str] = Field(None, description="--verifier judge: the judging model (default: the model under test)")
    judge_base_url: Optional[str] = Field(None, pattern=r"^https?://", description="--verifier judge: an OpenAI-compatible server for --judge-model")
    judge_prompt: Optional[str] = Field(None, description="--verifier judge: the yes/no question, with {problem} and {solution}")
    reward_url: Optional[str] = Field(None, pattern=r"^https?://", description="--verifier reward: the reward model's endpoint, e.g. http://127.0.0.1:8000/pooling")
    reward_model: Optional[str] = Field(None, description="--verifier reward: the reward model's name on its server")
    reward_price: Optional[float] = Field(None, ge=0, allow_inf_nan=False, description="--verifier reward: USD per 1M prompt tokens (0 for a free endpoint)")


class SubmitOptions(_Options):
    """bon, weighted, bom: how many answers are submitted per problem."""

    submit: Optional[int] = Field(None, ge=1, description="bon/weighted/bom: submit the top K answers per problem (pass@k scoring)")


class StepOptions(_Options):
    """Step-level strategies (beam, pf, epf, spec-majority): how a solution is cut into steps."""

    max_steps: Optional[int] = Field(None, ge=1, description="beam/pf/epf: most reasoning steps per solution (default 10)")
    step_delimiter: Optional[str] = Field(None, min_length=1, description="beam/pf/epf: what ends a step (default: the task's; a blank line)")


class BeamOptions(_Options):
    beam_width: Optional[int] = Field(None, ge=1, description="beam: M, ways each kept beam is extended (N/M kept; default 4)")


class ParticleOptions(_Options):
    pf_temperature: Optional[float] = Field(None, gt=0, allow_inf_nan=False, description="pf/epf: softmax temperature over process scores (default 0.3)")
    pf_argmax: Optional[bool] = Field(None, description="pf/epf: answer with the best-weighted particle, not a weighted draw")


class EntropicOptions(_Options):
    entropy_floor: Optional[float] = Field(None, ge=0, le=1, allow_inf_nan=False, description="epf: anneal when the weights' normalised entropy falls below (default 0.5)")


class AdaptiveOptions(_Options):
    round_size: Optional[int] = Field(None, ge=1, description="adaptive: samples drawn per round (default 2)")
    stop_rule: Optional[Literal["beta", "margin"]] = Field(None, description="adaptive: beta (posterior that the leader is the mode) or margin")
    stop_confidence: Optional[float] = Field(None, ge=0.5, lt=1, allow_inf_nan=False, description="adaptive, beta rule: stop at this posterior (default 0.95)")
    stop_margin: Optional[float] = Field(None, gt=0, allow_inf_nan=False, description="adaptive, margin rule: stop when the leader is this many votes ahead (default 4)")


class SpeculativeOptions(_Options):
    """Speculative steps: a small model drafts, the model under test rates (majority, beam, pf, epf)."""

    draft_model: Optional[str] = Field(None, description="speculative steps: the small model that drafts them (majority, beam, pf, epf)")
    draft_base_url: Optional[str] = Field(None, pattern=r"^https?://", description="speculative steps: an OpenAI-compatible server for --draft-model")
    accept_threshold: Optional[float] = Field(None, ge=0, le=9, allow_inf_nan=False, description="speculative steps: keep drafts the target rates >= this (0-9; default 7)")


#: every option model, in the order the CLI lists them
ALL_OPTIONS: tuple[type[BaseModel], ...] = (
    VerifierOptions, SubmitOptions, StepOptions, BeamOptions, ParticleOptions, EntropicOptions, AdaptiveOptions,
    SpeculativeOptions,
)  # fmt: skip

#: options that are only meaningful together with another one: (option, needs, value it needs or None for any)
DEPENDENT: dict[str, tuple[str, str | None]] = {
    "judge_model": ("verifier", "judge"),
    "judge_base_url": ("verifier", "judge"),
    "judge_prompt": ("verifier", "judge"),
    "reward_url": ("verifier", "reward"),
    "reward_model": ("verifier", "reward"),
    "reward_price": ("verifier", "reward"),
    "draft_base_url": ("draft_model", None),
    "accept_threshold": ("draft_model", None),
    "stop_confidence": ("stop_rule", "beta"),  # beta is the default rule: None counts as beta
    "stop_margin": ("stop_rule", "margin"),
}


def option_fields(models: tuple[type[BaseModel], ...]) -> set[str]:
    """The field names of some option models."""
    return {name for m in models for name in m.model_fields}


__all__ = [
    "ALL_OPTIONS", "DEPENDENT", "AdaptiveOptions", "BeamOptions", "EntropicOptions", "ParticleOptions", "SpeculativeOptions",
    "StepOptions", "SubmitOptions", "VerifierOptions", "option_fields",
]  # fmt: skip
