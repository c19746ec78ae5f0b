"""Every numeric flag and URL of a run checked before anything is stored or sent.

A value that is not finite (`--timeout inf`, `--input-price nan`), out of its range
(`--concurrency 0`) or a URL that does not parse (`http://[::1`) or carries credentials
(`http://user:KEY@host`) is a one-line `UserError` naming the flag. Checks run before any request
and before the store is opened, so a bad value costs nothing and leaves nothing behind (a URL with a
key in it would otherwise be stored in the run's config).
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

from infereco.errors import UserError

#: flag -> (lowest, highest, lowest excluded); None: unbounded on that side
_RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "level": (1, 5, False),
    "limit": (1, None, False),
    "n": (1, 1_000_000, False),
    "concurrency": (1, 100_000, False),
    "max_n": (1, 100_000, False),
    "max_retries": (0, 1000, False),
    "timeout": (0, 7 * 86400, True),
    "max_tokens": (1, 100_000_000, False),
    "temperature": (0, 2, False),
    "top_p": (0, 1, True),
    "input_price": (0, 1e9, False),
    "output_price": (0, 1e9, False),
    "usd_per_hour": (0, 1e9, False),
    "budget_usd": (0, 1e15, False),
    "budget_tokens": (0, 10**15, False),
    "budget_usd_per_problem": (0, 1e15, False),
    "budget_tokens_per_problem": (0, 10**15, False),
    "reward_price": (0, 1e9, False),
    "accept_threshold": (0, 9, False),
    "max_steps": (1, 100_000, False),
    "beam_width": (1, 100_000, False),
    "pf_temperature": (0, 1e6, True),
    "entropy_floor": (0, 1, False),
    "submit": (1, 1_000_000, False),
    "round_size": (1, 1_000_000, False),
    "stop_confidence": (0.5, 1, False),
    "stop_margin": (0, 1e9, True),
    "seed": (-(2**63), 2**63 - 1, False),
    "task_seed": (-(2**63), 2**63 - 1, False),
}
_INTEGER = {
    "level", "limit", "n", "concurrency", "max_n", "max_retries", "max_tokens", "budget_tokens",
    "budget_tokens_per_problem", "max_steps", "beam_width", "submit", "round_size", "seed", "task_seed",
}  # fmt: skip
_URL_FLAGS = {"base_url": "--base-url", "judge_base_url": "--judge-base-url", "draft_base_url": "--draft-base-url",
              "reward_url": "--reward-url"}  # fmt: skip
_ENV_FLAGS = ("api_key_env", "judge_api_key_env", "draft_api_key_env", "reward_api_key_env")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_number(name: str, value: Any) -> None:
    """One numeric flag: a real number (not bool), finite, an integer where one is meant, in range."""
    if value is None:
        return
    where = flag(name) if name in _RANGES else name
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{where} must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{where} must be a finite number, got {value}")
    lo, hi, open_lo = _RANGES.get(name, (None, None, False))
    if name in _INTEGER and value != int(value):
        raise UserError(f"{where} must be a whole number, got {value}")
    if lo is not None and (value < lo or (open_lo and value == lo)):
        relation = ">" if open_lo else ">="
        raise UserError(f"{where} must be {relation} {lo:g}" + (f" and <= {hi:g}" if hi is not None else "") + f", got {value}")
    if hi is not None and value > hi:
        raise UserError(f"{where} must be <= {hi:g}, got {value}")


def check_url(url: Any, where: str, error: type[UserError] = UserError) -> str:
    """A URL that parses, is http(s), names a host, has a valid port and no user:password part."""
    try:
        return _check_url(url, where)
    except UserError as exc:
        raise error(str(exc)) from None


def _check_url(url: Any, where: str) -> str:
    if not isinstance(url, str) or not url.strip():
        raise UserError(f"{where} must be an http:// or https:// URL, got {url!r}")
    shown = _without_userinfo(url)
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port  # raises ValueError for a port out of range or not a number
    except ValueError as exc:
        raise UserError(f"{where} {shown!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise UserError(f"{where} must start with http:// or https://, got {shown!r}")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UserError(
            f"{where} {shown!r} carries credentials (user:password@); put the key in an environment variable "
            "and name it with --api-key-env (URLs are stored with the run, keys never are)"
        )
    if not parts.hostname:
        raise UserError(f"{where} {shown!r} names no host")
    if any(ch.isspace() for ch in url) or any(ord(ch) < 32 for ch in url):
        raise UserError(f"{where} {shown!r} contains spaces or control characters")
    del port
    return url


def _without_userinfo(url: str) -> str:
    """The URL with anything before an '@' in its authority blanked, so a refused key is not echoed."""
    if not isinstance(url, str):
        return repr(url)
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url[:200]
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rsplit("@", 1)[1]
    return f"{scheme}://{authority}{slash}{path}"[:200]


def check_env_name(name: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not _ENV_NAME.match(value):
        raise UserError(f"{flag(name)} must name an environment variable (letters, digits, _), got {value!r}")


def check_run_options(options: dict[str, Any]) -> None:
    """Validate the options of a run (names as `infereco.run`'s keywords or the CLI's parameters)."""
    aliases = {"timeout_s": "timeout"}
    for key, value in options.items():
        name = aliases.get(key, key)
        if name in _RANGES:
            check_number(name, value)
        elif name in _URL_FLAGS and value is not None:
            urls: Iterable[Any] = [value] if isinstance(value, str) else value
            for url in urls:
                check_url(url, _URL_FLAGS[name])
        elif name in _ENV_FLAGS:
            check_env_name(name, value)


def same_host(a: str | None, b: str | None) -> bool:
    """Whether two URLs point at one host and port (where the main key may be sent)."""
    if not a or not b:
        return False
    pa, pb = urllib.parse.urlsplit(a), urllib.parse.urlsplit(b)
    default = {"http": 80, "https": 443}
    return (pa.scheme, pa.hostname, pa.port or default.get(pa.scheme)) == (pb.scheme, pb.hostname, pb.port or default.get(pb.scheme))


__all__ = ["check_number", "check_url", "check_run_options", "check_env_name", "same_host"]
