"""The answer a user came for: the cheapest setting whose accuracy reaches a target.

A *setting* is one deployable way to answer a problem that the store can estimate without new
samples: for a run that pools independent samples (majority, repeated, bon, weighted, bom,
adaptive, ...), a majority vote over k samples for EVERY k from 1 to the run's N (beyond k = 128, ks
2% apart), estimated from the pool by the unbiased majority@k estimator (so a run with N = 16 offers
16 settings, not 5); and for
a strategy whose own answer is more than a vote (bon, weighted, bom, beam, particle filtering,
adaptive, speculative) its answer at the run's N, priced with everything the problem cost (every
step and verifier call). The oracle pass@k is never a setting: it needs a perfect verifier.

Each setting carries a paired percentile-bootstrap CI over problems of its accuracy, its cost per
problem and its cost-of-pass (the same resamples for all three, so a ratio's CI is honest). A
setting *reaches* A when its mean accuracy is at least A, or, with a `confidence` C, when the
one-sided lower confidence bound at C (the (1 - C) quantile of the bootstrap) is. The
recommendation is the reaching setting with the least cost per problem (ties: higher accuracy,
then fewer samples); the runner-up of every model is its own cheapest reaching setting other than
the choice; when none reaches A, the closest (highest accuracy, then cheapest) is named instead.
Settings are only ever compared within one task (the same problems and checker).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from infereco.cost_frontier import task_name
from infereco.errors import UserError
from infereco.pool import SamplePool

__all__ = ["Recommendation", "Setting", "recommend", "settings_for_run"]

# Strategies whose own answer is the majority vote (or the oracle): their majority@k settings say it all.
_VOTE_ONLY = frozenset({"majority", "repeated", "pass@n", "oracle"})


def _pools(name: str) -> bool:
    """Whether a strategy's stored "sample" step is one pool of independent draws (the registry says;
    a strategy no longer registered is taken to pool, as the report does)."""
    from infereco.strategies import registry

    try:
        return registry.pools_samples(name)
    except UserError:
        return True


@dataclass(frozen=True)
class Setting:
    """One deployable setting: a run's model and strategy, answering with `method` over k samples."""

    task: str
    label: str
    run_id: str
    model: str
    strategy: str
    #: "single sample", "majority@k" or "<strategy>'s answer"
    method: str
    #: samples per problem this setting buys (the run's N for a strategy's own answer)
    k: int
    #: the N the run was sampled with
    run_n: int
    problems: int
    accuracy: float
    accuracy_lo: float
    accuracy_hi: float
    usd_per_problem: float
    usd_lo: float
    usd_hi: float
    cost_of_pass: float
    cop_lo: float
    cop_hi: float
    #: the CI level of the *_lo / *_hi bounds
    level: float = 0.95
    #: bootstrap means of the accuracy (for one-sided bounds at any confidence); not part of equality
    boot: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)

    @property
    def name(self) -> str:
        """How a person would say it: "qwen / majority@4 (run abc123)"."""
        return f"{self.label}: {self.method}"

    def lower_bound(self, confidence: float) -> float:
        """The one-sided lower confidence bound of the accuracy at `confidence` (e.g. 0.9)."""
        if self.boot.size == 0:
            return self.accuracy
        return float(np.quantile(self.boot, 1.0 - confidence, method="lower"))

    def reaches(self, target: float, confidence: float | None = None) -> bool:
        value = self.accuracy if confidence is None else self.lower_bound(confidence)
        return bool(value >= target - 1e-12)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "label": self.label, "run_id": self.run_id, "model": self.model,
            "strategy": self.strategy, "method": self.method, "k": self.k, "run_n": self.run_n,
            "problems": self.problems, "level": self.level,
            "accuracy": {"mean": self.accuracy, "lo": self.accuracy_lo, "hi": self.accuracy_hi},
            "usd_per_problem": {"mean": self.usd_per_problem, "lo": self.usd_lo, "hi": self.usd_hi},
            "cost_of_pass": {"mean": self.cost_of_pass, "lo": self.cop_lo, "hi": self.cop_hi},
        }  # fmt: skip


