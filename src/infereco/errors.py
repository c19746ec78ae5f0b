"""One error type for everything a user can get wrong.

A `UserError` is caught once, at the CLI boundary, and printed as a single line with exit code 2.
Library callers get the exception itself. The message must say *where* (file:line, field, flag)
and *what was expected*, and must never contain a secret.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input: a flag, a file, a dataset row, a price table, an unreachable server."""

    exit_code = 2


class BackendError(UserError):
    """The model backend could not be reached or answered with something unusable.

    `maybe_billed` says whether the last try may have been billed all the same (it reached the
    server and no refusal came back): the Runner charges it, as it does the retried ones.
    """

    maybe_billed: bool = False
