"""Synthetic `SamplePool`s for metric and report tests: no store, no model.

`pool_from_answers` builds a pool from explicit per-problem answer lists (exact control, ragged n);
`make_pool` draws a realistic-looking pool from known per-problem probabilities, so an estimate can
be compared with the truth it should recover.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from infereco.pool import SamplePool


def pool_from_answers(
    answers: Sequence[Sequence[int]],
    correct_ids: Sequence[set[int]] | set[int] = frozenset({0}),
    *,
    label: str = "synthetic",
    cost_per_sample: float = 0.001,
    final_correct: Sequence[bool] | None = None,
) -> SamplePool:
    """One problem per answer list (ids >= 0, -1 = no answer); `correct_ids` are the right ids.

    Lists may differ in length: shorter rows are padded with -1 and masked out by `valid`.
    """
    P = len(answers)
    width = max((len(a) for a in answers), default=0)
    shared = isinstance(correct_ids, (set, frozenset))
    per_problem = [set(correct_ids)] * P if shared else correct_ids
    ans = np.full((P, width), -1, dtype=np.int64)
    valid = np.zeros((P, width), dtype=bool)
    for p, row in enumerate(answers):
        ans[p, : len(row)] = row
        valid[p, : len(row)] = True
    right = np.array([[a in per_problem[p] for a in row] for p, row in enumerate(ans)], dtype=bool)
    right = right.reshape(P, width) & valid & (ans >= 0)
    verdicts = tuple(
        {int(a): (int(a) in per_problem[p]) for a in set(row) if a >= 0}
        for p, row in enumerate(answers)
    )
    idx = np.arange(width, dtype=np.float64)[None, :]
    return SamplePool(
        label=label,
        run_id=f"run-{label}",
        problem_ids=tuple(f"p{p}" for p in range(P)),
        answers=ans,
        correct=right,
        valid=valid,
        cost_usd=np.where(valid, cost_per_sample, 0.0),
        prompt_tokens=np.where(valid, 50, 0),
        completion_tokens=np.where(valid, 100 + idx.astype(np.int64) % 7, 0),
        latency_s=np.where(valid, 0.5 + 0.01 * idx, 0.0),
        answer_correct=verdicts,
        final_correct=None if final_correct is None else np.asarray(final_correct, dtype=bool),
        config={"synthetic": True},
    )


def make_pool(
    n_problems: int = 50,
    n_samples: int | Sequence[int] = 16,
    p_correct: float | Sequence[float] | None = None,
    *,
    n_wrong: int = 3,
    p_none: float = 0.05,
    seed: int = 0,
    label: str = "synthetic",
    cost_per_sample: float = 0.001,
    with_final: bool = False,
) -> SamplePool:
    """A pool whose problem p answers correctly (id 0) with probability p_correct[p].

    Other samples give no answer with probability p_none or one of `n_wrong` wrong ids (1..n_wrong)
    with decreasing (Zipf-like) weights. p_correct defaults to uniform draws in [0, 1].
    `with_final` adds a final verdict equal to the problem's sample plurality being correct.
    """
    rng = np.random.default_rng(seed)
    probs = (
        rng.uniform(0, 1, n_problems)
        if p_correct is None
        else np.broadcast_to(np.asarray(p_correct, dtype=np.float64), (n_problems,))
    )
    sizes = np.broadcast_to(np.asarray(n_samples), (n_problems,))
    wrong_w = 1.0 / np.arange(1, n_wrong + 1)
    rows: list[list[int]] = []
    for p in range(n_problems):
        u = rng.uniform(size=int(sizes[p]))
        wrong = rng.choice(np.arange(1, n_wrong + 1), size=u.size, p=wrong_w / wrong_w.sum())
        none = rng.uniform(size=u.size) < p_none
        rows.append(np.where(u < probs[p], 0, np.where(none, -1, wrong)).tolist())
    final = None
    if with_final:
        final = [bool(row) and max(set(row), key=row.count) == 0 for row in rows]
    return pool_from_answers(
        rows, {0}, label=label, cost_per_sample=cost_per_sample, final_correct=final
    )
