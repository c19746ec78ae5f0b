"""`infereco reprice STORE [--prices FILE]`: recompute stored costs when prices change, without calling a model.

Every stored request keeps its whole usage (prompt with its cache reads and writes, completion with
its reasoning tokens), its batch size, its date, its wall time and its idealized seconds, and the
role that served it. So its cost can be recomputed at any time:
- with `--prices FILE`, by the file's table for each role's model (its `usd_per_hour` replaces the
  run's for machine time; a local run keeps its runtime profile);
- without, by each role's stored price, refreshed: a `genai-prices` price is looked up again in the
  installed genai-prices data (at each request's own date), a table price is applied as stored.
Samples get the request's new cost shared as the Runner shares it; each request records the new
price source and version, and the run's config the new price, so a resumed run goes on with it.
Worst-case charges of lost tries (`unconfirmed_usd`) are left as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from infereco.errors import UserError
from infereco.prices import Price, genai_price, load_price_file
from infereco.store import Store
from infereco.usage import TokenUsage


@dataclass(frozen=True)
class Repriced:
    run_id: str
    label: str
    requests: int
    old_usd: float
    new_usd: float
    sources: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "label": self.label, "requests": self.requests, "old_usd": self.old_usd,
                "new_usd": self.new_usd, "sources": list(self.sources)}  # fmt: skip


def new_price(stored: dict[str, Any], model: str, prices: Path | None) -> Price:
    """The price a role's requests get now: from the file, or the stored one refreshed."""
    old = Price(**stored)
    if prices is not None:
        table = load_price_file(prices, model)
        keep: dict[str, Any] = {"clock": old.clock, "runtime": old.runtime}
        if "usd_per_hour" not in table.model_fields_set:
            keep["usd_per_hour"] = old.usd_per_hour
        return table.model_copy(update=keep)
    if old.genai is not None:
        fresh = genai_price(old.genai.model, old.genai.provider)
        if fresh is None:
            raise UserError(f"model {old.genai.model!r} is no longer in the installed genai-prices data; give --prices FILE")
        return fresh.model_copy(update={"usd_per_hour": old.usd_per_hour, "clock": old.clock, "runtime": old.runtime})
    return old


def reprice_run(db: Store, run: dict[str, Any], prices: Path | None = None) -> tuple[Repriced, Any]:
    """The run's new costs, and a function that writes them (nothing is written before it is called)."""
    config = dict(run["config"])
    try:
        roles: dict[str, tuple[str, dict[str, Any]]] = {"main": (config["backend"]["model"], config["price"])}
        for role, other in (config.get("roles") or {}).items():
            roles[role] = (other["backend"].get("model") or "", other["price"])
    except (KeyError, TypeError, AttributeError):
        raise UserError(f"run {run['run_id']}: its stored config has no price to recompute from") from None
    priced = {role: new_price(stored, model, prices) for role, (model, stored) in roles.items()}
    request_updates: list[tuple[float, float, str, str, str]] = []
    sample_updates: list[tuple[float, str, str, int]] = []
    old_total = new_total = 0.0
    for req in db.priced_requests(run["run_id"]):
        price = priced.get(req["role"], priced["main"])
        usage = TokenUsage(req["prompt"], req["cached"], req["cache_write"], req["completion"], req["reasoning"])
        when = datetime.fromtimestamp(req["sent_at"], tz=timezone.utc)
        charge = price.charge(usage, busy_s=req["busy_s"], batch=req["n"], when=when)
        samples = req["samples"]
        shares = charge.split([ct for *_, ct in samples], [pt for *_, pt, _ in samples])
        sample_updates += [(cost, p, st, i) for cost, (p, st, i, _, _) in zip(shares, samples)]
        request_updates.append((charge.usd, charge.compute_s, price.source, price.data_version(), req["key"]))
        old_total += req["cost_usd"]
        new_total += charge.usd
    config["price"] = priced["main"].describe()
    for role, stored in (config.get("roles") or {}).items():
        config["roles"] = {**config["roles"], role: {**stored, "price": priced[role].describe()}}
    sources = tuple(dict.fromkeys(p.source for p in priced.values()))
    result = Repriced(run["run_id"], run["label"], len(request_updates), old_total, new_total, sources)
    return result, lambda: db.apply_prices(run["run_id"], request_updates, sample_updates, config)


def reprice(store: str | Path, prices: str | Path | None = None, run_ids: list[str] | None = None) -> list[Repriced]:
    """Recompute the costs of the stored runs (all, or `run_ids`); see the module docstring."""
    path = Path(store)
    if not path.is_file():
        raise UserError(f"no such store: {path}")
    price_file = Path(prices) if prices is not None else None
    if price_file is not None and not price_file.is_file():
        raise UserError(f"--prices: no such file: {price_file}")
    with Store(path) as db:
        runs = [db.run(r) for r in run_ids] if run_ids else db.runs()
        if not runs:
            raise UserError(f"{path} holds no runs")
        # every run is priced before anything is written: a bad file or a model it lacks changes nothing
        planned = [reprice_run(db, run, price_file) for run in runs]
        for _, write in planned:
            write()
        return [result for result, _ in planned]
