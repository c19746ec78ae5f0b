"""Whether a fitted curve deserves to be shown: it must predict points it was not fitted to.

An in-sample R² says how well a curve bends through the points that made it; it says nothing
about the next point. A report shows a fit only when it predicts held-out points, and otherwise
says "no reliable fit" and why, in words a reader can check:
- the coverage power law (metrics.fit_coverage_power_law) is fitted to the small-k half of the
  pass@k curve and must land inside the bootstrap CI (or within 0.03) of every larger-k point;
- the idealized-runtime fit (efficiency.fit_runtime) must reach a held-out R² of at least 0.8 on
  its held-out requests (it already holds out 25%; this is the bar it must clear).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["RUNTIME_R2_MIN", "coverage_fit_verdict", "runtime_fit_verdict"]

#: a runtime fit is shown when its held-out R² reaches this
RUNTIME_R2_MIN = 0.8
#: the slack, in accuracy, a held-out coverage point may miss its CI by
COVERAGE_SLACK = 0.03


def coverage_fit_verdict(ks: ArrayLike, mean: ArrayLike, lo: ArrayLike, hi: ArrayLike) -> dict[str, Any]:
    """Fit the coverage law on the ks up to half the largest, test it on the rest.

    Returns {"reliable": bool, "why": str, "a", "b" (the fit on the first half, NaN if none),
    "fit_ks", "held_out_ks", "max_error"}.
    """
    from infereco.metrics import coverage_power_law, fit_coverage_power_law

    k = np.asarray(ks, dtype=np.float64)
    m, l, h = (np.asarray(v, dtype=np.float64) for v in (mean, lo, hi))
    out: dict[str, Any] = {"reliable": False, "a": math.nan, "b": math.nan, "fit_ks": [], "held_out_ks": [],
                           "max_error": math.nan}  # fmt: skip
    if k.size == 0:
        return {**out, "why": "no samples"}
    cut = k.max() / 2
    first, rest = k <= cut, k > cut
    usable = first & np.isfinite(m) & (m > 0) & (m < 1)
    if usable.sum() < 2 or rest.sum() < 1:
        return {**out, "why": f"too few points to fit and test ({int(usable.sum())} usable below k={cut:g}, "
                              f"{int(rest.sum())} above)"}  # fmt: skip
    a, b, _ = fit_coverage_power_law(k[first], m[first])
    out.update(a=a, b=b, fit_ks=k[first].tolist(), held_out_ks=k[rest].tolist())
    if math.isnan(a):
        return {**out, "why": "not enough points strictly between 0 and 1 to fit"}
    predicted = coverage_power_law(k[rest], a, b)
    miss = np.maximum(l[rest] - predicted, predicted - h[rest])  # > 0: outside the CI
    error = np.abs(predicted - m[rest])
    out["max_error"] = float(error.max())
    if np.all(miss <= COVERAGE_SLACK):
        return {**out, "reliable": True, "why": f"predicts held-out k={', '.join(f'{x:g}' for x in k[rest])} "
                                                f"within their CIs (max error {error.max():.3f})"}  # fmt: skip
    worst = int(np.argmax(miss))
    return {**out, "why": f"fitted on k <= {cut:g}, it predicts {predicted[worst]:.2f} at k={k[rest][worst]:g} "
                          f"where {m[rest][worst]:.2f} [{l[rest][worst]:.2f}, {h[rest][worst]:.2f}] was measured"}


def runtime_fit_verdict(fit: Mapping[str, Any] | None) -> tuple[bool, str]:
    """(show it?, why) for a stored runtime fit (`efficiency.fit_runtime` as a dict)."""
    if not fit:
        return False, "fewer than 4 requests: nothing to hold out"
    r2 = fit.get("r2_holdout")
    r2 = math.nan if r2 is None or isinstance(r2, str) else float(r2)
    held = fit.get("n_holdout", "?")
    if math.isnan(r2):
        return False, f"held-out requests ({held}) too few or all alike to judge it"
    if r2 < RUNTIME_R2_MIN:
        worse = " (worse than predicting their mean)" if r2 < 0 else ""
        return False, f"held-out R² {r2:,.2f} on {held} requests{worse}"
    return True, f"held-out R² {r2:.2f} on {held} requests"