@dataclass(frozen=True)
class Recommendation:
    """The cheapest setting reaching `target` on one task, the runner-up per model, or the closest."""

    task: str
    target: float
    confidence: float | None
    #: the cheapest setting that reaches the target; None when none does
    choice: Setting | None
    #: per model, its cheapest reaching setting other than the choice (models that reach nothing: absent)
    runners_up: tuple[Setting, ...]
    #: when nothing reaches the target: the setting with the highest accuracy (ties: cheapest)
    closest: Setting | None
    #: how many settings were compared
    considered: int

    @property
    def reached(self) -> bool:
        return self.choice is not None

    def headline(self) -> str:
        """One sentence: what to deploy, or why nothing qualifies."""
        how = "accuracy" if self.confidence is None else f"{self.confidence:.0%} lower bound of accuracy"
        if self.choice is not None:
            c = self.choice
            return (
                f"cheapest to reach {self.target:.2f} ({how}): {c.label} with {c.method} — accuracy "
                f"{c.accuracy:.2f} [{c.accuracy_lo:.2f}, {c.accuracy_hi:.2f}], {_usd(c.usd_per_problem)} per "
                f"problem, {_usd(c.cost_of_pass)} per correct answer"
            )
        if self.closest is None:
            return f"none reaches {self.target:.2f}: no setting could be estimated"
        c = self.closest
        value = c.accuracy if self.confidence is None else c.lower_bound(self.confidence)
        return (
            f"none reaches {self.target:.2f} ({how}) among {self.considered} settings; closest: {c.label} with "
            f"{c.method} at {value:.2f} ({_usd(c.usd_per_problem)} per problem)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "target_accuracy": self.target,
            "confidence": self.confidence,
            "reached": self.reached,
            "choice": self.choice.to_dict() if self.choice else None,
            "runners_up": [s.to_dict() for s in self.runners_up],
            "closest": self.closest.to_dict() if self.closest else None,
            "considered": self.considered,
            "headline": self.headline(),
        }


def _usd(x: float) -> str:
    from infereco.report import _usd as fmt

    return fmt(x)


