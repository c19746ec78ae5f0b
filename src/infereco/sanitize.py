"""Turn a chat model's reply into the program a code benchmark should run (EvalPlus-like).

Small models wrap code in prose, open a fence and put `python` alone on the next line, leave
their own `assert`s and `print`s at the top level, or write only the function without the
imports the prompt had. Graded raw, a quarter of working solutions failed. The sanitizer:
1. takes the fenced block that defines the entry point (else the longest one that parses; else
   the whole reply), dropping a lone language-tag line at its top;
2. trims trailing lines until it parses (a reply cut by `max_tokens`);
3. keeps imports, function and class definitions and top-level assignments, and drops everything
   else at the top level (the model's own tests, prints, `if __name__ == "__main__":` blocks);
4. prepends the prompt's imports and helper definitions the program does not define itself.
"""

from __future__ import annotations

import ast
import re

_FENCE = re.compile(r"```[^\n`]*\n(.*?)(?:```|\Z)", re.DOTALL)
_LANG_TAG = re.compile(r"^\s*(?:python3?|py|Python3?)\s*$")
_KEEP = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)


def _blocks(text: str) -> list[str]:
    blocks = [_drop_tag(b) for b in _FENCE.findall(text)]
    return [b for b in blocks if b.strip()] or [_drop_tag(text)]


def _drop_tag(block: str) -> str:
    """A fence opened as "```" with "python" alone on the next line: that word is not code."""
    lines = block.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    if lines and _LANG_TAG.match(lines[0]):
        lines.pop(0)
    return "\n".join(lines)


def _parse_prefix(code: str) -> ast.Module | None:
    """The longest prefix of `code` (whole lines) that parses."""
    lines = code.split("\n")
    for end in range(len(lines), 0, -1):
        try:
            return ast.parse("\n".join(lines[:end]))
        except (SyntaxError, ValueError):
            continue
    return None


def _defines(tree: ast.Module, name: str) -> bool:
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == name for n in tree.body)


def _kept(tree: ast.Module) -> list[ast.stmt]:
    return [n for n in tree.body if isinstance(n, _KEEP)]


def _names(nodes: list[ast.stmt]) -> set[str]:
    out: set[str] = set()
    for n in nodes:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
    return out


def sanitize(text: str, entry_point: str | None = None, prompt: str = "") -> str | None:
    """The program in `text` (see the module docstring), or None when there is no parsable code."""
    candidates: list[tuple[ast.Module, str]] = []
    for block in _blocks(text):
        tree = _parse_prefix(block)
        if tree is not None and tree.body and not (block[:1].isspace() and entry_point and not _defines(tree, entry_point)):
            candidates.append((tree, block))
        elif entry_point and prompt:  # a completion-style reply: the indented body of the prompt's function
            completed = _parse_prefix(prompt.rstrip() + "\n" + block.rstrip())
            if completed is not None and _defines(completed, entry_point):
                candidates.append((completed, block))
    if not candidates:
        return None
    defining = [c for c in candidates if entry_point and _defines(c[0], entry_point)]
    tree, _ = (defining or [max(candidates, key=lambda c: len(_kept(c[0])))])[-1]
    if entry_point and not _defines(tree, entry_point) and prompt:
        # a completion-style reply: the body of the prompt's function, without its signature
        completed = _parse_prefix(prompt.rstrip() + "\n" + _indent_body(ast.unparse(tree)))
        if completed is not None and _defines(completed, entry_point):
            tree = completed
    body = _kept(tree)
    if not body:
        return None
    header = _prompt_header(prompt, _names(body))
    program = ast.unparse(ast.Module(body=header + body, type_ignores=[]))
    return program.strip() or None


def _indent_body(code: str) -> str:
    return "\n".join("    " + line if line.strip() else line for line in code.split("\n"))


def _prompt_header(prompt: str, defined: set[str]) -> list[ast.stmt]:
    """The prompt's imports and the helpers (functions, classes, constants) the program lacks."""
    if not prompt.strip():
        return []
    tree = _parse_prefix(prompt)
    if tree is None:
        return []
    out: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name not in defined:
            if node.body and not (len(node.body) == 1 and _is_docstring(node.body[0])):  # a stub is not a helper
                out.append(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            out.append(node)
    return out


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _call_at(line: str, start: int) -> str | None:
    """The call expression that starts at `start` in `line`, parentheses balanced."""
    depth = 0
    for i in range(line.index("(", start), len(line)):
        depth += {"(": 1, ")": -1}.get(line[i], 0)
        if depth == 0:
            return line[start : i + 1]
    return None


def example_calls(prompt: str, entry_point: str) -> list[str]:
    """Calls of `entry_point` the prompt shows (doctest lines, `f(x) == y`, `f(x) -> y`, ...): the
    inputs a code vote compares programs on. Never taken from the hidden tests."""
    calls: list[str] = []
    name = re.compile(rf"(?<![\w.]){re.escape(entry_point)}\(")
    for line in prompt.split("\n"):
        if line.lstrip().startswith(("def ", "async def ")):
            continue
        for m in name.finditer(line):
            expr = _call_at(line, m.start())
            if expr is None:
                continue
            try:
                ast.parse(expr, mode="eval")
            except SyntaxError:
                continue
            calls.append(expr)
    return list(dict.fromkeys(calls))


__all__ = ["sanitize", "example_calls"]
