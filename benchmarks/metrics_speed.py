"""How fast are the metrics on a big pool? Target: 10,000 problems x 1,000 samples in < 2 s.

Run: PYTHONPATH=src python benchmarks/metrics_speed.py [--problems 10000] [--samples 1000]

Times (best of --repeat runs, seconds, on whatever machine this runs on):
  pass@k      every k = 1..N, per problem [P, N]
  majority@k  the report's k grid (powers of two up to N, plus N), draws = auto_draws(P)
  bootstrap   95% CIs, 1,000 resamples, for all those columns at once
  total       the three together: the target
and, for reference, best-of-n@k on the same grid and `summarize()` end to end.

The pool is synthetic but shaped like real runs: per-problem accuracy from a Beta(0.7, 0.7), a
Zipf-weighted set of 30 recurring wrong answers, a 10% tail of one-off wrong answers, 3% no-answers.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from infereco import metrics
from infereco.pool import SamplePool


def synthetic_pool(n_problems: int, n_samples: int, seed: int = 0) -> SamplePool:
    """A realistic-looking pool, generated without a Python loop over problems."""
    rng = np.random.default_rng(seed)
    shape = (n_problems, n_samples)
    p_right = rng.beta(0.7, 0.7, size=(n_problems, 1))
    u = rng.random(shape)
    zipf = 1.0 / np.arange(1, 31)
    common = 1 + np.searchsorted(np.cumsum(zipf / zipf.sum()), rng.random(shape), side="right")
    one_off = 1000 + np.arange(n_samples)[None, :] + np.zeros(shape, dtype=np.int64)
    wrong = np.where(rng.random(shape) < 0.1, one_off, np.minimum(common, 30))
    answers = np.where(u < p_right, 0, np.where(rng.random(shape) < 0.03, -1, wrong))
    valid = np.ones(shape, dtype=bool)
    tokens = rng.integers(50, 400, size=shape)
    return SamplePool(
        label="benchmark",
        run_id="bench",
        problem_ids=tuple(str(i) for i in range(n_problems)),
        answers=answers,
        correct=answers == 0,
        valid=valid,
        cost_usd=tokens * 2e-7,
        prompt_tokens=np.full(shape, 120),
        completion_tokens=tokens,
        latency_s=tokens * 0.01,
        answer_correct=(),  # verdicts come from the per-sample checker results
        final_correct=None,
    )


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    pool = synthetic_pool(args.problems, args.samples)
    P, N = pool.n_problems, pool.max_n
    n, c = metrics.pool_counts(pool)
    all_ks = np.arange(1, N + 1)
    grid = metrics.default_ks(N)
    draws = metrics.auto_draws(P)

    t_pass, passes = best_of(lambda: metrics.pass_at_k(n, c, all_ks), args.repeat)
    t_maj, votes = best_of(
        lambda: metrics.majority_at_k(pool.answers, pool.correct, grid, valid=pool.valid),
        args.repeat,
    )
    table = np.concatenate([passes, votes], axis=1)
    t_boot, _ = best_of(lambda: metrics.bootstrap_ci(table, n_boot=1000), args.repeat)
    scores = np.random.default_rng(1).random((P, N))
    t_bon, _ = best_of(lambda: metrics.best_of_n_at_k(scores, pool.correct, grid), args.repeat)
    t_sum, _ = best_of(lambda: metrics.summarize(pool), args.repeat)

    total = t_pass + t_maj + t_boot
    print(f"pool: {P:,} problems x {N:,} samples; {os.cpu_count()} CPUs; numpy {np.__version__}")
    print(f"pass@k, all {N} ks            {t_pass:7.3f} s")
    print(f"majority@k, {grid.size} ks, {draws} draws   {t_maj:7.3f} s")
    print(f"bootstrap, {table.shape[1]} columns x 1000  {t_boot:7.3f} s")
    verdict = "meets" if total < 2.0 else "MISSES"
    print(f"total                          {total:7.3f} s   ({verdict} the 2 s target)")
    print(f"best-of-n@k, {grid.size} ks (exact)     {t_bon:7.3f} s")
    print(f"summarize() end to end         {t_sum:7.3f} s")


if __name__ == "__main__":
    main()
