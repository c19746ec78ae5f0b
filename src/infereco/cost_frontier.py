"""The cost-of-pass frontier: the cheapest way, among the runs you have, to get a correct answer.

After "Cost-of-Pass: An Economic Framework for Evaluating Language Models": every stored run (a
model + strategy) offers one option per N: majority vote over k samples, costing k × its mean cost
per sample per problem and succeeding with majority@k. Its cost-of-pass is cost / success rate (∞
when it never succeeds). The frontier is the least cost-of-pass over all options, optionally with a
human expert who is always right at a given price per problem. A counterfactual frontier drops one
model or one strategy and recomputes; the rise is what that model or strategy contributes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

HUMAN = "human expert"


@dataclass(frozen=True)
class Option:
    """One way to answer: a run's majority vote over k samples (or the human baseline)."""

    label: str
    model: str
    strategy: str
    k: int
    accuracy: float
    usd_per_problem: float
    cost_of_pass: float
    cop_lo: float
    cop_hi: float
    #: the task the option was measured on; frontiers are only ever taken within one task
    task: str = ""
    #: a model family (e.g. "small", "reasoning") for counterfactuals; the model itself by default
    family: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _num(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, str):
        return {"inf": math.inf}.get(value, math.nan)
    return float(value)


def options_from_summaries(
    summaries: Sequence[Mapping[str, Any]],
    human_cost: float | None = None,
    families: Mapping[str, str] | None = None,
) -> list[Option]:
    """All options of all runs (from `metrics.summarize` output), plus the human baseline if priced.

    `families` maps model names to family names for family counterfactuals (unmapped: the model).
    """
    families = dict(families or {})
    out: list[Option] = []
    for s in summaries:
        config = s.get("config") or {}
        model = str((config.get("backend") or {}).get("model", s.get("label", "?")))
        task = task_name(config.get("task"))
        strategy = str((config.get("strategy") or {}).get("name", "?"))
        ks = list(s.get("ks", []))
        per_sample = _num((s.get("cost") or {}).get("per_sample_usd"))
        accuracy = (s.get("majority_at_k") or {}).get("mean", [])
        cop = (s.get("cost_of_pass_at_k") or {}).get("majority_at_k", {})
        for i, k in enumerate(ks):
            acc = _num(accuracy[i]) if i < len(accuracy) else math.nan
            usd = per_sample * k
            mean = _num(cop.get("mean", [None] * len(ks))[i]) if cop else (usd / acc if acc > 0 else math.inf)
            lo = _num(cop.get("lo", [None] * len(ks))[i]) if cop else math.nan
            hi = _num(cop.get("hi", [None] * len(ks))[i]) if cop else math.nan
            family = families.get(model, model)
            out.append(Option(str(s.get("label", "?")), model, strategy, int(k), acc, usd, mean, lo, hi, task, family))
    if human_cost is not None:
        if human_cost < 0:
            from infereco.errors import UserError

            raise UserError(f"--human-cost must be >= 0, got {human_cost}")
        for task in dict.fromkeys(o.task for o in out) or [""]:  # the expert can answer every task
            out.append(Option(HUMAN, HUMAN, HUMAN, 1, 1.0, human_cost, human_cost, human_cost, human_cost, task, HUMAN))
    return out


def task_name(spec: Any) -> str:
    """A short, stable name of a task spec, e.g. "arithmetic level=3 limit=30 seed=0"."""
    if not isinstance(spec, Mapping):
        return "" if spec is None else str(spec)
    rest = " ".join(f"{k}={v}" for k, v in sorted(spec.items()) if k != "name")
    return f"{spec.get('name', '?')} {rest}".strip()


def by_task(options: Sequence[Option]) -> dict[str, list[Option]]:
    """Options grouped by the task they were measured on (a frontier compares like with like)."""
    groups: dict[str, list[Option]] = {}
    for option in options:
        groups.setdefault(option.task, []).append(option)
    return groups


def frontier(options: Sequence[Option]) -> Option | None:
    """The option with the least finite cost-of-pass (ties: cheaper per problem); None if none is finite."""
    finite = [o for o in options if math.isfinite(o.cost_of_pass)]
    if not finite:
        return None
    return min(finite, key=lambda o: (o.cost_of_pass, o.usd_per_problem))


def frontier_cost(options: Sequence[Option]) -> float:
    best = frontier(options)
    return best.cost_of_pass if best is not None else math.inf


def counterfactual(
    options: Sequence[Option],
    *,
    drop_model: str | None = None,
    drop_strategy: str | None = None,
    drop_family: str | None = None,
) -> float:
    """The frontier's cost-of-pass without one model, strategy and/or family (∞ if nothing is left)."""
    kept = [
        o for o in options
        if (drop_model is None or o.model != drop_model) and (drop_strategy is None or o.strategy != drop_strategy)
        and (drop_family is None or (o.family or o.model) != drop_family)
    ]  # fmt: skip
    return frontier_cost(kept)


def contributions(options: Sequence[Option]) -> list[dict[str, Any]]:
    """For each model and each strategy: the counterfactual frontier without it, and the rise (≥ 0)."""
    full = frontier_cost(options)
    rows: list[dict[str, Any]] = []
    kinds = [("model", sorted({o.model for o in options})), ("strategy", sorted({o.strategy for o in options}))]
    families = sorted({o.family or o.model for o in options})
    if families != sorted({o.model for o in options}):  # families were given: they group models
        kinds.append(("family", families))
    for kind, names in kinds:
        for name in names:
            if kind != "model" and name == HUMAN:
                continue
            cf = counterfactual(options, **{f"drop_{kind}": name})
            rise = cf - full if math.isfinite(full) else (math.nan if not math.isfinite(cf) else 0.0)
            rows.append({"kind": kind, "name": name, "without": cf, "frontier": full, "contribution": rise})
    return rows
