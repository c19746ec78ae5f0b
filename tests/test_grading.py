"""A slow checker is graded off the event loop: the loop goes on answering while a sample is checked."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from fakeserver import FakeServer
from infereco.backends.openai import OpenAIBackend
from infereco.grading import grade, workers
from infereco.prices import Price
from infereco.runner import Runner, RunSpec
from infereco.store import Store
from infereco.strategies import make_strategy
from infereco.tasks import arithmetic_task


@dataclass(frozen=True)
class HeldChecker:
    """Grading blocks until the test releases it (from the event loop), or gives up after 20 s."""

    folder: str
    name: str = "held"
    slow: ClassVar[bool] = True

    def extract(self, text: str) -> str | None:
        return "x"

    def is_correct(self, answer: str | None, reference: str) -> bool:
        Path(self.folder, f"pid-{os.getpid()}").touch()
        Path(self.folder, "started").touch()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if Path(self.folder, "release").exists():
                return True
            time.sleep(0.01)
        return False  # never released: the event loop was blocked while this ran


def test_a_slow_checker_does_not_block_the_event_loop(tmp_path: Path) -> None:
    folder = tmp_path / "marks"
    folder.mkdir()
    task = arithmetic_task(level=1, limit=2)
    task = replace(task, checker=HeldChecker(str(folder)))
    with FakeServer() as fake, Store(tmp_path / "s.db") as db:
        backend = OpenAIBackend(fake.base_url, "fake", max_retries=0)
        runner = Runner(RunSpec(task=task, strategy=make_strategy("majority", 2)), backend, db, Price(source="test"))

        async def release() -> None:  # runs only if the loop is free while a sample is graded
            while not (folder / "started").exists():
                await asyncio.sleep(0.01)
            (folder / "release").touch()

        async def both() -> None:
            try:
                await asyncio.gather(runner.run(), release())
            finally:
                await backend.aclose()

        asyncio.run(both())
        samples = [s for p in task.problems for s in db.samples(runner.ledger_id, p.id, "sample")]
    assert len(samples) == 4 and all(s.correct for s in samples)  # released from the loop: never timed out
    pids = {int(p.name.split("-")[1]) for p in folder.glob("pid-*")}
    assert pids and os.getpid() not in pids  # graded in worker processes


def test_fast_checkers_are_graded_inline_and_the_pool_is_sized_to_the_machine() -> None:
    from infereco.checkers import NumericChecker

    assert not getattr(NumericChecker(), "slow", False)
    assert grade(NumericChecker(), ["2 + 2 = 4\nAnswer: 4", "Answer: 5"], "4") == [("4", True), ("5", False)]
    assert workers() >= 1 and workers() <= (os.cpu_count() or 1)
