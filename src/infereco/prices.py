"""Turning one request's usage into money, as the provider bills it.

Every request is priced from its own usage (`TokenUsage`: prompt with its cache reads and writes,
completion with its reasoning tokens), never from a per-token average:
- a hosted model known to `genai-prices` is priced by its `calc_price` at the request's date, which
  applies tiers (a request above 200k input tokens pays the higher rate on all its tokens), cache
  reads, cache writes and any separately priced reasoning tokens;
- a price file or flags say the same things (`Price`: input, output, cached input, cache write and
  reasoning prices, and `[[...tiers]]` above an input-token threshold, the same cliff rule);
- a local model bills time. The embedded model is priced by *idealized runtime*: a one-time profile
  of the model on this machine (`runtime.py`: prefill and decode seconds per token at each batch
  size) turns a request's tokens into seconds, times `usd_per_hour`, so the same samples cost the
  same on a busy or an idle machine. Other hour-priced endpoints (`--usd-per-hour` on a server
  infereco does not run) are charged their share of wall time, as measured by the Runner.

Each stored request records the price's `source` and `version` (`genai-prices 0.2.3`, or a hash of
the price file's table), so `infereco reprice` can say what changed.

Default for the embedded model: $0.10 per hour, roughly the on-demand price of a 2-vCPU cloud VM
like the one infereco's benchmarks run on. Override with `--usd-per-hour` or a price file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from infereco.errors import UserError
from infereco.tomlfile import line_of, read_toml
from infereco.usage import TokenUsage

DEFAULT_LOCAL_USD_PER_HOUR = 0.10

_MONEY = dict(ge=0, allow_inf_nan=False, strict=True)  # strict: `true` or "1" is no price


class Tier(BaseModel):
    """Prices that apply to the whole request once its input tokens pass `above_input_tokens`.

    Fields left out keep the base price. Tiers are a cliff, as providers bill them: a request of
    200,001 input tokens pays the tier's price on every token, not only on the ones above.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    above_input_tokens: int = Field(ge=0, strict=True)
    input_per_mtok: float | None = Field(None, **_MONEY)
    output_per_mtok: float | None = Field(None, **_MONEY)
    cached_input_per_mtok: float | None = Field(None, **_MONEY)
    cache_write_per_mtok: float | None = Field(None, **_MONEY)
    reasoning_per_mtok: float | None = Field(None, **_MONEY)


class RuntimeProfile(BaseModel):
    """Seconds of machine time per token of one model on one machine (see `infereco.runtime`).

    `decode_s_per_token` maps a batch size (sequences decoded together) to seconds per generated
    token at that size: one decode step of a batch of B takes B × that. Batch sizes between the
    measured ones are interpolated; outside, the nearest is used.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefill_s_per_token: float = Field(ge=0, allow_inf_nan=False)
    decode_s_per_token: dict[int, float]
    machine: str = ""
    measured_at: str = ""

    def decode_at(self, batch: int) -> float:
        points = sorted((int(b), float(s)) for b, s in self.decode_s_per_token.items())
        if not points:
            return 0.0
        if batch <= points[0][0]:
            return points[0][1]
        for (b0, s0), (b1, s1) in zip(points, points[1:]):
            if batch <= b1:
                return s0 + (s1 - s0) * (batch - b0) / (b1 - b0)
        return points[-1][1]

    def seconds(self, prompt_tokens: int, completion_tokens: int, batch: int) -> float:
        """Idealized seconds of a request: its prompt prefilled once, its samples decoded `batch` at a time."""
        return prompt_tokens * self.prefill_s_per_token + completion_tokens * self.decode_at(max(1, batch))

    def key(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:10]


class GenaiRef(BaseModel):
    """A model in the `genai-prices` data: priced per request by its `calc_price`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    provider: str | None = None


