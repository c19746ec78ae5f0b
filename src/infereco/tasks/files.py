"""Tasks loaded from local files: GSM8K-style and MATH-style JSONL, and question/answer CSV.

Users bring their own data, so every malformed row must produce one actionable line
(`path:LINE: what is wrong (expected ...)`) instead of a traceback or, worse, a silently skipped
problem that changes what a run measured.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

from infereco.checkers import MathChecker, NumericChecker, canonical_number, last_boxed
from infereco.errors import UserError
from infereco.problem import Problem
from infereco.tasks.base import DEFAULT_SYSTEM_PROMPT, MATH_SYSTEM_PROMPT, Task, check_limit

FORMATS = ("auto", "gsm8k", "math")
_EXPECT_GSM8K = "a GSM8K row with 'question' and 'answer' ending in '#### <number>'"
_EXPECT_MATH = "a MATH row with 'problem' and a 'solution' containing \\boxed{...} (or an 'answer')"


def _resolve(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"no such file: {path}")
    return p.resolve()


def _read_text(path: Path, shown: str | Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{shown}: not UTF-8 text ({exc.reason}) (expected a UTF-8 file)") from None
    except OSError as exc:
        raise UserError(f"{shown}: cannot read ({exc.strerror})") from None


def _rows(text: str, shown: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based line number, object) for every non-blank line; bad JSON is a UserError."""
    # Split on "\n" only: str.splitlines() would also split on U+2028 inside JSON strings.
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(
                f"{shown}:{lineno}: invalid JSON ({exc.msg}) (expected one JSON object per line)"
            ) from None
        if not isinstance(row, dict):
            raise UserError(
                f"{shown}:{lineno}: not a JSON object, got {type(row).__name__} "
                "(expected one JSON object per line)"
            )
        yield lineno, row


def _field(row: dict[str, Any], key: str, where: str, expected: str) -> str:
    if key not in row:
        raise UserError(f"{where}: missing field '{key}' (expected {expected})")
    value = row[key]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and key == "answer":
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{where}: field '{key}' must be a non-empty string (expected {expected})")
    return value


def _detect(row: dict[str, Any], where: str) -> str:
    if "question" in row:
        return "gsm8k"
    if "problem" in row:
        return "math"
    keys = ", ".join(sorted(map(str, row))) or "none"
    raise UserError(
        f"{where}: cannot tell the format from keys [{keys}] "
        "(expected 'question'+'answer' for GSM8K or 'problem'+'solution' for MATH)"
    )


def _gsm8k_answer(raw: str, where: str) -> str:
    """The number after the last '####', canonicalised ("1,234" -> "1234")."""
    if "####" not in raw:
        raise UserError(
            f"{where}: field 'answer' has no '####' final answer (expected {_EXPECT_GSM8K})"
        )
    final = raw.rsplit("####", 1)[1].strip()
    number = canonical_number(final)
    if number is None:
        raise UserError(
            f"{where}: final answer {final!r} after '####' is not a number "
            f"(expected {_EXPECT_GSM8K})"
        )
    return number


def _problem_id(row: dict[str, Any], stem: str, lineno: int) -> str:
    for key in ("id", "unique_id"):
        if key in row and isinstance(row[key], (str, int)) and str(row[key]).strip():
            return str(row[key]).strip()
    return f"{stem}-{lineno}"


def _gsm8k_problem(row: dict[str, Any], where: str, stem: str, lineno: int) -> Problem:
    question = _field(row, "question", where, _EXPECT_GSM8K)
    answer = _field(row, "answer", where, _EXPECT_GSM8K)
    return Problem(
        id=_problem_id(row, stem, lineno),
        prompt=question.strip(),
        answer=_gsm8k_answer(answer, where),
        metadata={"source": "gsm8k", "line": lineno},
    )


def _math_problem(row: dict[str, Any], where: str, stem: str, lineno: int) -> Problem:
    problem = _field(row, "problem", where, _EXPECT_MATH)
    if "answer" in row:
        answer = _field(row, "answer", where, _EXPECT_MATH).strip()
    else:
        solution = _field(row, "solution", where, _EXPECT_MATH)
        boxed = last_boxed(solution)
        if boxed is None or not boxed.strip():
            raise UserError(
                f"{where}: field 'solution' has no \\boxed{{}} final answer "
                f"(expected {_EXPECT_MATH})"
            )
        answer = boxed.strip()
    metadata: dict[str, Any] = {"source": "math", "line": lineno}
    for key in ("level", "type", "subject"):
        if key in row:
            metadata[key] = row[key]
    return Problem(
        id=_problem_id(row, stem, lineno), prompt=problem.strip(), answer=answer, metadata=metadata
    )


def _check_unique(problems: list[Problem], shown: str | Path) -> None:
    """Problem ids key stored samples, so two rows with one id would silently share results."""
    seen: dict[str, int] = {}
    for p in problems:
        line = p.metadata.get("line", 0)
        if p.id in seen:
            raise UserError(
                f"{shown}:{line}: duplicate id {p.id!r}, first on line {seen[p.id]} "
                "(expected unique ids)"
            )
        seen[p.id] = line


def _make_task(fmt: str, path: Path, problems: list[Problem], limit: int | None) -> Task:
    checker = NumericChecker() if fmt == "gsm8k" else MathChecker()
    prompt = DEFAULT_SYSTEM_PROMPT if fmt == "gsm8k" else MATH_SYSTEM_PROMPT
    return Task(
        name=f"{fmt}:{path.stem}",
        problems=tuple(problems),
        checker=checker,
        system_prompt=prompt,
        spec={"name": fmt, "path": str(path), "limit": limit},
    )