def _quantiles(boot: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bounds as order statistics (an infinite resample stays infinite, never NaN)."""
    lo = np.quantile(boot, (1 - level) / 2, axis=0, method="lower")
    hi = np.quantile(boot, (1 + level) / 2, axis=0, method="higher")
    return lo, hi


def _estimate(
    acc: np.ndarray, usd: np.ndarray, *, n_boot: int, level: float, seed: int
) -> dict[str, np.ndarray]:
    """Means and paired-bootstrap CIs of accuracy, cost per problem and cost-of-pass per column.

    acc, usd: [P, K] per-problem success probability and dollars of K settings. One set of problem
    resamples serves every column and all three quantities.
    """
    from infereco.metrics import _resampled_means

    P, K = acc.shape
    means = _resampled_means(np.concatenate([acc, usd], axis=1), n_boot, seed)
    acc_b, usd_b = np.clip(means[:, :K], 0.0, 1.0), means[:, K:]
    with np.errstate(divide="ignore", invalid="ignore"):
        cop_b = np.where(acc_b <= 0, np.inf, usd_b / acc_b)
        acc_m, usd_m = acc.mean(axis=0), usd.mean(axis=0)
        cop_m = np.where(acc_m <= 0, np.inf, usd_m / acc_m)
    out = {"acc": acc_m, "usd": usd_m, "cop": cop_m, "acc_boot": acc_b}
    for name, boot in (("acc", acc_b), ("usd", usd_b), ("cop", cop_b)):
        out[name + "_lo"], out[name + "_hi"] = _quantiles(boot, level)
    return out


#: every k up to this is a candidate; above it, ks at most 2% apart (a vote over 1,000 samples
#: does not differ from one over 1,001, and each k costs a majority@k estimate)
EVERY_K_UP_TO = 128


def candidate_ks(n: int) -> np.ndarray:
    """The vote sizes considered for a run with n samples per problem: every k up to
    `EVERY_K_UP_TO`, then a geometric grid (ratio 1.02, rounded to whole k) up to and including n."""
    head = np.arange(1, min(n, EVERY_K_UP_TO) + 1)
    if n <= EVERY_K_UP_TO:
        return head
    steps = int(np.ceil(np.log(n / EVERY_K_UP_TO) / np.log(1.02)))
    tail = np.unique(np.round(EVERY_K_UP_TO * 1.02 ** np.arange(1, steps + 1)).astype(np.int64))
    return np.unique(np.concatenate([head, tail[tail < n], [n]]))


def settings_for_run(
    pool: SamplePool,
    config: Mapping[str, Any],
    *,
    label: str | None = None,
    problem_usd: Mapping[str, float] | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    draws: int | None = None,
) -> list[Setting]:
    """Every setting one stored run offers (see the module doc).

    pool: the run's pool of samples (step "sample"), or for a search strategy its outcomes pool
    (one row per problem carrying all it cost). problem_usd: what each problem cost in total, every
    step and verifier call included, for the strategy's own answer; None: the pool's cost.
    """
    from infereco.metrics import _pool_majority

    strategy_cfg = config.get("strategy") or {}
    strategy = str(strategy_cfg.get("name", "?"))
    model = str((config.get("backend") or {}).get("model", "?"))
    task = task_name(config.get("task"))
    label = label or pool.label
    run_n = int(strategy_cfg.get("n", pool.max_n) or pool.max_n)
    P = pool.n_problems
    if P == 0:
        return []
    common = dict(task=task, label=label, run_id=pool.run_id, model=model, strategy=strategy, run_n=run_n, problems=P,
                  level=level)  # fmt: skip
    valid = np.asarray(pool.valid, bool)
    per_problem_total = np.where(valid, np.asarray(pool.cost_usd, np.float64), 0.0).sum(axis=1)
    settings: list[Setting] = []
    columns: list[tuple[str, int, np.ndarray, np.ndarray]] = []  # (method, k, acc [P], usd [P])
    if _pools(strategy) and pool.max_n >= 1:
        ks = candidate_ks(pool.max_n)
        votes = _pool_majority(pool, ks, draws=draws, seed=seed)
        per_sample = per_problem_total / np.maximum(valid.sum(axis=1), 1)
        for i, k in enumerate(ks.tolist()):
            columns.append(("single sample" if k == 1 else f"majority@{k}", k, votes[:, i], per_sample * k))
    if strategy not in _VOTE_ONLY and pool.final_correct is not None:
        if problem_usd is not None:
            spent = np.array([float(problem_usd.get(pid, 0.0)) for pid in pool.problem_ids])
        else:
            spent = per_problem_total
        columns.append((f"{strategy}'s answer", run_n, np.asarray(pool.final_correct, np.float64), spent))
    if not columns:
        return []
    acc = np.column_stack([c[2] for c in columns])
    usd = np.column_stack([c[3] for c in columns])
    est = _estimate(acc, usd, n_boot=n_boot, level=level, seed=seed)
    for j, (method, k, _, _) in enumerate(columns):
        settings.append(Setting(
            **common, method=method, k=k,  # type: ignore[arg-type]
            accuracy=float(est["acc"][j]), accuracy_lo=float(est["acc_lo"][j]), accuracy_hi=float(est["acc_hi"][j]),
            usd_per_problem=float(est["usd"][j]), usd_lo=float(est["usd_lo"][j]), usd_hi=float(est["usd_hi"][j]),
            cost_of_pass=float(est["cop"][j]), cop_lo=float(est["cop_lo"][j]), cop_hi=float(est["cop_hi"][j]),
            boot=est["acc_boot"][:, j].copy(),
        ))  # fmt: skip
    return settings


def _check(target: float, confidence: float | None) -> None:
    if not (isinstance(target, (int, float)) and 0.0 <= float(target) <= 1.0) or math.isnan(float(target)):
        raise UserError(f"--target-accuracy must be a share of problems in [0, 1], got {target}")
    if confidence is not None and not 0.5 <= float(confidence) < 1.0:
        raise UserError(f"--confidence must be in [0.5, 1), e.g. 0.9, got {confidence}")


def _cheapest_key(s: Setting) -> tuple[float, float, int]:
    return (s.usd_per_problem, -s.accuracy, s.k)


def recommend(
    settings: Sequence[Setting], target: float, *, confidence: float | None = None
) -> list[Recommendation]:
    """The recommendation for `target` on each task the settings cover (one per task, in order seen)."""
    _check(target, confidence)
    by_task: dict[str, list[Setting]] = {}
    for s in settings:
        by_task.setdefault(s.task, []).append(s)
    out = []
    for task, group in by_task.items():
        known = [s for s in group if math.isfinite(s.usd_per_problem) and not math.isnan(s.accuracy)]
        reaching = sorted((s for s in known if s.reaches(target, confidence)), key=_cheapest_key)
        choice = reaching[0] if reaching else None
        runners: dict[str, Setting] = {}
        for s in reaching[1:]:
            runners.setdefault(s.model, s)
        closest = None
        if choice is None and known:
            score = (lambda s: s.accuracy) if confidence is None else (lambda s: s.lower_bound(confidence))
            closest = min(known, key=lambda s: (-score(s), s.usd_per_problem, s.k))
        out.append(Recommendation(task, float(target), confidence, choice, tuple(runners.values()), closest, len(known)))
    return out
