"""A new user's first minutes: a status line while a model server loads, consistent defaults, and a
`to_pandas()` that shows what the model wrote."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import pytest

import infereco
from infereco import cli
from infereco.backends.openai import OpenAIBackend
from infereco.runner import Progress
from fakeserver import FakeServer


class SlowStartBackend(OpenAIBackend):
    """An OpenAI backend whose `start` takes a while, like llama.cpp's server loading a model."""

    started = False

    async def start(self) -> None:
        await asyncio.sleep(0.05)
        self.started = True


def test_the_run_says_what_it_does_while_the_model_server_starts(tmp_path: Path) -> None:
    statuses: list[str] = []
    progress = Progress(on_change=lambda p: statuses.append(p.status))
    with FakeServer(p_correct=0.9) as fake:
        backend = SlowStartBackend(fake.base_url, "fake")
        infereco.run("arithmetic", level=1, limit=2, n=2, backend=backend, input_price=0, output_price=0,
                     store=tmp_path / "s.db", progress=progress)  # fmt: skip
    assert backend.started
    said = statuses.index("starting fake (loading the model server)")
    assert statuses[-1] == "" and "" in statuses[said:]  # cleared once sampling begins


def test_the_progress_line_shows_the_status_on_a_pipe(capsys: pytest.CaptureFixture[str]) -> None:
    bar = cli._Bar(enabled=True)
    with bar:
        bar.progress.status = "starting qwen (loading the model server)"
        bar.progress.changed()
        bar.progress.status = ""
        bar.progress.changed()
    err = capsys.readouterr().err
    assert "starting qwen (loading the model server)…" in err  # not a terminal: one plain line


def test_level_defaults_agree() -> None:
    def default(fn: object, name: str = "level") -> object:
        return inspect.signature(fn).parameters[name].default  # type: ignore[arg-type]

    assert default(cli.run) == default(cli.demo) == default(cli.sweep) == 3
    from infereco.runconfig import RunConfig  # infereco.run / Experiment / --config take their defaults here

    assert RunConfig.model_fields["level"].default == 3


def test_to_pandas_has_the_text_of_every_sample(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    with FakeServer(p_correct=0.5) as fake:
        result = infereco.run("arithmetic", level=1, limit=3, n=4, backend="openai", model="fake",
                              base_url=fake.base_url, input_price=0, output_price=0, store=tmp_path / "s.db")  # fmt: skip
    frame = result.to_pandas()
    assert len(frame) == 12
    for column in ("prompt", "reference", "text", "answer", "finish_reason", "chosen_answer", "correct", "cost_usd"):
        assert column in frame.columns, column
    assert frame["text"].str.contains("Answer:").all() and frame["prompt"].str.contains("What is").all()
    assert (frame["answer"] == frame["text"].str.extract(r"Answer: (\d+)")[0]).all()
    assert (frame.groupby("problem_id")["chosen_answer"].nunique() == 1).all()
