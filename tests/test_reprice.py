"""`infereco reprice`: stored costs recomputed from stored usage when prices change, without calling a model."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fakeserver import FakeServer
from infereco.api import run as api_run
from infereco.cli import main
from infereco.reprice import reprice

PRICES = """
[models."fake"]
input_per_mtok = 1.0
output_per_mtok = 2.0
cached_input_per_mtok = 0.5
[[models."fake".tiers]]
above_input_tokens = 20
input_per_mtok = 3.0
"""


def _run(fake: FakeServer, store: Path, **kw: Any):
    args: dict[str, Any] = dict(level=1, limit=5, n=4, max_n=2, backend="openai", base_url=fake.base_url, model="fake",
                                max_tokens=30, store=store, input_price=10.0, output_price=20.0)  # fmt: skip
    args.update(kw)
    return api_run("arithmetic", **args)


def _costs(store: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with sqlite3.connect(store) as conn:
        requests = conn.execute(
            "SELECT request_key, cost_usd, price_source, price_version FROM requests ORDER BY request_key"
        ).fetchall()
        samples = conn.execute("SELECT problem_id, step, sample_index, cost_usd FROM samples ORDER BY 1, 2, 3").fetchall()
    return requests, samples


def test_reprice_with_a_file_gives_what_a_run_at_those_prices_stores(tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(PRICES)
    with FakeServer(filler_max=10) as fake:
        _run(fake, tmp_path / "old.db")
        fresh = _run(fake, tmp_path / "fresh.db", input_price=None, output_price=None, prices=prices)
        keys_before = list(fake.model.keys)
        [result] = reprice(tmp_path / "old.db", prices)
        assert fake.model.keys == keys_before  # no model was called
    new_requests, new_samples = _costs(tmp_path / "old.db")
    want_requests, want_samples = _costs(tmp_path / "fresh.db")
    assert len(new_requests) == len(want_requests) == 10
    for (k1, c1, *_), (k2, c2, *_) in zip(new_requests, want_requests):
        assert k1 == k2 and c1 == pytest.approx(c2, rel=1e-12)
    for (*k1, c1), (*k2, c2) in zip(new_samples, want_samples):
        assert k1 == k2 and c1 == pytest.approx(c2, rel=1e-12)
    assert {r[2] for r in new_requests} == {f'{prices}:models."fake"'}
    assert all(r[3].startswith("prices.toml ") for r in new_requests)
    assert result.new_usd == pytest.approx(fresh.totals["cost_usd"]) and result.old_usd > result.new_usd
    with sqlite3.connect(tmp_path / "old.db") as conn:  # a resumed run goes on with the new price
        config = json.loads(conn.execute("SELECT config_json FROM runs").fetchone()[0])
    assert config["price"]["tiers"][0]["above_input_tokens"] == 20


def test_reprice_without_a_file_refreshes_genai_prices(tmp_path: Path) -> None:
    store = tmp_path / "g.db"
    with FakeServer() as fake:
        _run(fake, store, model="claude-sonnet-4-5", input_price=None, output_price=None)
    right, _ = _costs(store)
    with sqlite3.connect(store) as conn:  # prices stored wrong (an older infereco, old data): all zero
        conn.execute("UPDATE requests SET cost_usd = 0, price_version = 'genai-prices 0.0.1'")
        conn.execute("UPDATE samples SET cost_usd = 0")
    main(["reprice", str(store), "--json"])
    again, samples = _costs(store)
    assert [(k, pytest.approx(c)) for k, c, *_ in right] == [(k, c) for k, c, *_ in again]
    assert all(c > 0 for *_, c in samples)
    assert all(v.startswith("genai-prices ") and v != "genai-prices 0.0.1" for *_, v in again)


def test_a_bad_price_file_is_one_line_and_changes_nothing(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    with FakeServer() as fake:
        _run(fake, store)
    before = _costs(store)
    bad = tmp_path / "bad.toml"
    bad.write_text('[models."other"]\ninput_per_mtok = 1\n')
    proc = subprocess.run([sys.executable, "-m", "infereco.cli", "reprice", str(store), "--prices", str(bad)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "bad.toml" in proc.stderr and "fake" in proc.stderr
    assert _costs(store) == before
    missing = subprocess.run([sys.executable, "-m", "infereco.cli", "reprice", str(tmp_path / "none.db")],
                             capture_output=True, text=True)  # fmt: skip
    assert missing.returncode == 2 and "none.db" in missing.stderr
