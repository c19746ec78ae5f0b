"""Efficiency figures from stored requests: latency, a FLOPs estimate and an idealized-runtime fit.

Idealized runtime (after "Cheaply Evaluating Inference Efficiency Metrics for Autoregressive
Transformer APIs"): fit runtime ≈ a + b·prompt_tokens + c·output_tokens per model by least squares,
so any logged request can be priced in seconds from its token counts alone; the fit is judged on
held-out requests (R² on a seeded 25% split), not on the ones it was fitted to. FLOPs are the usual
forward-pass estimate, 2 × parameters × tokens.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class RuntimeFit:
    """runtime_s ≈ a + b·prompt_tokens + c·output_tokens, with R² on fit and held-out requests."""

    a: float
    b: float
    c: float
    r2_fit: float
    r2_holdout: float
    n_fit: int
    n_holdout: int

    def predict(self, prompt_tokens: ArrayLike, output_tokens: ArrayLike) -> np.ndarray:
        return self.a + self.b * np.asarray(prompt_tokens, float) + self.c * np.asarray(output_tokens, float)


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    if len(y) < 2:
        return math.nan
    total = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - pred) ** 2).sum()) / total if total > 0 else math.nan


def fit_runtime(
    prompt_tokens: ArrayLike, output_tokens: ArrayLike, runtime_s: ArrayLike, *, holdout: float = 0.25, seed: int = 0
) -> RuntimeFit | None:
    """Least-squares idealized-runtime fit; None with fewer than 4 requests (nothing to hold out)."""
    x_p, x_o, y = (np.asarray(v, dtype=float) for v in (prompt_tokens, output_tokens, runtime_s))
    n = len(y)
    if n < 4:
        return None
    order = np.random.default_rng(seed).permutation(n)
    n_hold = max(1, int(round(n * holdout)))
    hold, fit = order[:n_hold], order[n_hold:]
    design = np.column_stack([np.ones(n), x_p, x_o])
    coef, *_ = np.linalg.lstsq(design[fit], y[fit], rcond=None)
    pred = design @ coef
    return RuntimeFit(
        a=float(coef[0]), b=float(coef[1]), c=float(coef[2]),
        r2_fit=_r2(y[fit], pred[fit]), r2_holdout=_r2(y[hold], pred[hold]), n_fit=len(fit), n_holdout=len(hold),
    )  # fmt: skip


def flops(params: float, tokens: ArrayLike) -> np.ndarray:
    """Forward-pass FLOPs ≈ 2 × parameters × tokens (prompt and output tokens alike)."""
    return 2.0 * float(params) * np.asarray(tokens, dtype=float)


def efficiency_summary(
    prompt_tokens: ArrayLike,
    output_tokens: ArrayLike,
    latency_s: ArrayLike,
    busy_s: ArrayLike | None = None,
    *,
    params: float | None = None,
) -> dict[str, Any]:
    """Latency statistics, total FLOPs (when the parameter count is known) and the runtime fit.

    The fit's target is the machine time charged to each request (`busy_s`, shared among requests in
    flight) when known, since latency also counts waiting behind other requests.
    """
    p, o, lat = (np.asarray(v, dtype=float) for v in (prompt_tokens, output_tokens, latency_s))
    fit = fit_runtime(p, o, lat if busy_s is None else np.asarray(busy_s, dtype=float))
    return {
        "requests": int(len(lat)),
        "latency_s": {
            "mean": float(lat.mean()) if len(lat) else math.nan,
            "median": float(np.median(lat)) if len(lat) else math.nan,
            "p90": float(np.quantile(lat, 0.9)) if len(lat) else math.nan,
        },
        "params": params,
        "flops": float(flops(params, p.sum() + o.sum())) if params else None,
        "runtime_fit": asdict(fit) if fit is not None else None,
    }
