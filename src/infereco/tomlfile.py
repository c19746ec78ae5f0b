"""Reading a TOML input file (a run config, a price file) with one-line errors that name file:line."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from infereco.errors import UserError


def read_toml(path: Path, flag: str, what: str = "a TOML file") -> tuple[str, dict[str, Any]]:
    """The file's text and its parsed tables; a missing, unreadable, non-UTF-8 or invalid file is a
    `UserError` naming `flag` or the file (and the line, for a syntax error)."""
    if not path.is_file():
        raise UserError(f"{flag}: no such file: {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason}) (expected {what})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = " ".join(str(exc).split())
        where = re.search(r"line (\d+)", message)
        raise UserError(f"{path}:{where.group(1) if where else 1}: not valid TOML ({message})") from None


def line_of(text: str, key: str) -> int | None:
    """The (first) line of a TOML text that sets `key` (bare or quoted), or None (e.g. an inline table)."""
    pattern = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*=")
    for lineno, line in enumerate(text.split("\n"), start=1):
        if pattern.match(line):
            return lineno
    return None
