"""Turning usage into money: per-token prices for APIs, hardware-hours for local models.

A hosted API bills tokens: prompt (input), cached prompt (usually discounted) and completion
(output), each at a price per million tokens. A local model bills time: the machine costs the same
per hour whether it decodes one sequence or sixteen, so a sample's cost is its share of the wall
time the machine was busy, times the hourly price. Both can apply at once (e.g. a rented GPU
running a licensed model).

Default for the embedded model: $0.10 per hour, roughly the on-demand price of a 2-vCPU cloud VM
like the one infereco's benchmarks run on. Override with `--usd-per-hour` or a price file.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from infereco.errors import UserError
from infereco.tomlfile import line_of, read_toml

DEFAULT_LOCAL_USD_PER_HOUR = 0.10


class Price(BaseModel):
    """Prices of one model. Token prices are USD per 1M tokens; `usd_per_hour` is for machine time."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)  # strict: `true` or "1" is no price

    # finite: an infinite or NaN price would make every cost, budget check and frontier meaningless
    input_per_mtok: float = Field(0.0, ge=0, allow_inf_nan=False)
    output_per_mtok: float = Field(0.0, ge=0, allow_inf_nan=False)
    cached_input_per_mtok: float | None = Field(None, ge=0, allow_inf_nan=False)
    usd_per_hour: float = Field(0.0, ge=0, allow_inf_nan=False)
    source: str = "flags"

    def cost(self, prompt_tokens: int, cached_prompt_tokens: int, completion_tokens: int, busy_s: float) -> float:
        """USD for this usage. Cached prompt tokens are a subset of prompt tokens."""
        cached = min(cached_prompt_tokens, prompt_tokens)
        cached_price = self.input_per_mtok if self.cached_input_per_mtok is None else self.cached_input_per_mtok
        tokens = (prompt_tokens - cached) * self.input_per_mtok + cached * cached_price
        tokens += completion_tokens * self.output_per_mtok
        return tokens / 1e6 + busy_s * self.usd_per_hour / 3600.0

    def describe(self) -> dict[str, Any]:
        return self.model_dump()


def load_price_file(path: str | Path, model: str) -> Price:
    """Read `[models."NAME"]` tables (or a `[default]` table) from a TOML price file.

    Every problem names the file and the field: a price file is input like any other.
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
    try:
        return Price(**table, source=f"{path}:{table_name}")
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        line = line_of(text, str(err["loc"][0]) if err["loc"] else "") or 1
        raise UserError(f"{path}:{line}: [{table_name}] field {field!r}: {err['msg']}") from None
    except TypeError:
        raise UserError(f"{path}: [{table_name}] must be a table of prices") from None


def genai_price(model: str, provider: str | None = None) -> Price | None:
    """Prices of a hosted model from the maintained `genai-prices` data, or None if it has none.

    The source records the package version and today's date, so a stored run can be re-priced later
    when prices change. Tiered prices are read as the price of the first million tokens.
    """
    try:
        import genai_prices
        from genai_prices import Usage, calc_price
    except ImportError:  # optional at run time: flags and price files still work
        return None
    try:
        calc = calc_price(Usage(input_tokens=1_000_000, output_tokens=1_000_000), model_ref=model, provider_id=provider)
    except (LookupError, ValueError):
        return None
    mp = calc.model_price

    def per_mtok(value: object) -> float | None:
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None

    input_mtok = per_mtok(mp.input_mtok)
    output_mtok = per_mtok(mp.output_mtok)
    if input_mtok is None or output_mtok is None:  # tiered: take what 1M tokens cost
        input_mtok, output_mtok = float(calc.input_price), float(calc.output_price)
    version = getattr(genai_prices, "__version__", "?")
    today = date.today().isoformat()
    return Price(
        input_per_mtok=input_mtok,
        output_per_mtok=output_mtok,
        cached_input_per_mtok=per_mtok(mp.cache_read_mtok),
        source=f"genai-prices {version}: {calc.provider.id}/{calc.model.id} as of {today}",
    )
