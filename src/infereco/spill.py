"""Answers that arrived while the store's disk was full: kept in a spill file, stored by the next resume.

The answers were paid for. When SQLite cannot write them (the disk or a quota is full), the Runner
keeps them in memory, stops sending, and at the end writes them as JSON to the first place that
takes it: next to the store, then `~/.cache/infereco/spill`, then the temp folder (often another
file system). The next `--resume` of the run imports every spill file of that store and run (only
the requests not stored yet) and deletes it, so nothing that arrived is requested again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from infereco.records import RequestRecord, SampleRecord


def _places(store_path: Path) -> list[Path]:
    return [store_path.resolve().parent, Path.home() / ".cache" / "infereco" / "spill", Path(tempfile.gettempdir())]


def _prefix(store_path: Path, run_id: str) -> str:
    tag = hashlib.sha256(str(store_path.resolve()).encode()).hexdigest()[:8]
    return f"{store_path.name}.{tag}.unwritten-{run_id}-"


def spill(store_path: Path, run_id: str, batch: list[tuple[RequestRecord, list[SampleRecord]]]) -> Path | None:
    """Write the answers to the first place with room; return the file, or None if none took it."""
    payload = json.dumps(
        [{"request": dataclasses.asdict(r), "samples": [dataclasses.asdict(s) for s in samples]} for r, samples in batch]
    )
    name = f"{_prefix(store_path, run_id)}{os.getpid()}-{int(time.time() * 1000)}.json"
    for place in _places(store_path):
        target = place / name
        try:
            place.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".part")
            tmp.write_text(payload)
            os.replace(tmp, target)  # whole or absent
            return target
        except OSError:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
    return None


def import_spilled(store: Any, run_id: str) -> int:
    """Store the answers spill files hold for this store and run (those not stored yet); return how many."""
    path = Path(store.path)
    prefix = _prefix(path, run_id)
    imported = 0
    for place in _places(path):
        try:
            files = sorted(f for f in place.iterdir() if f.name.startswith(prefix) and f.suffix == ".json")
        except OSError:
            continue
        for file in files:
            try:
                items = json.loads(file.read_text())
                batch = [(RequestRecord(**i["request"]), [SampleRecord(**s) for s in i["samples"]]) for i in items]
            except (OSError, ValueError, TypeError, KeyError):
                continue  # not ours, or damaged: left where it is
            have = {
                r[0] for r in store.conn.execute("SELECT request_key FROM requests WHERE run_id=?", (run_id,))
            }
            fresh = [(r, s) for r, s in batch if r.key not in have]
            if fresh:
                store.record_requests(run_id, fresh)
            imported += len(fresh)
            file.unlink(missing_ok=True)
    return imported


__all__ = ["spill", "import_spilled"]
