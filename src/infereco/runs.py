"""What a store holds, run by run: label, status, problems done of planned, samples, spend.

A run's stored status says what its last session did ("done", "interrupted", "budget", or
"running" when the process was killed before it could say); the listing reduces that to what a
reader needs: *finished* (every planned problem has an answer), *interrupted* (some are missing:
`infereco run --resume` finishes it), *empty* (not one sample stored, e.g. the server was never
reached; nothing was paid, so `infereco runs --prune-empty` may delete it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from infereco.errors import UserError
from infereco.store import Store

__all__ = ["RunInfo", "list_runs", "prune_empty"]


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    label: str
    #: finished, interrupted or empty
    status: str
    #: the status the run's last session stored (done, interrupted, budget, running)
    stored_status: str
    problems_done: int
    problems_planned: int
    samples: int
    requests: int
    spend_usd: float
    created_at: float
    updated_at: float

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    def note(self) -> str:
        """Why a run is not finished, in words (empty for a finished one)."""
        if self.status == "empty":
            return "no samples stored (was the server reachable?)"
        if self.status == "interrupted":
            why = " by its budget" if self.stored_status == "budget" else ""
            return f"stopped{why} at {self.problems_done} of {self.problems_planned} problems; --resume finishes it"
        return ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "note": self.note()}


def _status(stored: str, done: int, planned: int, samples: int, requests: int) -> str:
    if samples == 0 and requests == 0 and done == 0:
        return "empty"
    if done >= planned and stored != "running":
        return "finished"
    return "interrupted"


def run_info(db: Store, run: dict[str, Any]) -> RunInfo:
    """One run (a row of `Store.runs()`) of an open store, counted."""
    t = db.totals(run["run_id"])
    return RunInfo(
        run_id=run["run_id"], label=run["label"],
        status=_status(run["status"], t["problems_done"], t["problems"], t["samples"], t["requests"]),
        stored_status=run["status"], problems_done=int(t["problems_done"]), problems_planned=int(t["problems"]),
        samples=int(t["samples"]), requests=int(t["requests"]),
        spend_usd=float(t["cost_usd"]) + float(t["unconfirmed_usd"]),
        created_at=float(run["created_at"]), updated_at=float(run["updated_at"]),
    )  # fmt: skip


def run_infos(db: Store) -> list[RunInfo]:
    """Every run of an open store, oldest first."""
    return [run_info(db, run) for run in db.runs()]


def list_runs(store: str | Path) -> list[RunInfo]:
    """Every run in the store at `store`, oldest first (the store is only read)."""
    path = Path(store)
    if not path.is_file():
        raise UserError(f"no such store: {path}")
    with Store(path) as db:
        return run_infos(db)


def prune_empty(store: str | Path) -> list[RunInfo]:
    """Delete the runs that hold no sample and no request (nothing was paid); return them."""
    path = Path(store)
    if not path.is_file():
        raise UserError(f"no such store: {path}")
    with Store(path) as db:
        empty = [r for r in run_infos(db) if r.status == "empty"]
        for r in empty:
            db.delete_run(r.run_id)
    return empty
