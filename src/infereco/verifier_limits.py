"""What an imperfect verifier can and cannot buy ("Inference Scaling fLaws").

Resample-until-pass: draw a sample, submit it if the verifier passes it, else draw again, at most N
times, and abstain if nothing passed. For one problem let p = P(a sample is correct and passes) and
q = P(a sample is wrong and passes). The first passing sample is correct with probability p/(p+q)
whatever N is, so more compute cannot push accuracy past the ceiling p/(p+q): only a better verifier
(smaller q) can. Within N tries something passes with probability 1 − (1 − p − q)^N, so

    P(correct) = p/(p+q) · (1 − (1 − p − q)^N),  P(wrong) = q/(p+q) · (1 − (1 − p − q)^N).

With a penalty λ for a wrong answer relative to abstaining (utility 1 for right, −λ for wrong,
0 for abstaining) the expected utility is (p − λq)/(p+q) · (1 − (1 − p − q)^N) per problem; averaged
over problems with different p and q it can peak at a finite N, beyond which extra samples only
add wrong answers that slipped through. These are the estimators and the optimal-N search.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class VerifierRates:
    """Per-problem rates estimated from samples with oracle labels and verifier verdicts."""

    p: np.ndarray  # [P] P(correct and passes)
    q: np.ndarray  # [P] P(wrong and passes)
    tpr: float  # P(passes | correct), pooled over samples
    fpr: float  # P(passes | wrong), pooled over samples

    @property
    def ceiling(self) -> float:
        """Accuracy of resample-until-pass as N → ∞: mean over problems of p/(p+q) (0 where nothing passes)."""
        total = self.p + self.q
        return float(np.where(total > 0, self.p / np.where(total > 0, total, 1), 0.0).mean())


def estimate_rates(passes: ArrayLike, correct: ArrayLike, valid: ArrayLike | None = None) -> VerifierRates:
    """Estimate p, q per problem (and pooled TPR/FPR) from [P, N] verifier verdicts and oracle labels."""
    v = np.asarray(passes, dtype=bool)
    c = np.asarray(correct, dtype=bool)
    real = np.ones_like(v) if valid is None else np.asarray(valid, dtype=bool)
    n = np.maximum(real.sum(axis=1), 1)
    p = (v & c & real).sum(axis=1) / n
    q = (v & ~c & real).sum(axis=1) / n
    right, wrong = (c & real).sum(), (~c & real).sum()
    tpr = float((v & c & real).sum() / right) if right else float("nan")
    fpr = float((v & ~c & real).sum() / wrong) if wrong else float("nan")
    return VerifierRates(p=p, q=q, tpr=tpr, fpr=fpr)


def resample_until_pass(rates: VerifierRates, ns: ArrayLike, penalty: float = 0.0) -> dict[str, np.ndarray]:
    """Accuracy, wrong-answer rate, abstention rate and utility (1 right, −penalty wrong) for each N."""
    ns_arr = np.asarray(ns, dtype=float)
    p, q = rates.p[:, None], rates.q[:, None]
    hit = 1.0 - (1.0 - p - q) ** ns_arr[None, :]
    total = p + q
    share_right = np.where(total > 0, p / np.where(total > 0, total, 1), 0.0)
    right = share_right * hit
    wrong = np.where(total > 0, 1.0 - share_right, 0.0) * hit
    return {
        "n": ns_arr,
        "accuracy": right.mean(axis=0),
        "wrong": wrong.mean(axis=0),
        "abstain": 1.0 - hit.mean(axis=0),
        "utility": (right - penalty * wrong).mean(axis=0),
    }


def optimal_n(rates: VerifierRates, penalty: float, max_n: int = 10_000, tolerance: float = 1e-3) -> tuple[int, float]:
    """The smallest N in 0..max_n whose expected utility is within `tolerance` of the best, and its utility.

    The tolerance keeps the answer useful where utility creeps up forever by ever smaller steps.

    N = 0 means always abstaining (utility 0): the right choice when every answer that gets past the
    verifier is more likely to cost than to earn.
    """
    if penalty < 0:
        raise ValueError(f"penalty must be >= 0, got {penalty}")
    ns = np.arange(0, max_n + 1)
    utility = resample_until_pass(rates, ns, penalty)["utility"]
    best = int(np.argmax(utility >= utility.max() - tolerance))
    return int(ns[best]), float(utility[best])