@dataclass(frozen=True)
class Charge:
    """What one request costs, in parts: tokens in, tokens out, machine time."""

    input_usd: float = 0.0
    output_usd: float = 0.0
    machine_usd: float = 0.0
    #: idealized seconds (runtime-priced local models; 0 otherwise)
    compute_s: float = 0.0

    @property
    def usd(self) -> float:
        return self.input_usd + self.output_usd + self.machine_usd

    def split(self, completion_tokens: list[int], prompt_tokens: list[int] | None = None) -> list[float]:
        """The request's cost shared over its samples: input by each sample's share of the prompt
        (billed once per request), output by its completion tokens, machine time by its completion
        tokens (at least one each). Sums to `usd`."""
        n = len(completion_tokens)
        if n == 0:
            return []
        shares = [0.0] * n
        for usd, weights in ((self.input_usd, prompt_tokens or [1] * n), (self.output_usd, completion_tokens),
                             (self.machine_usd, [max(c, 1) for c in completion_tokens])):  # fmt: skip
            if not usd:
                continue
            total = sum(weights)
            for i, w in enumerate(weights):
                shares[i] += usd * w / total if total > 0 else usd / n
        return shares


class Price(BaseModel):
    """Prices of one model. Token prices are USD per 1M tokens; `usd_per_hour` is for machine time.

    With `genai` set, token prices come from `genai-prices` for each request (the `*_per_mtok`
    fields then only show its base tier). With `clock="runtime"`, machine time is the idealized
    runtime of `runtime` (filled in by the Runner from the backend's profile), else wall time.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # finite: an infinite or NaN price would make every cost, budget check and frontier meaningless
    input_per_mtok: float = Field(0.0, **_MONEY)
    output_per_mtok: float = Field(0.0, **_MONEY)
    cached_input_per_mtok: float | None = Field(None, **_MONEY)
    cache_write_per_mtok: float | None = Field(None, **_MONEY)
    reasoning_per_mtok: float | None = Field(None, **_MONEY)
    tiers: list[Tier] = Field(default_factory=list)
    usd_per_hour: float = Field(0.0, **_MONEY)
    source: str = Field("flags", strict=True)
    #: the price data's version: genai-prices' package version, or a hash of a price table
    version: str = Field("", strict=True)
    genai: GenaiRef | None = None
    clock: Literal["wall", "runtime"] = "wall"
    runtime: RuntimeProfile | None = None

    # -- pricing ----------------------------------------------------------------------------
    def charge(
        self, usage: TokenUsage, *, busy_s: float = 0.0, batch: int = 1, when: datetime | None = None
    ) -> Charge:
        """What one request with this usage costs. `batch` is how many sequences it decoded together
        (its `n`), `busy_s` its share of wall time, `when` its date (genai-prices' price at that date)."""
        if self.genai is not None:
            input_usd, output_usd = genai_charge(self.genai, usage, when)
        else:
            input_usd, output_usd = self._table_charge(usage)
        compute_s, seconds = 0.0, busy_s
        if self.clock == "runtime" and self.runtime is not None:
            compute_s = seconds = self.runtime.seconds(usage.prompt, usage.completion, batch)
        return Charge(input_usd, output_usd, seconds * self.usd_per_hour / 3600.0, compute_s)

    def worst_charge(self, prompt_tokens: int, completion_tokens: int, *, batch: int = 1, busy_s: float = 0.0) -> float:
        """The most a request of at most these tokens can cost: every prompt token at the dearer of
        the input and cache-write prices, every completion token at the dearer of output and reasoning."""
        variants = [TokenUsage(prompt_tokens, 0, 0, completion_tokens)]
        if self._may_cost_more("cache_write_per_mtok", "input_per_mtok"):
            variants.append(TokenUsage(prompt_tokens, 0, prompt_tokens, completion_tokens))
        if self._may_cost_more("reasoning_per_mtok", "output_per_mtok"):
            variants += [TokenUsage(u.prompt, 0, u.cache_write, u.completion, u.completion) for u in list(variants)]
        return max(self.charge(u, busy_s=busy_s, batch=batch).usd for u in variants)

    def _may_cost_more(self, field: str, than: str) -> bool:
        tables = [self, *self.tiers]
        return any(getattr(t, field) is not None and getattr(t, field) > (getattr(t, than) or 0) for t in tables)

    def cost(self, prompt_tokens: int, cached_prompt_tokens: int, completion_tokens: int, busy_s: float) -> float:
        """USD for this usage (a shorthand of `charge` for one request of one sample)."""
        usage = TokenUsage(prompt_tokens, min(cached_prompt_tokens, prompt_tokens), 0, completion_tokens)
        return self.charge(usage, busy_s=busy_s).usd

    def _table_charge(self, usage: TokenUsage) -> tuple[float, float]:
        rates = self._rates(usage.prompt)
        inp, out = rates["input_per_mtok"], rates["output_per_mtok"]
        cached = inp if rates["cached_input_per_mtok"] is None else rates["cached_input_per_mtok"]
        write = inp if rates["cache_write_per_mtok"] is None else rates["cache_write_per_mtok"]
        reasoning = out if rates["reasoning_per_mtok"] is None else rates["reasoning_per_mtok"]
        reads = min(usage.cached, usage.prompt)
        writes = min(usage.cache_write, usage.prompt - reads)
        input_usd = ((usage.prompt - reads - writes) * inp + reads * cached + writes * write) / 1e6
        thinking = min(usage.reasoning, usage.completion)
        output_usd = ((usage.completion - thinking) * out + thinking * reasoning) / 1e6
        return input_usd, output_usd

    def _rates(self, input_tokens: int) -> dict[str, Any]:
        fields = ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "cache_write_per_mtok", "reasoning_per_mtok")
        rates = {f: getattr(self, f) for f in fields}
        for tier in sorted(self.tiers, key=lambda t: t.above_input_tokens):
            if input_tokens > tier.above_input_tokens:
                rates.update({f: getattr(tier, f) for f in fields if getattr(tier, f) is not None})
        return rates

    # -- identity ---------------------------------------------------------------------------
    @property
    def wall_priced(self) -> bool:
        """Whether machine time is charged by the wall clock (no runtime profile to price it by)."""
        return self.usd_per_hour > 0 and (self.clock == "wall" or self.runtime is None)

    def data_version(self) -> str:
        """What a stored request records as its price's version."""
        if self.version:
            return self.version
        table = self.model_dump(exclude={"source", "version", "runtime"})
        return "table " + hashlib.sha256(json.dumps(table, sort_keys=True).encode()).hexdigest()[:10]

    def describe(self) -> dict[str, Any]:
        return self.model_dump(exclude_defaults=False)


