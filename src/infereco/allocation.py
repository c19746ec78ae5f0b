"""Compute-optimal allocation of majority-vote samples by problem difficulty, evaluated offline.

The rule of Snell et al. ("compute-optimal" test-time scaling, papers digest section 5): estimate
how hard each problem is, bin problems by that estimate, and give each bin the setting that
maximises accuracy at the budget. Here the setting is the vote size k of majority voting and
everything is replayed from one stored pool (sample once, analyse many times):

1. Problems are split (seeded) into a calibration half and a held-out half.
2. Pilot: the first `pilot` samples of every problem. Difficulty score = share of pilot samples
   that agree with the pilot's plurality answer (label-free; a pilot with no answer scores 0), or,
   with `use_oracle_pilot=True`, the pilot's pass rate. The oracle score **needs correctness
   labels** for the pilot samples, which a deployed system does not have: use it as an upper bound.
3. Problems are put into `bins` quantile bins of the score; the thresholds are fitted on the
   calibration half as midpoints between distinct scores (tied scores share a bin, so a pilot of 2
   gives at most 3 bins and every bin has calibration problems). Bin 0 is the hardest.
4. Options per bin: majority@k with k in {1, 2, 4, ..., N} (N = `pool.max_n`); k counts the pilot
   samples, so an option costs max(k, pilot) samples (the pilot is always paid). The cost of one
   sample is 1 with unit="samples" and the problem's mean USD per sample with unit="usd" (1 when
   the pool's costs are all zero: the budget is then read in samples). The expected accuracy of
   (bin, k) is the mean over the bin's calibration problems of the unbiased majority@k estimate
   (`metrics.majority_at_k`).
5. The per-bin k are chosen exactly (dynamic programming over bins keeping the Pareto frontier of
   (cost, expected accuracy)) to maximise expected accuracy with average cost per problem <= the
   budget; ties go to the cheaper plan. Because the pilot runs on every problem before k is chosen,
   the held-out problems' bins (and their costs) are known at that point, so the budget constraint
   is enforced on the held-out problems themselves: the realised average cost never exceeds it.
6. Baseline: uniform majority@k (no pilot) with the largest k on the grid whose average cost fits.
   Both are scored on the held-out half: mean over problems of majority@k for the problem's k,
   with percentile-bootstrap CIs (and a paired CI of the difference).

Caveat: majority@k is estimated over random k-subsets of all N stored samples, not over subsets
forced to contain the pilot samples. Pilot samples that agreed are slightly more likely to be right
than the problem's average sample, so for small k in easy bins the estimate is a little
pessimistic; it is the same estimator for allocation and baseline, so their comparison is fair.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from infereco.errors import UserError
from infereco.metrics import bootstrap_ci, default_ks, majority_at_k
from infereco.pool import SamplePool

__all__ = ["AllocationError", "AllocationResult", "allocate", "allocation_curve"]

_TOL = 1e-9


class AllocationError(UserError, ValueError):
    """Bad allocation input (budget below the pilot cost, too few problems, bad unit...)."""


@dataclass(frozen=True)
class AllocationResult:
    """One budget's allocation and its held-out evaluation (costs per problem, in `unit`).

    Per-bin tuples are ordered hardest bin first. `thresholds` are the score edges between bins
    (a problem with score s goes to bin searchsorted(thresholds, s, side="right")).
    """

    budget: float
    unit: str  # "samples" or "usd" (as used: "samples" when USD costs were all zero)
    pilot: int
    use_oracle_pilot: bool
    seed: int
    ks: tuple[int, ...]  # the k grid every bin chose from
    n_bins: int  # effective bins (fewer than asked when scores tie)
    thresholds: tuple[float, ...]
    bin_k: tuple[int, ...]  # chosen k per bin
    bin_expected_accuracy: tuple[float, ...]  # calibration majority@k at the chosen k
    bin_n_calibration: tuple[int, ...]
    bin_n_heldout: tuple[int, ...]
    n_calibration: int
    n_heldout: int
    pilot_cost: float  # average pilot cost per held-out problem
    expected_accuracy: float  # calibration estimate, weighted by held-out bin sizes
    heldout_accuracy: float
    heldout_ci: tuple[float, float]
    cost: float  # realised average cost per held-out problem (pilot included)
    baseline_k: int
    baseline_expected_accuracy: float  # calibration majority@baseline_k
    baseline_accuracy: float  # held-out
    baseline_ci: tuple[float, float]
    baseline_cost: float
    gain: float  # heldout_accuracy - baseline_accuracy
    gain_ci: tuple[float, float]  # paired bootstrap over held-out problems

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Prepared:
    unit: str
    pilot: int
    use_oracle_pilot: bool
    seed: int
    n_boot: int
    ks: np.ndarray  # [K]
    thresholds: np.ndarray  # [B-1]
    cal: np.ndarray  # indices of calibration problems
    held: np.ndarray  # indices of held-out problems
    bin_of: np.ndarray  # [P] bin per problem
    unit_cost: np.ndarray  # [P] cost of one sample
    votes: np.ndarray  # [P, K] majority@k per problem
    table: np.ndarray  # [B, K] calibration accuracy per (bin, k)


def _difficulty(pool: SamplePool, pilot: int, oracle: bool) -> np.ndarray:
    """[P] score in [0, 1], higher = easier, from the first `pilot` samples of each problem."""
    ans = np.asarray(pool.answers)[:, :pilot]
    if oracle:
        return np.asarray(pool.correct, bool)[:, :pilot].mean(axis=1)
    scores = np.zeros(ans.shape[0])
    for p, row in enumerate(ans):
        answered = row[row >= 0]
        if answered.size:
            scores[p] = np.unique(answered, return_counts=True)[1].max() / pilot
    return scores


def _fit_thresholds(cal_scores: np.ndarray, bins: int) -> np.ndarray:
    """Cut points between the calibration scores nearest to their 1/bins, 2/bins, ... quantiles.

    Cuts are midpoints between adjacent distinct calibration scores, so every bin holds at least one
    calibration problem and tied scores never straddle a cut; with fewer distinct scores than bins
    (a 2-sample pilot scores only 0, 0.5 or 1) there are fewer bins. For each target quantile q the
    cut whose share of calibration problems below it is closest to q is taken.
    """
    values = np.unique(cal_scores)
    if bins <= 1 or values.size < 2:
        return np.zeros(0)
    cuts = (values[:-1] + values[1:]) / 2
    below = np.searchsorted(np.sort(cal_scores), cuts) / cal_scores.size  # share below each cut
    picks = {int(np.argmin(np.abs(below - q))) for q in np.arange(1, bins) / bins}
    return cuts[sorted(picks)]


def _prepare(
    pool: SamplePool,
    *,
    unit: str,
    pilot: int,
    bins: int,
    seed: int,
    use_oracle_pilot: bool,
    draws: int | None,
    n_boot: int,
) -> _Prepared:
    if unit not in ("samples", "usd"):
        raise AllocationError(f"unit must be 'samples' or 'usd', got {unit!r}")
    P, N = pool.n_problems, pool.max_n
    if P < 2:
        raise AllocationError(f"allocation needs at least 2 problems to split, got {P}")
    if not 1 <= pilot <= N:
        raise AllocationError(
            f"pilot must be between 1 and the pool's samples per problem ({N}), got {pilot}"
        )
    if bins < 1:
        raise AllocationError(f"bins must be >= 1, got {bins}")

    perm = np.random.default_rng(seed).permutation(P)
    cal, held = np.sort(perm[: P // 2]), np.sort(perm[P // 2 :])

    valid = np.asarray(pool.valid, bool)
    if unit == "usd":
        spent = np.where(valid, np.asarray(pool.cost_usd, np.float64), 0.0).sum(axis=1)
        if np.all(spent == 0):
            unit, unit_cost = "samples", np.ones(P)
        else:
            unit_cost = spent / np.maximum(valid.sum(axis=1), 1)
    else:
        unit_cost = np.ones(P)

    scores = _difficulty(pool, pilot, use_oracle_pilot)
    thresholds = _fit_thresholds(scores[cal], bins)
    bin_of = np.searchsorted(thresholds, scores, side="right")
    ks = default_ks(N)  # 1, 2, 4, ... and N itself
    verdicts = pool.answer_correct if len(pool.answer_correct) == P else None
    votes = majority_at_k(
        pool.answers, pool.correct, ks, valid=valid, answer_correct=verdicts, draws=draws, seed=seed
    )
    n_bins = thresholds.size + 1
    table = np.stack([votes[cal[bin_of[cal] == b]].mean(axis=0) for b in range(n_bins)])
    return _Prepared(
        unit=unit, pilot=pilot, use_oracle_pilot=use_oracle_pilot, seed=seed, n_boot=n_boot,
        ks=ks, thresholds=thresholds, cal=cal, held=held, bin_of=bin_of, unit_cost=unit_cost,
        votes=votes, table=table,
    )  # fmt: skip


def _best_plan(
    acc: np.ndarray, cost: np.ndarray, budget: float
) -> tuple[tuple[int, ...], float, float]:
    """Exact multiple-choice knapsack: one option per bin, max sum(acc) with sum(cost) <= budget.

    acc, cost: [B, K] (contributions to the average accuracy / cost). DP over bins keeping only
    the Pareto frontier of (cost, accuracy) partial plans, so it is exact and stays small. Among
    plans of equal accuracy (within 1e-12) the cheaper one wins.
    """
    limit = budget + _TOL * max(1.0, abs(budget))
    states: list[tuple[float, float, tuple[int, ...]]] = [(0.0, 0.0, ())]
    for b in range(acc.shape[0]):
        grown = [
            (c + cost[b, j], a + acc[b, j], plan + (j,))
            for c, a, plan in states
            for j in range(acc.shape[1])
            if c + cost[b, j] <= limit
        ]
        grown.sort(key=lambda s: (s[0], -s[1]))
        states = []
        for s in grown:
            if not states or s[1] > states[-1][1] + 1e-12:
                states.append(s)
    if not states:
        raise AllocationError(f"no allocation fits the budget {budget}")
    c, a, plan = states[-1]  # frontier sorted by cost with increasing accuracy: last is the best
    return plan, a, c


def _solve(prep: _Prepared, budget: float) -> AllocationResult:
    budget = float(budget)
    if not math.isfinite(budget) or budget <= 0:
        raise AllocationError(f"budget must be a positive number, got {budget}")
    held, cal, ks, pilot = prep.held, prep.cal, prep.ks, prep.pilot
    H = held.size
    n_bins = prep.table.shape[0]
    hb = prep.bin_of[held]
    hc = prep.unit_cost[held]
    pilot_cost = float(pilot * hc.mean())
    if budget < pilot_cost * (1 - _TOL):
        raise AllocationError(
            f"budget {budget:g} {prep.unit} per problem is below the pilot's cost "
            f"({pilot} samples = {pilot_cost:g} {prep.unit} per problem on average); "
            f"raise the budget or lower pilot"
        )
    spend = np.maximum(ks, pilot).astype(np.float64)  # samples an option draws, pilot included
    bin_cost = np.stack([hc[hb == b].sum() for b in range(n_bins)]) / H  # [B]
    bin_share = np.bincount(hb, minlength=n_bins) / H
    acc = np.nan_to_num(prep.table) * bin_share[:, None]  # a bin with no held-out problem adds 0
    plan, expected, _ = _best_plan(acc, bin_cost[:, None] * spend[None, :], budget)
    bin_k = ks[list(plan)]

    k_of = bin_k[hb]
    col = np.searchsorted(ks, k_of)
    alloc = prep.votes[held, col]
    cost = float((np.maximum(k_of, pilot) * hc).mean())

    fits = np.flatnonzero(ks * hc.mean() <= budget * (1 + _TOL))
    if not fits.size:
        raise AllocationError(f"budget {budget:g} {prep.unit} cannot pay one sample per problem")
    j = int(fits[-1])
    base = prep.votes[held, j]
    pair = np.stack([alloc, base, alloc - base], axis=1)
    lo, hi = bootstrap_ci(pair, n_boot=prep.n_boot, seed=prep.seed)
    return AllocationResult(
        budget=budget,
        unit=prep.unit,
        pilot=pilot,
        use_oracle_pilot=prep.use_oracle_pilot,
        seed=prep.seed,
        ks=tuple(int(k) for k in ks),
        n_bins=n_bins,
        thresholds=tuple(float(t) for t in prep.thresholds),
        bin_k=tuple(int(k) for k in bin_k),
        bin_expected_accuracy=tuple(float(prep.table[b, plan[b]]) for b in range(n_bins)),
        bin_n_calibration=tuple(int(x) for x in np.bincount(prep.bin_of[cal], minlength=n_bins)),
        bin_n_heldout=tuple(int(x) for x in np.bincount(hb, minlength=n_bins)),
        n_calibration=int(cal.size),
        n_heldout=int(H),
        pilot_cost=pilot_cost,
        expected_accuracy=float(expected),
        heldout_accuracy=float(alloc.mean()),
        heldout_ci=(float(lo[0]), float(hi[0])),
        cost=cost,
        baseline_k=int(ks[j]),
        baseline_expected_accuracy=float(prep.votes[cal, j].mean()),
        baseline_accuracy=float(base.mean()),
        baseline_ci=(float(lo[1]), float(hi[1])),
        baseline_cost=float(ks[j] * hc.mean()),
        gain=float(alloc.mean() - base.mean()),
        gain_ci=(float(lo[2]), float(hi[2])),
    )


def allocate(
    pool: SamplePool,
    budget: float,
    *,
    unit: Literal["samples", "usd"] = "samples",
    pilot: int = 2,
    bins: int = 3,
    seed: int = 0,
    use_oracle_pilot: bool = False,
    draws: int | None = None,
    n_boot: int = 1000,
) -> AllocationResult:
    """Difficulty-binned majority-vote allocation at `budget` per problem, scored on held-out data.

    See the module docstring for the procedure. `budget` is the average per-problem spend in
    `unit` (samples, or USD), pilot included. Raises `AllocationError` (a `UserError` and a
    `ValueError`) when the budget is below the pilot's cost or the input cannot be split.
    `use_oracle_pilot=True` scores difficulty by the pilot's pass rate, which needs correctness
    labels (an oracle). Deterministic for a given `seed` (split, Monte-Carlo votes, bootstrap).
    """
    return allocation_curve(
        pool, [budget], unit=unit, pilot=pilot, bins=bins, seed=seed,
        use_oracle_pilot=use_oracle_pilot, draws=draws, n_boot=n_boot,
    )[0]  # fmt: skip


def allocation_curve(
    pool: SamplePool,
    budgets: Sequence[float],
    *,
    unit: Literal["samples", "usd"] = "samples",
    pilot: int = 2,
    bins: int = 3,
    seed: int = 0,
    use_oracle_pilot: bool = False,
    draws: int | None = None,
    n_boot: int = 1000,
) -> list[AllocationResult]:
    """`allocate` at every budget, sharing the split, bins and majority@k table (one per budget)."""
    prep = _prepare(
        pool, unit=unit, pilot=pilot, bins=bins, seed=seed,
        use_oracle_pilot=use_oracle_pilot, draws=draws, n_boot=n_boot,
    )  # fmt: skip
    return [_solve(prep, b) for b in budgets]