def load_jsonl_task(path: str | Path, fmt: str = "auto", limit: int | None = None) -> Task:
    """A task from a JSONL file; `fmt="auto"` decides the format from the first row's keys.

    GSM8K and MATH rows are read here; the other formats (HumanEval, MBPP, multiple choice,
    free-form) come from the registry in `infereco.tasks.formats`.
    """
    from infereco.tasks.formats import FORMATS as REGISTERED
    from infereco.tasks.formats import detect, get_format

    if fmt not in FORMATS and fmt not in REGISTERED:
        get_format(fmt)  # the one-line error listing every format
    check_limit(limit)
    resolved = _resolve(path)
    problems: list[Problem] = []
    for lineno, row in _rows(_read_text(resolved, path), path):
        where = f"{path}:{lineno}"
        if fmt == "auto":
            try:
                fmt = detect(row, where).name
            except UserError:
                fmt = _detect(row, where)
        if fmt in REGISTERED:
            return _load_registered(REGISTERED[fmt], path, resolved, limit)
        make = _gsm8k_problem if fmt == "gsm8k" else _math_problem
        problems.append(make(row, where, resolved.stem, lineno))
        if limit is not None and len(problems) >= limit:
            break
    if not problems:
        raise UserError(f"{path}: empty file, no problems (expected one JSON object per line)")
    _check_unique(problems, path)
    return _make_task(fmt, resolved, problems, limit)


def _load_registered(fmt: Any, path: str | Path, resolved: Path, limit: int | None) -> Task:
    """A task of a registered format (`infereco.tasks.formats`): every row parsed by the format."""
    problems: list[Problem] = []
    for lineno, row in _rows(_read_text(resolved, path), path):
        problem = fmt.parse(row, f"{path}:{lineno}", f"{resolved.stem}-{lineno}")
        problems.append(replace(problem, metadata={**problem.metadata, "line": lineno}))
        if limit is not None and len(problems) >= limit:
            break
    if not problems:
        raise UserError(f"{path}: empty file, no problems (expected one JSON object per line)")
    _check_unique(problems, path)
    return Task(
        name=f"{fmt.name}:{resolved.stem}", problems=tuple(problems), checker=fmt.checker(),
        system_prompt=fmt.system_prompt, prompt_template=fmt.prompt_template, step_delimiter=fmt.step_delimiter,
        spec={"name": fmt.name, "path": str(resolved), "limit": limit},
    )  # fmt: skip


def load_csv_task(path: str | Path, limit: int | None = None) -> Task:
    """A GSM8K-like task from a CSV with a header row naming 'question' and 'answer' columns.

    The answer may be a bare number or GSM8K-style text ending in '#### <number>'.
    """
    check_limit(limit)
    resolved = _resolve(path)
    text = _read_text(resolved, path)
    if not text.strip():
        raise UserError(f"{path}: empty file, no problems (expected a header 'question,answer')")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = reader.fieldnames or []
    for needed in ("question", "answer"):
        if needed not in columns:
            raise UserError(
                f"{path}:1: missing column '{needed}', found [{_shown_columns(columns)}] "
                "(expected a header row with 'question' and 'answer')"
            )
    problems: list[Problem] = []
    try:
        _csv_problems(reader, path, resolved.stem, limit, problems)
    except csv.Error as exc:
        raise UserError(
            f"{path}:{reader.line_num}: malformed CSV ({exc}) (expected question,answer rows)"
        ) from None
    if not problems:
        raise UserError(f"{path}: no problems, only a header (expected rows of question,answer)")
    _check_unique(problems, path)
    return _make_task("gsm8k", resolved, problems, limit)


def _shown_columns(columns: list[str]) -> str:
    """Header names for a one-line message: quoted (a stray quote can pull newlines into a name), short."""
    shown = ", ".join(repr(c) if not c.isidentifier() else c for c in columns)
    return shown if len(shown) <= 120 else shown[:117] + "..."


def _csv_problems(
    reader: csv.DictReader[str],
    path: str | Path,
    stem: str,
    limit: int | None,
    problems: list[Problem],
) -> None:
    """Append one problem per non-blank row to `problems`, stopping at `limit`."""
    for row in reader:
        lineno = reader.line_num
        where = f"{path}:{lineno}"
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        if None in row:  # more fields than the header: a comma inside an unquoted question, most likely
            extra = len(row[None]) if isinstance(row[None], list) else 1  # type: ignore[index]
            raise UserError(
                f"{where}: {len(row) - 1 + extra} fields, the header has {len(row) - 1} "
                "(expected question,answer; quote a field that contains a comma)"
            )
        question = (row.get("question") or "").strip()
        raw = (row.get("answer") or "").strip()
        if not question:
            raise UserError(f"{where}: empty 'question' (expected a question and an answer)")
        answer = _gsm8k_answer(raw, where) if "####" in raw else canonical_number(raw)
        if answer is None:
            raise UserError(
                f"{where}: answer {raw!r} is not a number "
                "(expected a number or '... #### <number>')"
            )
        problems.append(Problem(
            id=_problem_id(row, stem, lineno),
            prompt=question,
            answer=answer,
            metadata={"source": "csv", "line": lineno},
        ))
        if limit is not None and len(problems) >= limit:
            return
