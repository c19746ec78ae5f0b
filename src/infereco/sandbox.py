"""Run untrusted generated Python against unit tests, contained.

A model's code may loop forever, allocate without end, fork without end, fill the disk, write
anywhere it can, or call out to the network. Each run gets, in layers, whatever the OS allows:

- a fresh temporary working directory, removed afterwards, and an isolated interpreter (`-I -S`:
  no user site, no environment, no PYTHONPATH);
- resource limits (`setrlimit`): CPU seconds, address space, file size, processes, open files,
  no core dumps; a process over its CPU or file-size limit is killed by the kernel;
- a wall-clock timeout, after which the whole process group is killed (`killpg`), so children and
  grandchildren (a fork bomb) go too;
- Landlock (Linux >= 5.13): writes only inside the temporary directory (reads stay allowed: the
  interpreter needs its standard library); with Landlock ABI >= 4 no TCP connect or bind; with
  ABI >= 6 no signals to processes outside the sandbox;
- a network namespace with no interfaces but loopback (`unshare -n`), where the OS permits it;
- when run as root, the code runs as `nobody`: the kernel does not apply RLIMIT_NPROC to root.

`SandboxResult.isolation` says which layers applied on this machine; docs/reliability.md lists what
is contained where a layer is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from infereco.errors import UserError

_JAIL = Path(__file__).with_name("_jail.py")
NOBODY = 65534


@dataclass(frozen=True)
class Limits:
    """What one run of generated code may use."""

    cpu_s: int = 5
    memory_bytes: int = 1 << 30
    file_bytes: int = 8 << 20
    processes: int = 32
    open_files: int = 64
    wall_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("cpu_s", "memory_bytes", "file_bytes", "processes", "open_files", "wall_s"):
            if not getattr(self, name) > 0:
                raise UserError(f"sandbox limit {name} must be > 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class SandboxResult:
    passed: bool
    returncode: int | None
    #: "passed", "failed", "timeout", or "killed by SIGXCPU" and the like
    outcome: str
    stdout: str
    stderr: str
    seconds: float
    isolation: tuple[str, ...]
    #: the temporary working directory (removed when the run ends)
    workdir: str = ""


@lru_cache(maxsize=1)
def _netns_prefix() -> tuple[str, ...]:
    """`unshare` arguments that give the child an empty network namespace, or () where not allowed."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return ()
    prefix = (unshare, "--net") if os.geteuid() == 0 else (unshare, "--map-root-user", "--net")
    try:
        ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return prefix if ok else ()


def run_python(code: str, tests: str = "", limits: Limits = Limits()) -> SandboxResult:
    """Run `code` followed by `tests` (plain asserts) in the sandbox; passed = exit status 0."""
    workdir = Path(tempfile.mkdtemp(prefix="infereco-sandbox-"))
    try:
        program = workdir / "main.py"
        program.write_text(code + "\n\n" + tests + "\n", encoding="utf-8")
        drop = os.geteuid() == 0
        if drop:  # the unprivileged user must own its working directory
            os.chown(workdir, NOBODY, NOBODY)
            os.chown(program, NOBODY, NOBODY)
        netns = _netns_prefix()
        command = [
            *netns, sys.executable, "-I", "-S", str(_JAIL),
            str(limits.cpu_s), str(limits.memory_bytes), str(limits.file_bytes), str(limits.processes),
            str(limits.open_files), "1" if drop else "0", str(workdir), sys.executable, "-I", "-S", str(program),
        ]  # fmt: skip
        started = time.monotonic()
        # output goes to files, not pipes: the file-size limit caps a flood of prints
        with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
            proc = subprocess.Popen(
                command, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out_f, stderr=err_f,
                start_new_session=True, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            )  # fmt: skip
            timed_out = False
            try:
                proc.wait(timeout=limits.wall_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(proc.pid)  # children left behind (a fork bomb, a daemon) go with the group
                proc.wait()
            out, err = _tail(out_f), _tail(err_f)
            err_f.seek(0)
            first = err_f.readline(200).decode("utf-8", "replace")
        seconds = time.monotonic() - started
        err_text = err
        isolation = ["tempdir", "rlimits", "wall-timeout", "killpg"] + (["netns"] if netns else [])
        if drop:
            isolation.append("uid-nobody")
        if first.startswith("infereco-jail: isolation "):
            isolation += first.strip().split(" ", 2)[2].split(",")
            err_text = err_text.replace(first, "", 1)
        isolation = [x for x in isolation if x]
        code_ = proc.returncode
        if timed_out:
            outcome = "timeout"
        elif code_ == 0:
            outcome = "passed"
        elif code_ is not None and code_ < 0:
            outcome = f"killed by {signal.Signals(-code_).name}"
        else:
            outcome = "failed"
        return SandboxResult(
            passed=outcome == "passed", returncode=code_, outcome=outcome, stdout=out,
            stderr=err_text[-4000:], seconds=seconds, isolation=tuple(dict.fromkeys(isolation)),
            workdir=str(workdir),
        )  # fmt: skip
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _tail(f: object, size: int = 4000) -> str:
    """The last `size` bytes a child wrote to an output file, as text."""
    f.seek(0, os.SEEK_END)  # type: ignore[attr-defined]
    end = f.tell()  # type: ignore[attr-defined]
    f.seek(max(0, end - size))  # type: ignore[attr-defined]
    return f.read().decode("utf-8", "replace")  # type: ignore[attr-defined]


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


__all__ = ["Limits", "SandboxResult", "run_python"]
