"""Metrics over stored samples: pass@k, majority@k, best-of-n@k, bootstrap CIs, cost-of-pass.

Sampling is the expensive part of a run, so it happens once (N samples per problem) and every curve
for every k <= N is *estimated* from that pool instead of re-sampled: pass@k and best-of-n@k by
exact combinatorial formulas, majority@k exactly where that is cheap and by seeded Monte-Carlo
subsampling otherwise.

Everything here is pure numpy over arrays shaped [problems, samples] (no SQLite, no model) and is
vectorised over problems: for 10,000 problems x 1,000 samples, pass@k at every k, majority@k on the
report's k grid and their bootstrap CIs take under 2 s on 2 cores (benchmarks/metrics_speed.py).

Conventions: `k > n` for a problem gives NaN (that problem says nothing about k), means over
problems propagate NaN, and infinities (cost-of-pass with zero successes) stay floats until JSON
writing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from infereco.pool import SamplePool

# Largest number of float64 cells a single vectorised step materialises (about 32 MB).
_CHUNK_CELLS = 1 << 22
# Target total number of Monte-Carlo draws per k across all problems (see `auto_draws`).
_DRAW_BUDGET = 1 << 18
MIN_DRAWS = 32
MAX_DRAWS = 1024

__all__ = [
    "MAX_DRAWS",
    "MIN_DRAWS",
    "auto_draws",
    "best_of_n_at_k",
    "bootstrap_ci",
    "cost_of_pass",
    "cost_of_pass_array",
    "cost_of_pass_ci",
    "coverage_power_law",
    "default_ks",
    "fit_coverage_power_law",
    "majority_at_k",
    "majority_at_k_curve",
    "pass_at_k",
    "pass_at_k_curve",
    "pool_counts",
    "summarize",
]


# ----------------------------------------------------------------------------------------------
# input checking


def _as_int_array(x: ArrayLike, name: str) -> np.ndarray:
    """Integer-valued input as int64; floats are accepted only when they are whole numbers."""
    a = np.asarray(x)
    if a.dtype.kind == "b":
        return a.astype(np.int64)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise ValueError(f"{name} must hold whole numbers, got {a!r}")
        return a.astype(np.int64)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


def _as_ks(ks: ArrayLike) -> np.ndarray:
    k = _as_int_array(ks, "ks").reshape(-1)
    if k.size and k.min() < 1:
        raise ValueError(f"every k must be >= 1, got {k.tolist()}")
    return k


def _as_2d(x: ArrayLike, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D [problems, samples], got shape {a.shape}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    return a


def default_ks(max_n: int) -> np.ndarray:
    """Powers of two up to `max_n`, plus `max_n` itself: the k grid of tables and log2 plots."""
    if max_n < 1:
        return np.zeros(0, dtype=np.int64)
    ks = [1 << i for i in range(int(max_n).bit_length()) if (1 << i) <= max_n]
    if ks[-1] != max_n:
        ks.append(int(max_n))
    return np.asarray(ks, dtype=np.int64)


def pool_counts(pool: SamplePool) -> tuple[np.ndarray, np.ndarray]:
    """[P] real samples and [P] correct real samples per problem: all that pass@k needs."""
    valid = np.asarray(pool.valid, dtype=bool)
    return valid.sum(axis=1).astype(np.int64), (np.asarray(pool.correct, bool) & valid).sum(axis=1)


# ----------------------------------------------------------------------------------------------
# pass@k


def pass_at_k(n: ArrayLike, c: ArrayLike, ks: ArrayLike) -> np.ndarray:
    """Unbiased pass@k, 1 - C(n-c, k) / C(n, k), for every problem and every k: shape [P, K].

    The ratio C(n-c, k) / C(n, k) is the product over i < k of (1 - c / (n - i)); it is accumulated
    as a cumulative sum of log1p terms and turned back with expm1, so a pass@k of 1e-6 keeps its
    digits and nothing overflows (no factorials). All k share one cumulative sum, and problems with
    the same (n, c) share one row, so a curve over every k costs one pass over (distinct (n, c)) x
    max(k). k > n gives NaN.
    """
    n_arr, c_arr = np.broadcast_arrays(_as_int_array(n, "n"), _as_int_array(c, "c"))
    n_arr, c_arr = n_arr.reshape(-1), c_arr.reshape(-1)
    k_arr = _as_ks(ks)
    if np.any(n_arr < 0) or np.any(c_arr < 0) or np.any(c_arr > n_arr):
        raise ValueError("pass_at_k needs 0 <= c <= n for every problem")
    out = np.full((n_arr.size, k_arr.size), np.nan)
    if out.size == 0:
        return out
    kmax = int(k_arr.max())
    uniq, inverse = np.unique(np.stack([n_arr, c_arr], axis=1), axis=0, return_inverse=True)
    steps = np.arange(kmax, dtype=np.float64)
    per_row = np.empty((len(uniq), k_arr.size))
    rows = max(1, _CHUNK_CELLS // kmax)
    for lo in range(0, len(uniq), rows):
        nn = uniq[lo : lo + rows, 0:1].astype(np.float64)
        cc = uniq[lo : lo + rows, 1:2].astype(np.float64)
        left = nn - steps  # n - i for i = 0..kmax-1; <= 0 once k exceeds n
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.minimum(cc / left, 1.0)  # 1 once every remaining sample is correct: product 0
            log_terms = np.where(left > 0, np.log1p(-frac), np.nan)
        log_miss = np.cumsum(log_terms, axis=1)  # log C(n-c, k)/C(n, k) at column k-1
        per_row[lo : lo + rows] = -np.expm1(log_miss[:, k_arr - 1])
    return per_row[inverse.reshape(-1)]


def pass_at_k_curve(pool: SamplePool, ks: ArrayLike | None = None) -> np.ndarray:
    """Coverage curve: pass@k averaged over problems, [K]; ks default to 1..max_n."""
    n, c = pool_counts(pool)
    k_arr = np.arange(1, pool.max_n + 1) if ks is None else _as_ks(ks)
    return _column_means(pass_at_k(n, c, k_arr))


def _column_means(per_problem: np.ndarray) -> np.ndarray:
    if per_problem.shape[0] == 0:
        return np.full(per_problem.shape[1:], np.nan)
    return per_problem.mean(axis=0)


# ----------------------------------------------------------------------------------------------
# majority@k


@dataclass(frozen=True)
class _Classes:
    """Answer classes of every problem, reduced to what a plurality vote depends on.

    A vote only sees how many drawn samples fall in each answer class, so samples are exchangeable
    within a class. Classes of one sample (singletons) can only ever tie at a count of 1, so they
    are kept as two counts (correct / wrong) instead of columns: that bounds the work by the number
    of classes with >= 2 samples, not by N.
    """

    n: np.ndarray  # [P] real samples
    none: np.ndarray  # [P] samples with no answer (id -1)
    multi: np.ndarray  # [P, C] sizes of classes with >= 2 samples: correct ones first, each
    #                    group by decreasing size, 0-padded
    multi_ok: np.ndarray  # [P, C] is that class's answer correct
    multi_n_ok: np.ndarray  # [P] number of correct classes among `multi` (they come first)
    single_ok: np.ndarray  # [P] number of correct singleton classes
    single_bad: np.ndarray  # [P] number of wrong singleton classes


def _answer_classes(
    answers: np.ndarray,
    correct: np.ndarray,
    valid: np.ndarray,
    answer_correct: Sequence[Mapping[int, bool]] | None,
) -> _Classes:
    """Group each row's answers into classes with one row-wise sort (no Python loop over problems).

    A class is correct when `answer_correct[p]` says so; without an entry it is correct when any of
    its samples was judged correct (the checker normally agrees on every sample of a class).
    """
    P, N = answers.shape
    if answers.size and np.any(answers[valid] < -1):
        raise ValueError("answer ids must be >= -1 (-1 = no answer)")
    # Key: padding -1 sorts first, no-answer -> 0/1, class id a -> 2(a+1) + verdict; the low bit
    # carries the verdict; its maximum over a run says "a sample of this class was judged right".
    small = answers.size == 0 or int(answers.max()) < 2**30 - 2
    key = answers.astype(np.int32 if small else np.int64)  # int32 sorts faster
    key += 1
    key *= 2
    key += correct & valid
    key[~valid] = -1
    key.sort(axis=1)
    flat = key.reshape(-1)
    cls = flat >> 1
    is_start = np.ones(flat.size, dtype=bool)
    is_start[1:] = cls[1:] != cls[:-1]
    is_start[::N] = True
    starts = np.flatnonzero(is_start)
    sizes = np.diff(np.append(starts, flat.size))
    run_row = starts // N
    run_cls = cls[starts]
    run_ok = np.zeros(0, bool) if not starts.size else np.maximum.reduceat(flat & 1, starts) > 0

    none = np.bincount(run_row[run_cls == 0], weights=sizes[run_cls == 0], minlength=P)
    answered = run_cls >= 1
    row, ids, size, ok = run_row[answered], run_cls[answered] - 1, sizes[answered], run_ok[answered]
    if answer_correct is not None:
        if len(answer_correct) != P:
            raise ValueError(f"answer_correct has {len(answer_correct)} entries for {P} problems")
        verdicts = ok.tolist()
        for i, (p, ident) in enumerate(zip(row.tolist(), ids.tolist())):
            v = answer_correct[p].get(ident)
            if v is not None:
                verdicts[i] = bool(v)
        ok = np.asarray(verdicts, dtype=bool)

    single = size == 1
    single_ok = np.bincount(row[single & ok], minlength=P)
    single_bad = np.bincount(row[single & ~ok], minlength=P)
    row, size, ok = row[~single], size[~single], ok[~single]
    order = np.lexsort((-size, ~ok, row))
    row, size, ok = row[order], size[order], ok[order]
    pos = np.arange(row.size) - np.searchsorted(row, row, side="left")
    width = int(pos.max()) + 1 if pos.size else 0
    multi = np.zeros((P, width), dtype=np.int64)
    multi_ok = np.zeros((P, width), dtype=bool)
    multi[row, pos] = size
    multi_ok[row, pos] = ok
    return _Classes(
        n=valid.sum(axis=1).astype(np.int64),
        none=none.astype(np.int64),
        multi=multi,
        multi_ok=multi_ok,
        multi_n_ok=multi_ok.sum(axis=1),
        single_ok=single_ok.astype(np.int64),
        single_bad=single_bad.astype(np.int64),
    )


def _tie_score(x: np.ndarray, x_ok: np.ndarray, s_ok: np.ndarray, s_bad: np.ndarray) -> np.ndarray:
    """Expected correctness of a plurality vote with uniform tie-breaking, from drawn class counts.

    x [..., C] counts drawn from the multi-sample classes, x_ok their verdicts, s_ok / s_bad how
    many correct / wrong singletons were drawn. The winner is uniform among the classes with the top
    count, so the expectation is (correct tied classes) / (tied classes); with no answered sample it
    is 0.
    """
    singles = s_ok + s_bad
    top = x.max(axis=-1, initial=0)
    top = np.maximum(top, (singles > 0).astype(top.dtype))
    tied = (x == top[..., None]) & (top[..., None] > 0)
    n_tied = tied.sum(axis=-1) + np.where(top == 1, singles, 0)
    n_ok = (tied & x_ok).sum(axis=-1) + np.where(top == 1, s_ok, 0)
    return np.where(n_tied > 0, n_ok / np.maximum(n_tied, 1), 0.0)


def _majority_small_k(cl: _Classes, k: int) -> np.ndarray:
    """Closed forms for k = 1 and 2 over every problem ([P]; caller masks n < k and n == k).

    With T = (samples in correct classes): k = 1 wins with probability T / n. For k = 2 a pair of
    two answered classes ties and splits 1/2, an answered sample beats a no-answer, which sums to T
    (2 * none + answered - 1) / (n (n - 1)).
    """
    t = (cl.multi * cl.multi_ok).sum(axis=1) + cl.single_ok
    n = cl.n.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if k == 1:
            return t / n
        answered = n - cl.none
        return t * (2 * cl.none + answered - 1) / (n * (n - 1))


def _majority_enumerate(cl: _Classes, probs: np.ndarray, n: int, k: int) -> np.ndarray:
    """Exact majority@k for problems with n samples by scoring every k-subset (C(n, k) is small).

    Samples are laid out canonically from the class sizes (multi classes, correct singletons, wrong
    singletons, no-answers); a subset's class counts are its membership row times a one-hot matrix.
    When k > n/2 the complement is enumerated instead, which keeps the subset count C(n, k).
    """
    small = min(k, n - k)
    picks = np.array(list(combinations(range(n), small)), dtype=np.int64).reshape(-1, small)
    member = np.zeros((picks.shape[0], n)) if small == k else np.ones((picks.shape[0], n))
    np.put_along_axis(member, picks, 1.0 if small == k else 0.0, axis=1)

    width = cl.multi.shape[1]
    out = np.empty(probs.size)
    step = max(1, _CHUNK_CELLS // (max(member.shape[0], n) * (width + 3)))
    for lo in range(0, probs.size, step):
        part = probs[lo : lo + step]
        loose = [cl.single_ok[part, None], cl.single_bad[part, None], cl.none[part, None]]
        sizes = np.concatenate([cl.multi[part], *loose], axis=1)
        edges = np.cumsum(sizes, axis=1)  # [g, width + 3]
        column = (np.arange(n)[None, :, None] >= edges[:, None, :]).sum(axis=2)  # [g, n]
        onehot = (column[:, :, None] == np.arange(width + 3)).astype(np.float64)  # [g, n, w + 3]
        counts = np.rint(member @ onehot).astype(np.int64)  # [g, subsets, width + 3]
        ok = cl.multi_ok[part, None, :]
        score = _tie_score(counts[..., :width], ok, counts[..., width], counts[..., width + 1])
        out[lo : lo + step] = score.mean(axis=1)
    return out


def _majority_monte_carlo(
    cl: _Classes, probs: np.ndarray, k: int, draws: int, rng: np.random.Generator
) -> np.ndarray:
    """Majority@k averaged over `draws` random k-subsets per problem, drawn in class space.

    A uniform k-subset's class counts are multivariate hypergeometric, drawn one group at a time:
    first the "loose" samples (no-answers and singletons, which can win only with a count of 1),
    then the correct classes, then the wrong classes by decreasing size. A draw stops as soon as its
    score is settled: no remaining class can reach the top count (min(next size, draws left) < top),
    or a wrong class already beats every correct one (score 0); usually after two or three classes.
    Only votes whose top count ends at <= 1 need the loose draw split into no-answers / correct /
    wrong singletons. Cost: draws x classes visited, independent of N.
    """
    p = np.repeat(probs, draws)
    left = cl.n[p].copy()  # population not yet assigned
    todo = np.full(p.size, k, dtype=np.int64)  # draws not yet assigned
    loose = cl.none[p] + cl.single_ok[p] + cl.single_bad[p]
    x_loose = np.zeros_like(todo)
    some = loose > 0
    if some.any():
        x_loose[some] = rng.hypergeometric(loose[some], left[some] - loose[some], k)
    left -= loose
    todo -= x_loose

    top = np.zeros_like(todo)  # top count so far
    ok_top = np.zeros_like(todo)  # top count among correct classes
    n_tied = np.zeros_like(todo)  # classes at the top count
    n_ok = np.zeros_like(todo)  # correct classes at the top count
    score = np.zeros(p.size)
    idx = np.arange(p.size)
    low: list[tuple[np.ndarray, ...]] = []  # settled draws whose top count is <= 1
    width = cl.multi.shape[1]
    for j in range(width + 1):
        size = cl.multi[p, j] if j < width else np.zeros_like(p)
        wrong_phase = j >= cl.multi_n_ok[p]  # sizes are descending from here on
        beaten = top > np.maximum(ok_top, 1)  # a wrong class leads every correct one: score 0
        done = (todo == 0) | (wrong_phase & ((top > np.minimum(size, todo)) | beaten))
        if done.any():
            high = done & (top >= 2)
            score[idx[high]] = n_ok[high] / n_tied[high]
            small = done & (top < 2)
            if small.any():
                low.append(tuple(v[small] for v in (idx, p, x_loose, n_tied, n_ok)))
            keep = ~done
            idx, p, left, todo, top, ok_top, n_tied, n_ok, size, x_loose = (
                v[keep] for v in (idx, p, left, todo, top, ok_top, n_tied, n_ok, size, x_loose)
            )
        if idx.size == 0:
            break
        x = rng.hypergeometric(size, left - size, todo)
        left -= size
        todo -= x
        ok = cl.multi_ok[p, j]
        new_top = x > top
        joins = (x == top) & (x > 0)
        n_tied = np.where(new_top, 1, n_tied + joins)
        n_ok = np.where(new_top, ok, n_ok + (joins & ok))
        top = np.maximum(top, x)
        ok_top = np.where(ok, np.maximum(ok_top, x), ok_top)
    if idx.size:  # unreachable: draws always run out by the last class
        raise AssertionError("majority Monte-Carlo left draws unassigned")
    if low:
        idx, p, x_loose, n_tied, n_ok = (np.concatenate(parts) for parts in zip(*low))
        x_single = rng.hypergeometric(cl.single_ok[p] + cl.single_bad[p], cl.none[p], x_loose)
        x_single_ok = rng.hypergeometric(cl.single_ok[p], cl.single_bad[p], x_single)
        # top is 1 or 0 here; when 0, n_tied = n_ok = 0 and the singletons alone decide.
        tied = n_tied + x_single
        score[idx] = np.where(tied > 0, (n_ok + x_single_ok) / np.maximum(tied, 1), 0.0)
    return score.reshape(-1, draws).mean(axis=1)


def auto_draws(n_problems: int) -> int:
    """Monte-Carlo draws per problem when the caller gives none.

    What a report shows is a mean over problems, whose Monte-Carlo standard error is at most
    0.5 / sqrt(problems x draws) (a vote's score lies in [0, 1]). Spending 2**18 draws per k across
    all problems keeps that below 0.001 from 256 problems up; the per-problem count is clipped to
    [32, 1024] so that few problems still get precise estimates (<= 0.016 each) and 10,000 problems
    stay fast. With >= 32 draws the Monte-Carlo noise adds at most 0.25/32 to the per-problem
    variance, a few percent of the spread between problems that the bootstrap CI measures.
    """
    if n_problems <= 0:
        return MAX_DRAWS
    return int(min(MAX_DRAWS, max(MIN_DRAWS, math.ceil(_DRAW_BUDGET / n_problems))))


def majority_at_k(
    answers: ArrayLike,
    correct: ArrayLike,
    ks: ArrayLike,
    *,
    valid: ArrayLike | None = None,
    answer_correct: Sequence[Mapping[int, bool]] | None = None,
    draws: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """P(the plurality answer of k samples drawn without replacement is correct), shape [P, K].

    answers: [P, N] answer-class ids, -1 = no answer. correct: [P, N] per-sample verdicts; a class
    is correct when any of its samples is, unless `answer_correct[p]` (id -> bool) says otherwise.
    No-answers never win; a draw of only no-answers counts as wrong. Ties are broken uniformly at
    random and scored by their expectation (correct tied classes / tied classes).

    How each (problem, k) is computed, with n the problem's real samples:
      k > n: NaN.  k == n, k == 1, k == 2: exact closed forms. all answers right (or all wrong):
      exact, 1 - C(no-answers, k) / C(n, k) (or 0). C(n, k) <= draws: exact, by enumerating every
      k-subset. otherwise: mean over `draws` seeded Monte-Carlo subsets (standard error <= 0.5 /
      sqrt(draws) per problem). draws=None uses `auto_draws(P)`. Each k has its own random stream
      derived from (seed, k), so a k's estimate does not depend on which other ks were asked for.
    """
    ans = _as_2d(answers, "answers")
    shape = ans.shape
    ok = _as_2d(correct, "correct", shape).astype(bool)
    real = np.ones(shape, bool) if valid is None else _as_2d(valid, "valid", shape).astype(bool)
    k_arr = _as_ks(ks)
    P = shape[0]
    n_draws = auto_draws(P) if draws is None else int(draws)
    if n_draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    out = np.full((P, k_arr.size), np.nan)
    if out.size == 0 or shape[1] == 0:
        return out
    cl = _answer_classes(_as_int_array(ans, "answers"), ok, real, answer_correct)
    full = _tie_score(cl.multi, cl.multi_ok, cl.single_ok, cl.single_bad)
    # Problems whose answers are all right (or all wrong) need no vote: the result is the chance
    # that at least one answered sample is drawn (or 0). Common in real runs, and exact.
    n_ok = (cl.multi_ok & (cl.multi > 0)).sum(axis=1) + cl.single_ok
    n_bad = (~cl.multi_ok & (cl.multi > 0)).sum(axis=1) + cl.single_bad
    pure = (n_ok == 0) | (n_bad == 0)
    pure_score = np.where(n_ok > 0, pass_at_k(cl.n, cl.n - cl.none, k_arr).T, 0.0).T
    for col, k in enumerate(k_arr.tolist()):
        n = cl.n
        out[n == k, col] = full[n == k]
        rest = n > k
        if k <= 2:
            out[rest, col] = _majority_small_k(cl, k)[rest]
            continue
        out[rest & pure, col] = pure_score[rest & pure, col]
        rest &= ~pure
        for size in np.unique(n[rest]).tolist():
            probs = np.flatnonzero(rest & (n == size))
            if math.comb(size, k) <= n_draws:
                out[probs, col] = _majority_enumerate(cl, probs, size, k)
                continue
            step = max(1, (1 << 20) // n_draws)
            for chunk, lo in enumerate(range(0, probs.size, step)):
                rng = np.random.default_rng([seed, k, size, chunk])
                part = probs[lo : lo + step]
                out[part, col] = _majority_monte_carlo(cl, part, k, n_draws, rng)
    return out


def majority_at_k_curve(
    pool: SamplePool, ks: ArrayLike | None = None, *, draws: int | None = None, seed: int = 0
) -> np.ndarray:
    """Majority@k averaged over problems, [K]; ks default to `default_ks(pool.max_n)`."""
    k_arr = default_ks(pool.max_n) if ks is None else _as_ks(ks)
    return _column_means(_pool_majority(pool, k_arr, draws=draws, seed=seed))


def _pool_majority(
    pool: SamplePool, ks: np.ndarray, *, draws: int | None, seed: int
) -> np.ndarray:
    verdicts = pool.answer_correct if len(pool.answer_correct) == pool.n_problems else None
    return majority_at_k(
        pool.answers,
        pool.correct,
        ks,
        valid=pool.valid,
        answer_correct=verdicts,
        draws=draws,
        seed=seed,
    )


# ----------------------------------------------------------------------------------------------
# best-of-n@k


def best_of_n_at_k(
    scores: ArrayLike, correct: ArrayLike, ks: ArrayLike, *, valid: ArrayLike | None = None
) -> np.ndarray:
    """P(the highest-scored of k samples drawn without replacement is correct), shape [P, K].

    Exact, so it needs no draws. Sort a problem's n samples by score; with F(m) = C(m, k) / C(n, k),
    the best of a uniform k-subset is the sample of rank r (1-based, ascending) with probability
    F(r) - F(r - 1). Ties are broken uniformly, which is the same as giving every sample of a tied
    score level the level's mean correctness. So best-of-n@k = (level-averaged correctness, in rank
    order) @ (F(r) - F(r - 1)): one matrix product per distinct n for all ks. k > n gives NaN.
    """
    sc = _as_2d(scores, "scores").astype(np.float64)
    shape = sc.shape
    ok = _as_2d(correct, "correct", shape).astype(bool)
    real = np.ones(shape, bool) if valid is None else _as_2d(valid, "valid", shape).astype(bool)
    if np.any(~np.isfinite(sc[real])):
        raise ValueError("scores of real samples must be finite")
    k_arr = _as_ks(ks)
    P, N = shape
    out = np.full((P, k_arr.size), np.nan)
    if out.size == 0 or N == 0:
        return out
    keyed = np.where(real, sc, -np.inf)  # padding sorts first, real samples fill the last n slots
    order = np.argsort(keyed, axis=1)
    s = np.take_along_axis(keyed, order, axis=1)
    good = np.take_along_axis(ok & real, order, axis=1).astype(np.float64)
    # Level-averaged correctness: (correct in level) / (level size) for every position of the level.
    pos = np.arange(N)
    starts = np.ones(shape, bool)
    starts[:, 1:] = s[:, 1:] != s[:, :-1]
    ends = np.ones(shape, bool)
    ends[:, :-1] = starts[:, 1:]
    below = np.maximum.accumulate(np.where(starts, pos, 0), axis=1)
    upto = np.flip(np.minimum.accumulate(np.flip(np.where(ends, pos + 1, N), 1), axis=1), 1)
    cum = np.concatenate([np.zeros((P, 1)), np.cumsum(good, axis=1)], axis=1)
    in_level = np.take_along_axis(cum, upto, 1) - np.take_along_axis(cum, below, 1)
    level_mean = in_level / (upto - below)

    n_real = real.sum(axis=1)
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, N + 1, dtype=np.float64)))])
    for n in np.unique(n_real).tolist():
        fits = k_arr <= n
        if n == 0 or not fits.any():
            continue
        m = np.arange(n + 1)[:, None]
        k = k_arr[fits][None, :]
        mk = np.clip(m - k, 0, None)
        log_f = log_fact[m] - log_fact[mk] - log_fact[n] + log_fact[n - k]
        f = np.where(m >= k, np.exp(log_f), 0.0)  # F(m) for m = 0..n, one column per k
        f[-1] = 1.0
        rows = np.flatnonzero(n_real == n)
        out[np.ix_(rows, np.flatnonzero(fits))] = level_mean[rows, N - n :] @ np.diff(f, axis=0)
    return out


# ----------------------------------------------------------------------------------------------
# uncertainty and fits


def _resample_counts(n_items: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """[n_boot, n_items] float32 counts: how often each problem appears in each bootstrap resample.

    Counted one resample at a time: a row's counts fit in cache, whereas one bincount over all
    n_boot x n_items picks scatters into a table of that size and is several times slower.
    """
    counts = np.empty((n_boot, n_items), dtype=np.float32)
    block = max(1, (1 << 20) // max(n_items, 1))
    for lo in range(0, n_boot, block):
        picks = rng.integers(0, n_items, size=(min(block, n_boot - lo), n_items))
        for i, row in enumerate(picks):
            counts[lo + i] = np.bincount(row, minlength=n_items)
    return counts


def _resampled_means(cols: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """[n_boot, K] column means of [P, K] values over bootstrap resamples of the P problems.

    The resamples depend only on (P, n_boot, seed), so two calls with the same seed resample the
    same problems: a ratio computed from a second call stays paired with CIs from the first.
    """
    P = cols.shape[0]
    with np.errstate(invalid="ignore"):
        centre = cols.mean(axis=0)
        centred = (cols - centre).astype(np.float32)
    weights = _resample_counts(P, n_boot, np.random.default_rng(seed))
    return (weights @ centred).astype(np.float64) / P + centre


def bootstrap_ci(
    per_problem: ArrayLike, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[Any, Any]:
    """Percentile bootstrap CI of the mean over problems, resampling problems (the unit of noise).

    per_problem: [P] or [P, K] (one column per metric or k; all columns share the same resamples, so
    differences between columns stay paired). Vectorised as one (resample-count matrix) @ (values)
    product; values are centred first so the float32 product loses nothing that matters and a
    constant column gives exactly that constant. Returns (lo, hi) as floats for [P] input, [K]
    arrays otherwise. A column with a non-finite value, or no problems, gives NaN.
    """
    v = np.asarray(per_problem, dtype=np.float64)
    if v.ndim not in (1, 2):
        raise ValueError(f"per_problem must be [P] or [P, K], got shape {v.shape}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    cols = v.reshape(v.shape[0], 1) if v.ndim == 1 else v
    P = cols.shape[0]
    if P == 0:
        lo = hi = np.full(cols.shape[1], np.nan)
    else:
        means = _resampled_means(cols, n_boot, seed)
        lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2], axis=0)
        # A resampled mean lies within the column's range; clipping removes float32 rounding
        # (a coverage bound of 1.000000004) without moving any bound by more than that rounding.
        with np.errstate(invalid="ignore"):
            lo = np.clip(lo, cols.min(axis=0), cols.max(axis=0))
            hi = np.clip(hi, cols.min(axis=0), cols.max(axis=0))
    if v.ndim == 1:
        return float(lo[0]), float(hi[0])
    return lo, hi


def fit_coverage_power_law(ks: ArrayLike, coverage: ArrayLike) -> tuple[float, float, float]:
    """Fit log(coverage) = a * k**b (coverage = exp(a k^b), a < 0), the exponentiated power law.

    Fitted as a straight line log(-log coverage) = log(-a) + b log k. Points with coverage 0 (the
    model never solves: -log is infinite) or 1 (saturated: log(-log) is -inf) carry no slope
    information and are skipped, as are NaNs. r2 is measured in the fitted (log-log) space.
    Returns (nan, nan, nan) with fewer than two usable points at distinct k.
    """
    k = np.asarray(ks, dtype=np.float64).reshape(-1)
    cov = np.asarray(coverage, dtype=np.float64).reshape(-1)
    if k.shape != cov.shape:
        raise ValueError(f"ks and coverage differ in length: {k.size} vs {cov.size}")
    use = np.isfinite(cov) & (cov > 0) & (cov < 1) & (k > 0)
    x, y = np.log(k[use]), np.log(-np.log(cov[use]))
    if np.unique(x).size < 2:
        return math.nan, math.nan, math.nan
    b, intercept = np.polyfit(x, y, 1)
    ss_res = float(np.sum((y - (intercept + b * x)) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return -math.exp(intercept), float(b), r2


def coverage_power_law(ks: ArrayLike, a: float, b: float) -> np.ndarray:
    """Evaluate a fitted exponentiated power law, exp(a k^b), e.g. to extrapolate coverage."""
    return np.exp(a * np.asarray(ks, dtype=np.float64) ** b)


# ----------------------------------------------------------------------------------------------
# economics


def cost_of_pass(cost_per_attempt: float, success_rate: float) -> float:
    """Expected spend until the first success with independent attempts: cost / success rate.

    math.inf when the success rate is 0 (no amount of money buys a pass); NaN stays NaN.
    """
    if math.isnan(success_rate) or math.isnan(cost_per_attempt):
        return math.nan
    if not 0.0 <= success_rate <= 1.0:
        raise ValueError(f"success_rate must be in [0, 1], got {success_rate}")
    return math.inf if success_rate == 0 else float(cost_per_attempt) / success_rate


def cost_of_pass_array(cost_per_attempt: ArrayLike, success_rate: ArrayLike) -> np.ndarray:
    """Elementwise `cost_of_pass` (broadcasting): inf where success is 0, NaN where a value is."""
    cost = np.asarray(cost_per_attempt, dtype=np.float64)
    rate = np.asarray(success_rate, dtype=np.float64)
    if np.any((rate < 0) | (rate > 1)):
        raise ValueError("success_rate must be in [0, 1]")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(rate == 0, np.inf, cost / rate)
    return np.where(np.isnan(cost) | np.isnan(rate), np.nan, out)


def cost_of_pass_ci(
    rates: ArrayLike,
    cost_usd: ArrayLike,
    n_samples: ArrayLike,
    spend: ArrayLike,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cost-of-pass per column with a paired percentile-bootstrap CI: (mean, lo, hi), each [K].

    rates: [P, K] per-problem success probability of K ways to spend samples (e.g. majority@k for
    each k); cost_usd: [P] dollars spent on each problem; n_samples: [P] samples bought for it;
    spend: [K] samples one attempt of column k buys. Cost-of-pass_k = spend_k x (cost per sample) /
    (mean rate_k). Both the price of a sample and the success rate depend on which problems were
    drawn (long problems cost more and are solved less often), so each resample recomputes both
    rather than dividing a fixed cost by the rate's CI. Resamples match `bootstrap_ci` with the same
    seed. A resample without a success costs infinity; bounds are order statistics (no
    interpolation between an infinite and a finite value), so an upper bound may be inf.
    """
    r = _as_2d(rates, "rates").astype(np.float64)
    P, K = r.shape
    cost = np.asarray(cost_usd, dtype=np.float64).reshape(P)
    n = np.asarray(n_samples, dtype=np.float64).reshape(P)
    k = np.asarray(spend, dtype=np.float64).reshape(K)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if P == 0:
        nan = np.full(K, np.nan)
        return nan, nan.copy(), nan.copy()
    n_total = n.sum()
    per_sample = cost.sum() / n_total if n_total > 0 else np.nan
    mean = cost_of_pass_array(k * per_sample, _column_means(r))
    boot = _resampled_means(np.column_stack([r, cost, n]), n_boot, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        boot_per_sample = np.where(boot[:, K + 1] > 0, boot[:, K] / boot[:, K + 1], np.nan)
    # float32 resampling can leave a rate a hair outside [0, 1]; the ratio needs it inside.
    boot_rates = np.clip(boot[:, :K], 0.0, 1.0)
    draws = cost_of_pass_array(k[None, :] * boot_per_sample[:, None], boot_rates)
    lo = np.quantile(draws, (1 - level) / 2, axis=0, method="lower")
    hi = np.quantile(draws, (1 + level) / 2, axis=0, method="higher")
    return mean, lo, hi


# ----------------------------------------------------------------------------------------------
# one run in one dictionary


def _estimate(mean: float, lo: float, hi: float, **extra: Any) -> dict[str, Any]:
    return {**extra, "mean": float(mean), "lo": float(lo), "hi": float(hi)}


def _cost_of_pass_curves(
    accuracy: np.ndarray,
    votes: np.ndarray,
    passes: np.ndarray,
    ks: np.ndarray,
    cost: np.ndarray,
    n: np.ndarray,
    **boot: Any,
) -> dict[str, Any]:
    """Cost-of-pass with CIs for one sample, majority@k and oracle pass@k at every k, from one
    paired bootstrap (so the three curves of a run are compared on the same resamples)."""
    K = ks.size
    rates = (
        np.column_stack([accuracy, votes, passes]) if len(accuracy) else np.zeros((0, 1 + 2 * K))
    )
    mean, lo, hi = cost_of_pass_ci(rates, cost, n, np.concatenate([[1], ks, ks]), **boot)

    def part(span: slice) -> dict[str, list[float]]:
        return {"mean": mean[span].tolist(), "lo": lo[span].tolist(), "hi": hi[span].tolist()}

    return {
        "ks": ks.tolist(),
        "single_sample": _estimate(mean[0], lo[0], hi[0]),
        "majority_at_k": part(slice(1, 1 + K)),
        "oracle_pass_at_k": part(slice(1 + K, 1 + 2 * K)),
    }


def _coverage_fit(ks: np.ndarray, coverage: np.ndarray) -> dict[str, Any]:
    """The exponentiated power law log(coverage) = a * k**b fitted to a run's pass@k curve (in-sample;
    whether it predicts held-out points, and so deserves to be shown, is `fits.coverage_fit_verdict`)."""
    a, b, r2 = fit_coverage_power_law(ks, coverage)
    return {"form": "log(coverage) = a * k^b", "a": a, "b": b, "r2": r2, "points": int(len(ks))}


def summarize(
    pool: SamplePool,
    ks: ArrayLike | None = None,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    draws: int | None = None,
) -> dict[str, Any]:
    """Everything a table, plot or JSON report shows about one run, as plain Python values.

    Rates are means over problems with percentile-bootstrap CIs (all from the same resamples); N is
    `pool.max_n`, the sample count every problem reaches. Money is in USD; cost per sample is total
    cost / real samples. Cost-of-pass is reported for three ways of spending samples: one sample, a
    majority vote over N, and an oracle that picks a correct sample among N whenever one exists
    (pass@N: an accuracy upper bound, hence a cost-of-pass lower bound, reachable only with a
    perfect verifier). `cost_of_pass_at_k` has the same three at every k, with paired-bootstrap
    CIs, for plots of cost-of-pass against N. Infinite values stay floats; `report.to_jsonable`
    turns them into "inf".
    """
    P, N = pool.n_problems, pool.max_n
    n, c = pool_counts(pool)
    k_arr = default_ks(N) if ks is None else _as_ks(ks)
    n_draws = auto_draws(P) if draws is None else int(draws)
    maj_ks = np.unique(np.append(k_arr, N)) if N >= 1 else k_arr

    with np.errstate(divide="ignore", invalid="ignore"):
        accuracy = np.where(n > 0, c / np.maximum(n, 1), np.nan)
    coverage = pass_at_k(n, c, [N])[:, 0] if N >= 1 else np.full(P, np.nan)
    passes = pass_at_k(n, c, k_arr)
    votes_all = _pool_majority(pool, maj_ks, draws=n_draws, seed=seed)
    votes = votes_all[:, np.searchsorted(maj_ks, k_arr)]
    vote_n = votes_all[:, np.searchsorted(maj_ks, N)] if N >= 1 else np.full(P, np.nan)
    final = None if pool.final_correct is None else np.asarray(pool.final_correct, np.float64)

    # One bootstrap over every per-problem column, so all CIs share the same resamples.
    blocks = {
        "accuracy": accuracy[:, None],
        "coverage": coverage[:, None],
        "pass_at_k": passes,
        "majority_at_k": votes,
        "majority_at_n": vote_n[:, None],
    }
    if final is not None:
        blocks["final_accuracy"] = final.reshape(P, 1)
    table = np.concatenate(list(blocks.values()), axis=1)
    means = _column_means(table)
    lo, hi = bootstrap_ci(table, n_boot=n_boot, level=level, seed=seed)
    ends = np.cumsum([b.shape[1] for b in blocks.values()])
    spans = {name: slice(end - b.shape[1], end) for (name, b), end in zip(blocks.items(), ends)}

    def point(name: str, **extra: Any) -> dict[str, Any]:
        i = spans[name].start
        return _estimate(means[i], lo[i], hi[i], **extra)

    def curve(name: str) -> dict[str, list[float]]:
        span = spans[name]
        return {"mean": means[span].tolist(), "lo": lo[span].tolist(), "hi": hi[span].tolist()}

    real = np.asarray(pool.valid, dtype=bool)
    n_real = int(real.sum())
    total_cost = float(np.asarray(pool.cost_usd, np.float64)[real].sum())
    per_sample = total_cost / n_real if n_real else math.nan
    prompt = np.asarray(pool.prompt_tokens)[real]
    completion = np.asarray(pool.completion_tokens)[real]
    latency = np.asarray(pool.latency_s, np.float64)[real]
    accuracy_ci, coverage_ci = point("accuracy"), point("coverage", k=N)
    vote_ci = point("majority_at_n", k=N)
    spend_ci = _cost_of_pass_curves(
        accuracy, votes, passes, k_arr, np.where(real, pool.cost_usd, 0.0).sum(axis=1), n,
        n_boot=n_boot, level=level, seed=seed,
    )  # fmt: skip

    return {
        "label": pool.label,
        "run_id": pool.run_id,
        "n_problems": P,
        "n_samples": N,
        "n_samples_per_problem": {
            "min": N,
            "max": int(n.max()) if P else 0,
            "mean": float(n.mean()) if P else math.nan,
        },
        "n_samples_total": n_real,
        "level": level,
        "n_boot": n_boot,
        "seed": seed,
        "accuracy": accuracy_ci,
        "coverage": coverage_ci,
        "ks": k_arr.tolist(),
        "pass_at_k": curve("pass_at_k"),
        "majority_at_k": curve("majority_at_k"),
        "majority_at_n": vote_ci,
        "majority_draws": n_draws,
        "majority_mc_se_bound": 0.5 / math.sqrt(P * n_draws) if P else math.nan,
        "final_accuracy": point("final_accuracy") if final is not None else None,
        "tokens": {
            "prompt_total": int(prompt.sum()),
            "completion_total": int(completion.sum()),
            "total": int(prompt.sum() + completion.sum()),
            "prompt_mean": float(prompt.mean()) if n_real else math.nan,
            "completion_mean": float(completion.mean()) if n_real else math.nan,
        },
        "cost": {
            "total_usd": total_cost,
            "per_sample_usd": per_sample,
            "per_problem_usd": N * per_sample,
            "per_problem_actual_usd": total_cost / P if P else math.nan,
        },
        "cost_of_pass": {
            "single_sample": cost_of_pass(per_sample, accuracy_ci["mean"]),
            "majority_at_n": cost_of_pass(N * per_sample, vote_ci["mean"]),
            "oracle_best_of_n": cost_of_pass(N * per_sample, coverage_ci["mean"]),
            "oracle_note": (
                "oracle best-of-N assumes a perfect verifier: its accuracy (pass@N) is an upper "
                "bound, so its cost-of-pass is a lower bound"
            ),
        },
        "cost_of_pass_at_k": spend_ci,
        "coverage_fit": _coverage_fit(k_arr, means[spans["pass_at_k"]]),
        "latency_s": {
            "mean": float(latency.mean()) if n_real else math.nan,
            "median": float(np.median(latency)) if n_real else math.nan,
            "total": float(latency.sum()),
        },
        "config": dict(pool.config),
    }
