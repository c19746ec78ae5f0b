"""The README and docs keep their promises to a first-time reader: every relative link and image
points at a file in the repository, every embedded model they use is one `scripts/setup` installs
(and is installed here), and every command they name exists."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from infereco.backends.models import ALIASES, EMBEDDED_MODELS

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _links(path: Path) -> list[tuple[int, str]]:
    out = []
    in_code = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip().startswith("```"):
            in_code = not in_code
            continue
        if not in_code:
            out += [(number, m.group(1)) for m in LINK.finditer(line)]
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_into_the_repository(doc: Path) -> None:
    links = _links(doc)
    for number, target in links:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (not fetched: no network) or an anchor on the same page
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        where = f"{doc.relative_to(ROOT)}:{number}: {target}"
        assert path.is_relative_to(ROOT), f"{where} points outside the repository"
        assert path.exists(), f"{where} does not exist"


def test_the_link_checker_finds_a_dead_link(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("see [the design](../shared/DESIGN.md) and ![x](img/none.png)\n```\n[in code](nowhere.md)\n```\n")
    assert _links(page) == [(1, "../shared/DESIGN.md"), (1, "img/none.png")]


def _models_used() -> set[str]:
    text = "\n".join(p.read_text(encoding="utf-8") for p in DOCS)
    names = set(re.findall(r"--(?:draft-model|judge-model|model)[ =]([A-Za-z0-9_.\-]+)", text))
    return {ALIASES.get(n, n) for n in names if ALIASES.get(n, n) in EMBEDDED_MODELS}


def test_every_embedded_model_the_docs_use_is_installed_by_setup() -> None:
    used = _models_used()
    assert "smollm2-135m-instruct-q4" in used  # the README's speculative example
    setup = (ROOT / "scripts" / "setup").read_text(encoding="utf-8")
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    for name in used:
        for package, _ in EMBEDDED_MODELS[name].parts:
            dist = package.replace("_", "-")
            assert dist in setup or dist in pyproject, f"{name}: {dist} is installed by neither setup nor pyproject"
            assert importlib.util.find_spec(package) is not None, f"{name}: {dist} is not installed here"


def test_every_command_the_readme_names_exists() -> None:
    from typer.main import get_command

    from infereco.cli import app

    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`infereco ([a-z][a-z-]+)", text)) | set(re.findall(r"^infereco ([a-z][a-z-]+)", text, re.M))
    assert named and named <= commands, named - commands
    assert {"recommend", "runs"} <= named
