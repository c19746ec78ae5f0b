"""`RunSummary`: what a run measured, typed and documented (like inspect_ai's `EvalSpec`).

`metrics.summarize` computes it from a run's pool (pure numpy, plain values); `api.result_from_store`
wraps it with what the store adds (efficiency, samples used); report tables, the HTML page, sweeps,
the cost frontier and `--json` output read it. Fields are attributes (`summary.coverage.mean`);
for code written against the earlier dict, a summary (and each estimate in it) is also a read-only
`Mapping` (`summary["coverage"]["mean"]`), so `report.to_jsonable` writes it as JSON unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field


class _Record(BaseModel):
    """A model that reads like the dict it replaces."""

    model_config = ConfigDict(extra="allow", validate_assignment=False)

    def _fields(self) -> dict[str, Any]:
        """The fields given (an optional one left unset is absent, as a key was), then any extra ones."""
        declared = type(self).model_fields
        given = {k: getattr(self, k) for k, f in declared.items() if k in self.model_fields_set or f.is_required()}
        return {**given, **(self.model_extra or {})}

    def __getitem__(self, key: str) -> Any:
        fields = self._fields()
        if key not in fields:
            raise KeyError(key)
        return fields[key]

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]
        return iter(self._fields())

    def __len__(self) -> int:
        return len(self._fields())

    def __contains__(self, key: object) -> bool:
        return key in self._fields()

    def get(self, key: str, default: Any = None) -> Any:
        return self._fields().get(key, default)

    def keys(self) -> Any:
        return self._fields().keys()

    def items(self) -> Any:
        return self._fields().items()

    def values(self) -> Any:
        return self._fields().values()

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.to_dict() if isinstance(v, _Record) else v) for k, v in self._fields().items()}


Mapping.register(_Record)


class Estimate(_Record):
    """A mean over problems with its percentile-bootstrap confidence interval."""

    mean: Optional[float]
    lo: Optional[float]
    hi: Optional[float]
    #: the k the estimate is at (coverage = pass@N, majority@N), when it is at one
    k: Optional[int] = None


class Curve(_Record):
    """An estimate at every k of `RunSummary.ks` (pass@k, majority@k)."""

    mean: list[Optional[float]]
    lo: list[Optional[float]]
    hi: list[Optional[float]]


class RunSummary(_Record):
    """Everything a table, plot or JSON report shows about one run (see `metrics.summarize`)."""

    label: str = Field(description="the run's name in tables and plots")
    run_id: str = Field(description="the run's id in the store")
    n_problems: int = Field(description="problems with at least one sample")
    n_samples: int = Field(description="N: the samples every problem reaches")
    n_samples_per_problem: dict[str, Any] = Field(description="min, max and mean samples per problem")
    n_samples_total: int = Field(description="samples summarised, all problems")
    level: float = Field(description="confidence level of every interval (0.95)")
    n_boot: int = Field(description="bootstrap resamples behind every interval")
    seed: int = Field(description="seed of the bootstrap and majority draws")
    accuracy: Estimate = Field(description="mean accuracy of one sample")
    coverage: Estimate = Field(description="pass@N: some sample of N is right")
    ks: list[int] = Field(description="the k of every curve")
    pass_at_k: Curve = Field(description="unbiased pass@k at every k")
    majority_at_k: Curve = Field(description="majority vote over k samples at every k")
    majority_at_n: Estimate = Field(description="majority vote over all N samples")
    majority_draws: int = Field(description="Monte-Carlo draws behind majority@k")
    majority_mc_se_bound: float = Field(description="bound on majority@k's Monte-Carlo standard error")
    final_accuracy: Optional[Estimate] = Field(None, description="accuracy of the strategy's own answers (None: not all answered)")
    tokens: dict[str, Any] = Field(description="prompt/completion token totals and means per sample")
    cost: dict[str, Any] = Field(description="USD: total, per sample, per problem at N, per problem as spent")
    cost_of_pass: dict[str, Any] = Field(description="USD per correct answer: one sample, majority@N, oracle best-of-N")
    cost_of_pass_at_k: dict[str, Any] = Field(description="cost-of-pass curves with paired-bootstrap CIs")
    coverage_fit: Optional[dict[str, Any]] = Field(None, description="the fitted coverage-scaling law, when it fits")
    latency_s: dict[str, Any] = Field(description="per-sample latency: mean, median, total")
    config: dict[str, Any] = Field(description="the run's stored config (task, model, strategy, sampling, prices)")
    efficiency: Optional[dict[str, Any]] = Field(None, description="latency, FLOPs and the idealized-runtime fit (store)")
    mean_samples_used: Optional[float] = Field(None, description="adaptive: samples a problem used on average")

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> RunSummary:
        return values if isinstance(values, RunSummary) else cls.model_validate(dict(values))


__all__ = ["Curve", "Estimate", "RunSummary"]
