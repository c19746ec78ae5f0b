"""`SamplePool`: every stored sample of one run as dense arrays, the input of all analysis.

Sampling happens once; every curve for every k is computed from this pool by unbiased estimators.
The Store builds a pool (`Store.load_pool`), Metrics and Report only read it: neither touches SQLite
nor a model. Arrays are shaped [problems, samples]; problems with fewer samples than the widest one
are padded and masked out by `valid`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SamplePool:
    """The samples of one run (one model + strategy + sampling config).

    Attributes:
        label: human name for plots and tables, e.g. "qwen2.5-0.5b / majority".
        run_id: the store's id of the run.
        problem_ids: [P] problem ids, in a stable order.
        answers: [P, N] int answer-class ids per problem (equal ids = equal canonical answers);
            -1 where no answer could be extracted or the slot is padding.
        correct: [P, N] bool, the checker's verdict for each sample (False for padding).
        valid: [P, N] bool, True where a real sample exists.
        cost_usd: [P, N] float, the money each sample cost.
        prompt_tokens, completion_tokens: [P, N] int token counts per sample.
        latency_s: [P, N] float seconds each sample's request took.
        answer_correct: per problem, a dict answer-class id -> bool (is that answer right?); lets a
            vote be scored without re-running the checker.
        final_correct: [P] bool or None, whether the strategy's own final answer was right.
        config: the run's configuration (JSON-able), for reports.
    """

    label: str
    run_id: str
    problem_ids: tuple[str, ...]
    answers: np.ndarray
    correct: np.ndarray
    valid: np.ndarray
    cost_usd: np.ndarray
    prompt_tokens: np.ndarray
    completion_tokens: np.ndarray
    latency_s: np.ndarray
    answer_correct: tuple[dict[int, bool], ...]
    final_correct: np.ndarray | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def n_problems(self) -> int:
        return len(self.problem_ids)

    @property
    def n_per_problem(self) -> np.ndarray:
        """[P] number of real samples for each problem."""
        return self.valid.sum(axis=1)

    @property
    def max_n(self) -> int:
        """The number of samples every problem has at least (the largest k every curve reaches)."""
        return int(self.n_per_problem.min()) if self.n_problems else 0

    def restrict(self, problem_ids: object) -> SamplePool:
        """The same pool on a subset of its problems (in this pool's order): to compare runs on
        the problems they have in common."""
        keep = set(problem_ids)  # type: ignore[call-overload]
        idx = [i for i, pid in enumerate(self.problem_ids) if pid in keep]
        rows = np.asarray(idx, dtype=np.int64)
        return replace(
            self,
            problem_ids=tuple(self.problem_ids[i] for i in idx),
            answers=self.answers[rows], correct=self.correct[rows], valid=self.valid[rows],
            cost_usd=self.cost_usd[rows], prompt_tokens=self.prompt_tokens[rows],
            completion_tokens=self.completion_tokens[rows], latency_s=self.latency_s[rows],
            answer_correct=tuple(self.answer_correct[i] for i in idx) if len(self.answer_correct) == self.n_problems
            else self.answer_correct,
            final_correct=None if self.final_correct is None else np.asarray(self.final_correct)[rows],
        )  # fmt: skip
