"""Grading samples: extract each answer and check it, inline or in a process pool.

Most checkers take microseconds (a number, an exact string) and are called inline. A checker that
declares itself `slow` (running generated code against tests in a sandbox, symbolic equivalence by
math-verify) is called in a pool of worker processes, sized to the machine, so that a slow check
never holds up the event loop: responses to other requests keep arriving and being stored while a
sample is graded. The pool is started on first use and shared by every Runner of the process
(`infereco serve` makes one per HTTP request).
"""

from __future__ import annotations

import asyncio
import atexit
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import Any

Graded = list[tuple[str | None, bool]]

_POOL: ProcessPoolExecutor | None = None
_LOCK = threading.Lock()


def grade(checker: Any, texts: list[str], reference: str) -> Graded:
    """(answer, correct) of each text, by the checker."""
    out = []
    for text in texts:
        answer = checker.extract(text)
        out.append((answer, bool(checker.is_correct(answer, reference))))
    return out


def workers() -> int:
    """Grading processes: one per CPU this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def pool() -> ProcessPoolExecutor:
    """The process pool slow checkers run in (spawned, not forked: the parent has threads)."""
    global _POOL
    with _LOCK:
        if _POOL is None:
            _POOL = ProcessPoolExecutor(max_workers=workers(), mp_context=multiprocessing.get_context("spawn"))
            atexit.register(_POOL.shutdown, wait=False, cancel_futures=True)
        return _POOL


async def grade_async(checker: Any, texts: list[str], reference: str) -> Graded:
    """`grade`, off the event loop when the checker is slow."""
    if not getattr(checker, "slow", False):
        return grade(checker, texts, reference)
    return await asyncio.get_running_loop().run_in_executor(pool(), grade, checker, texts, reference)


__all__ = ["grade", "grade_async", "pool", "workers"]
