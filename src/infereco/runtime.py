"""Idealized runtime: what a local request costs in machine time, whatever else the machine is doing.

Charging a local request the wall time it took makes the same samples cost 3× more on a busy machine
than on an idle one (docs/benchmarks.md). Instead, the model is profiled once on this machine: the
seconds per prompt token of prefill, and the seconds per generated token when B sequences are
decoded together, for each batch size B the server runs (1, 2, 4, … up to its slots). A request's
tokens then give its seconds (`RuntimeProfile.seconds`), which times `usd_per_hour` is its cost:
a function of the tokens alone, as a hosted API's price is ("Cheaply Evaluating Inference
Efficiency Metrics": idealized runtime). Wall time is still recorded beside it (`busy_s`).

The profile is measured against the running llama.cpp server: one short request per batch size,
timed by the server process's CPU time divided by its threads (what the work needed, even when
other processes share the cores) and by the wall clock; the smaller of the two is kept, since other
work only ever slows a measurement down (`REPEATS` > 1 also keeps the fastest repeat). On a heavily
oversubscribed machine even CPU time is inflated (threads that spin while waiting for each other):
measure on a quiet machine, or point `INFERECO_RUNTIME_PROFILE` at a profile measured on one. It is cached on disk
per model file, server settings and machine, so it is measured once, not per run.
`INFERECO_RUNTIME_PROFILE=FILE` uses a profile from a JSON file instead (e.g. one measured on a
quiet machine).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import platform
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path

import httpx

from infereco.errors import BackendError, UserError
from infereco.prices import RuntimeProfile

#: generated tokens per sequence when measuring decode: long enough that the prompt is a small part
DECODE_TOKENS = 16
#: prompt tokens (about) when measuring prefill
PREFILL_TEXT = " ".join(["the cost of a correct answer is what one pays for every attempt"] * 16)
REPEATS = 1


def machine() -> str:
    """The CPU model and core count: what the profile is valid for."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name} x{os.cpu_count()}"


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds a process has used so far (Linux), or None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def batch_sizes(slots: int) -> list[int]:
    sizes = [b for b in (1, 2, 4, 8, 16, 32, 64, 128) if b < slots]
    return sizes + [slots]


def profile_key(model_path: Path, settings: dict[str, object]) -> str:
    """Model file (name, size, modification time), server settings and machine, hashed."""
    try:
        st = model_path.stat()
        model = [model_path.name, st.st_size, int(st.st_mtime)]
    except OSError:
        model = [str(model_path)]
    blob = json.dumps([model, settings, machine()], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def profile_path(key: str) -> Path:
    from infereco.backends.models import cache_dir

    return cache_dir() / "profiles" / f"{key}.json"


def read_profile(path: Path) -> RuntimeProfile:
    try:
        return RuntimeProfile.model_validate_json(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a runtime profile ({' '.join(str(exc).split())[:160]})") from None


async def cached_profile(key: str, measure: Callable[[], Awaitable[RuntimeProfile]]) -> RuntimeProfile:
    """The profile stored under `key`, else `measure()`d and stored (once: a lock file keeps two
    processes from profiling the same model at the same time, which would also slow both)."""
    override = os.environ.get("INFERECO_RUNTIME_PROFILE")
    if override:
        return read_profile(Path(override))
    path = profile_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
        try:
            if path.is_file():
                try:
                    return read_profile(path)
                except UserError:
                    pass  # a damaged cache entry: measure again
            profile = await measure()
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(profile.model_dump_json(indent=2))
            tmp.replace(path)
            return profile
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


async def measure_profile(
    base_url: str, model: str, slots: int, *, pid: int | None = None, threads: int = 1, timeout_s: float = 600.0
) -> RuntimeProfile:
    """Profile a llama.cpp server: prefill seconds per token, and decode seconds per token at each batch size.

    With the server's `pid`, each request is also timed by the CPU time the server used over its
    `threads`; the smaller of that and the wall time is kept (see the module docstring)."""
    url = f"{base_url.rstrip('/')}/chat/completions"
    async with httpx.AsyncClient(timeout=timeout_s) as client:

        async def ask(content: str, n: int, max_tokens: int) -> tuple[float, dict]:
            body = {
                "model": model, "messages": [{"role": "user", "content": content}], "n": n,
                "max_tokens": max_tokens, "temperature": 0.8, "seed": 1, "cache_prompt": False, "ignore_eos": True,
            }  # fmt: skip
            started, cpu = time.perf_counter(), cpu_seconds(pid)
            response = await client.post(url, json=body)
            elapsed = time.perf_counter() - started
            cpu_after = cpu_seconds(pid)
            if cpu is not None and cpu_after is not None:
                elapsed = min(elapsed, (cpu_after - cpu) / max(threads, 1))
            if response.status_code != 200:
                raise BackendError(f"{url}: profiling the model failed with HTTP {response.status_code}")
            return elapsed, response.json()

        await ask("Hello", 1, 4)  # warm-up: first-request allocations are not the model's speed
        prefill = float("inf")
        for _ in range(REPEATS):
            elapsed, data = await ask(PREFILL_TEXT, 1, 1)
            timings = data.get("timings") or {}
            tokens = timings.get("prompt_n") or (data.get("usage") or {}).get("prompt_tokens") or 1
            seconds = min(timings["prompt_ms"] / 1000, elapsed) if "prompt_ms" in timings else elapsed
            prefill = min(prefill, seconds / max(int(tokens), 1))
        decode: dict[int, float] = {}
        for batch in batch_sizes(slots):
            best = float("inf")
            for _ in range(REPEATS):
                elapsed, data = await ask("Count slowly.", batch, DECODE_TOKENS)
                prompt = int((data.get("usage") or {}).get("prompt_tokens") or 0)
                best = min(best, max(elapsed - prompt * prefill, 1e-9) / (batch * DECODE_TOKENS))
            decode[batch] = best
    return RuntimeProfile(
        prefill_s_per_token=prefill, decode_s_per_token=decode, machine=machine(),
        measured_at=datetime.now(tz=timezone.utc).isoformat(timespec="seconds"),
    )  # fmt: skip
