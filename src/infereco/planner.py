"""Training + inference compute planner ("Beyond Chinchilla-Optimal", Sardana et al.).

The loss of a model with N parameters trained on D tokens is modelled as

    L(N, D) = E + A / N**alpha + B / D**beta

(Chinchilla, Hoffmann et al. 2022, approach 3, are the default constants). Given a target loss
`target_loss` and the tokens the model will process over its lifetime `inference_tokens`, the planner
picks N and D_train that minimise

    total FLOPs = 6 * N * D_train  +  2 * N * D_inference      subject to  L(N, D_train) = target_loss.

Write c = target_loss - E, a = A/N**alpha and b = B/D**beta, so the constraint is a + b = c. Every
feasible (N, D) is one b in (0, c). Along the constraint, log(total FLOPs) is convex in log N, so the
optimum is the one root of the first-order condition

    D_inference = 3 * D_train * (alpha*a / (beta*b) - 1),

whose right side falls strictly as b grows on (0, b*]; b* = c*alpha/(alpha+beta) is the Chinchilla
optimum (D_inference = 0), where the closed form is N* = (A/(c - b*))**(1/alpha), D* = (B/b*)**(1/beta).
The root is found by bracketing and Brent's method on log b, in log space, so neither N nor D
overflows. As D_inference grows, b falls: N shrinks and D_train grows (the paper's finding).

Prices are optional USD per FLOP for training and for inference. With `minimize="usd"` the planner
minimises dollars instead of FLOPs, which is the FLOP problem with D_inference scaled by
price_inference / price_train.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from infereco.errors import UserError

#: Hoffmann et al. 2022 (Chinchilla), approach 3 fit.
CHINCHILLA_E = 1.69
CHINCHILLA_A = 406.4
CHINCHILLA_B = 410.7
CHINCHILLA_ALPHA = 0.34
CHINCHILLA_BETA = 0.28


@dataclass(frozen=True)
class ScalingLaw:
    """L(N, D) = E + A/N^alpha + B/D^beta."""

    E: float = CHINCHILLA_E
    A: float = CHINCHILLA_A
    B: float = CHINCHILLA_B
    alpha: float = CHINCHILLA_ALPHA
    beta: float = CHINCHILLA_BETA

    def __post_init__(self) -> None:
        for name, flag in (
            ("E", "--E"),
            ("A", "--A"),
            ("B", "--B"),
            ("alpha", "--alpha"),
            ("beta", "--beta"),
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise UserError(f"{flag} must be a finite number, got {value!r}")
            if name != "E" and value <= 0:
                raise UserError(f"{flag} must be > 0, got {value}")

    def loss(self, n_params: float, train_tokens: float) -> float:
        """The modelled loss of N parameters trained on D tokens."""
        return self.E + self.A / n_params**self.alpha + self.B / train_tokens**self.beta


@dataclass(frozen=True)
class PlanPoint:
    """One (N, D_train) choice and what it costs to train it and to serve `inference_tokens`."""

    n_params: float
    train_tokens: float
    tokens_per_param: float
    train_flops: float
    inference_flops: float
    total_flops: float
    loss: float
    #: USD (train + inference) when both prices are given, else None
    cost_usd: float | None = None


@dataclass(frozen=True)
class Plan:
    """The inference-aware optimum for `target_loss` and `inference_tokens`, with the Chinchilla point.

    `chinchilla` is the D_inference = 0 optimum, costed for serving the same `inference_tokens`.
    """

    target_loss: float
    inference_tokens: float
    n_params: float
    train_tokens: float
    tokens_per_param: float
    train_flops: float
    inference_flops: float
    total_flops: float
    cost_usd: float | None
    chinchilla: PlanPoint
    law: ScalingLaw
    minimize: str = "flops"
    usd_per_flop_train: float | None = None
    usd_per_flop_inference: float | None = None

    @property
    def optimal(self) -> PlanPoint:
        return PlanPoint(
            self.n_params, self.train_tokens, self.tokens_per_param, self.train_flops, self.inference_flops,
            self.total_flops, self.law.loss(self.n_params, self.train_tokens), self.cost_usd,
        )  # fmt: skip

    @property
    def flops_saving(self) -> float:
        """Share of the Chinchilla point's total FLOPs that the plan saves (0 when D_inference = 0)."""
        return 1.0 - self.total_flops / self.chinchilla.total_flops

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["flops_saving"] = self.flops_saving
        return d


def _check_nonneg(value: float | None, flag: str) -> None:
    if value is not None and (not math.isfinite(value) or value < 0):
        raise UserError(f"{flag} must be a finite number >= 0, got {value}")


def _point(
    law: ScalingLaw,
    log_n: float,
    log_d: float,
    inference_tokens: float,
    prices: tuple[float, float] | None,
) -> PlanPoint:
    n, d = math.exp(log_n), math.exp(log_d)
    if not (math.isfinite(n) and math.isfinite(d)):
        raise UserError(
            "--inference-tokens is so large that the optimal model size or data overflows a float"
        )
    train, inference = 6.0 * n * d, 2.0 * n * inference_tokens
    cost = None if prices is None else prices[0] * train + prices[1] * inference
    return PlanPoint(
        n, d, d / n, train, inference, train + inference, law.loss(n, d), cost
    )