def load_price_file(path: str | Path, model: str) -> Price:
    """Read `[models."NAME"]` tables (or a `[default]` table) from a TOML price file.

    A table may hold `[[models."NAME".tiers]]` with `above_input_tokens` and the prices that apply
    above it. Every problem names the file and the field: a price file is input like any other.
    """
    path = Path(path)
    text, data = read_toml(path, "--prices", "a TOML price file")
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise UserError(f"{path}: [models] must be a table of model names")
    table_name = f'models."{model}"'
    table = models.get(model)
    if table is None:
        table, table_name = data.get("default"), "default"
    if table is None:
        known = ", ".join(sorted(models)) or "none"
        raise UserError(f"{path}: no price for model {model!r} (models priced: {known}; or add a [default] table)")
    if not isinstance(table, dict):
        raise UserError(f"{path}: [{table_name}] must be a table of prices")
    for forbidden in ("genai", "clock", "runtime", "version"):
        if forbidden in table:
            line = line_of(text, forbidden) or 1
            raise UserError(f"{path}:{line}: [{table_name}] field {forbidden!r}: not a price file field")
    digest = hashlib.sha256(json.dumps(table, sort_keys=True, default=str).encode()).hexdigest()[:10]
    fields = {"source": f"{path}:{table_name}", **table, "version": f"{path.name} {digest}"}
    try:
        return Price(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        key = next((str(p) for p in reversed(err["loc"]) if isinstance(p, str)), "")
        line = line_of(text, key) or line_of(text, str(err["loc"][0]) if err["loc"] else "") or 1
        raise UserError(f"{path}:{line}: [{table_name}] field {field!r}: {err['msg']}") from None
    except TypeError:
        raise UserError(f"{path}: [{table_name}] must be a table of prices") from None


# -- genai-prices ------------------------------------------------------------------------------
def genai_version() -> str:
    """`genai-prices X.Y.Z`, plus the data's date when it was updated at run time."""
    import genai_prices
    from genai_prices import data_snapshot

    snap = data_snapshot.get_snapshot()
    version = f"genai-prices {getattr(genai_prices, '__version__', '?')}"
    if getattr(snap, "from_auto_update", False):
        version += f" (data of {snap.timestamp:%Y-%m-%d})"
    return version


@lru_cache(maxsize=256)
def _genai_model(model: str, provider: str | None) -> tuple[Any, Any]:
    """The genai-prices (provider, model) of a reference; looked up once (the match is not free)."""
    from genai_prices import data_snapshot

    return data_snapshot.get_snapshot().find_provider_model(model, None, provider, None)


def genai_charge(ref: GenaiRef, usage: TokenUsage, when: datetime | None = None) -> tuple[float, float]:
    """(input USD, output USD) of one request by genai-prices' `calc_price` at its date."""
    from genai_prices import Usage

    provider, model = _genai_model(ref.model, ref.provider)
    calc = model.calc_price(
        Usage(**genai_usage(usage)), provider, genai_request_timestamp=when or datetime.now(tz=timezone.utc)
    )
    return float(calc.input_price), float(calc.output_price)


def genai_usage(usage: TokenUsage) -> dict[str, int]:
    """`TokenUsage` as genai-prices' `Usage` fields (same convention: input includes cache reads and writes)."""
    reads = min(usage.cached, usage.prompt)
    out = {"input_tokens": usage.prompt, "output_tokens": usage.completion}
    if reads:
        out["cache_read_tokens"] = reads
    writes = min(usage.cache_write, usage.prompt - reads)
    if writes:
        out["cache_write_tokens"] = writes
    if usage.reasoning:
        out["output_reasoning_tokens"] = min(usage.reasoning, usage.completion)
    return out


def genai_price(model: str, provider: str | None = None) -> Price | None:
    """A hosted model priced per request by `genai-prices`, or None if its data has no such model.

    The `*_per_mtok` fields show today's base tier (for tables and reports); what a request costs
    comes from `calc_price` on its own usage at its own date.
    """
    try:
        import genai_prices  # noqa: F401
    except ImportError:  # optional at run time: flags and price files still work
        return None
    try:
        found_provider, found = _genai_model(model, provider)
    except (LookupError, ValueError):
        return None
    table = genai_table(found.get_prices(datetime.now(tz=timezone.utc)))
    version = genai_version()
    return Price(
        **table, source=f"{version}: {found_provider.id}/{found.id}", version=version,
        genai=GenaiRef(model=model, provider=provider or found_provider.id),
    )  # fmt: skip


def genai_table(model_price: Any) -> dict[str, Any]:
    """A genai-prices `ModelPrice` as `Price` fields (tiers included): what flags override."""
    keys = {"input_per_mtok": "input_mtok", "output_per_mtok": "output_mtok", "cached_input_per_mtok": "cache_read_mtok",
            "cache_write_per_mtok": "cache_write_mtok", "reasoning_per_mtok": "output_reasoning_mtok"}  # fmt: skip
    base: dict[str, Any] = {}
    tiers: dict[int, dict[str, float]] = {}
    for ours, theirs in keys.items():
        value = getattr(model_price, theirs, None)
        if value is None:
            continue
        if hasattr(value, "tiers"):
            base[ours] = float(value.base)
            for tier in value.tiers:
                tiers.setdefault(int(tier.start), {})[ours] = float(tier.price)
        else:
            base[ours] = float(value)
    base.setdefault("input_per_mtok", 0.0)
    base.setdefault("output_per_mtok", 0.0)
    base["tiers"] = [Tier(above_input_tokens=start, **prices) for start, prices in sorted(tiers.items())]
    return base