def _optimal_b(law: ScalingLaw, c: float, effective_inference: float) -> float:
    """log b at the optimum: the root of the first-order condition (see the module docstring)."""
    log_b_star = math.log(c * law.alpha / (law.alpha + law.beta))
    if effective_inference == 0:
        return log_b_star
    log_inf = math.log(effective_inference)

    def h(
        t: float,
    ) -> (
        float
    ):  # log(3*D*(alpha*a/(beta*b) - 1)) - log(D_inf); strictly decreasing in t
        b = math.exp(t)
        q = law.alpha * (c - b) / (law.beta * b) - 1.0
        if q <= 0:
            return -math.inf
        return math.log(3.0) + (math.log(law.B) - t) / law.beta + math.log(q) - log_inf

    hi = log_b_star + math.log1p(-1e-12)
    if h(hi) >= 0:  # the root lies within 1e-12 (relative) of the Chinchilla point
        return hi
    step, lo = 1.0, hi - 1.0
    while h(lo) <= 0:
        step *= 2.0
        lo = hi - step
        if step > 1e4:
            raise UserError(
                f"--inference-tokens {effective_inference:g}: no optimum found (numerical range exceeded)"
            )
    from scipy.optimize import brentq

    return float(
        brentq(h, lo, hi, xtol=1e-15, rtol=4 * 2.220446049250313e-16, maxiter=500)
    )


def _solve(law: ScalingLaw, target_loss: float, inference_tokens: float, effective_inference: float,
           prices: tuple[float, float] | None) -> PlanPoint:  # fmt: skip
    c = target_loss - law.E
    log_b = _optimal_b(law, c, effective_inference)
    b = math.exp(log_b)
    a = c - b
    log_n = (math.log(law.A) - math.log(a)) / law.alpha
    log_d = (math.log(law.B) - log_b) / law.beta
    return _point(law, log_n, log_d, inference_tokens, prices)


def chinchilla_optimal(
    target_loss: float, law: ScalingLaw | None = None
) -> tuple[float, float]:
    """Closed-form (N, D) minimising N*D (training FLOPs) subject to L(N, D) = target_loss.

    Lagrange: alpha*A/N^alpha = beta*B/D^beta, so with c = target_loss - E,
    N = (A*(alpha+beta)/(beta*c))^(1/alpha) and D = (B*(alpha+beta)/(alpha*c))^(1/beta).
    """
    law = law or ScalingLaw()
    c = _reachable(law, target_loss)
    s = law.alpha + law.beta
    return (law.A * s / (law.beta * c)) ** (1 / law.alpha), (
        law.B * s / (law.alpha * c)
    ) ** (1 / law.beta)


def _reachable(law: ScalingLaw, target_loss: float) -> float:
    if not isinstance(target_loss, (int, float)) or not math.isfinite(target_loss):
        raise UserError(f"--target-loss must be a finite number, got {target_loss!r}")
    c = target_loss - law.E
    if c <= 0:
        raise UserError(
            f"--target-loss {target_loss:g} is unreachable: the scaling law's irreducible loss is E = {law.E:g}; "
            "ask for a loss above E"
        )
    return c


def plan(
    target_loss: float,
    inference_tokens: float = 0.0,
    *,
    E: float = CHINCHILLA_E,
    A: float = CHINCHILLA_A,
    B: float = CHINCHILLA_B,
    alpha: float = CHINCHILLA_ALPHA,
    beta: float = CHINCHILLA_BETA,
    usd_per_flop_train: float | None = None,
    usd_per_flop_inference: float | None = None,
    minimize: str = "flops",
) -> Plan:
    """The N and D_train minimising training + inference FLOPs (or USD) at loss `target_loss`.

    Example: `infereco.plan(2.0, 1e12)` (Chinchilla constants; 1T lifetime inference tokens).
    Mirrors `infereco plan --target-loss 2.0 --inference-tokens 1e12`.
    """
    law = ScalingLaw(E, A, B, alpha, beta)
    _reachable(law, target_loss)
    if (
        not isinstance(inference_tokens, (int, float))
        or not math.isfinite(inference_tokens)
        or inference_tokens < 0
    ):
        raise UserError(
            f"--inference-tokens must be a finite number >= 0, got {inference_tokens!r}"
        )
    _check_nonneg(usd_per_flop_train, "--usd-per-flop-train")
    _check_nonneg(usd_per_flop_inference, "--usd-per-flop-inference")
    if (usd_per_flop_train is None) != (usd_per_flop_inference is None):
        missing = (
            "--usd-per-flop-inference"
            if usd_per_flop_inference is None
            else "--usd-per-flop-train"
        )
        raise UserError(
            f"give both prices or neither: {missing} is missing (0 is allowed)"
        )
    prices = (
        None
        if usd_per_flop_train is None
        else (float(usd_per_flop_train), float(usd_per_flop_inference))
    )  # type: ignore[arg-type]
    mode = minimize.strip().lower()
    if mode not in ("flops", "usd"):
        raise UserError(f"--minimize must be flops or usd, got {minimize!r}")
    effective = float(inference_tokens)
    if mode == "usd":
        if prices is None:
            raise UserError(
                "--minimize usd needs --usd-per-flop-train and --usd-per-flop-inference"
            )
        if prices[0] <= 0:
            raise UserError("--minimize usd needs --usd-per-flop-train > 0")
        effective = inference_tokens * prices[1] / prices[0]
    best = _solve(law, target_loss, float(inference_tokens), effective, prices)
    chin = _solve(law, target_loss, float(inference_tokens), 0.0, prices)
    return Plan(
        target_loss=float(target_loss), inference_tokens=float(inference_tokens), n_params=best.n_params,
        train_tokens=best.train_tokens, tokens_per_param=best.tokens_per_param, train_flops=best.train_flops,
        inference_flops=best.inference_flops, total_flops=best.total_flops, cost_usd=best.cost_usd,
        chinchilla=chin, law=law, minimize=mode, usd_per_flop_train=usd_per_flop_train,
        usd_per_flop_inference=usd_per_flop_inference,
    )  # fmt: skip
