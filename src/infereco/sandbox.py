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

import itertools
import os
import secrets
import shutil
import site
import sysconfig
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
_HARNESS = Path(__file__).with_name("_harness.py")


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
def _namespace_prefix() -> tuple[str, ...]:
    """`unshare` arguments for fresh PID and network namespaces, or () where the OS refuses.

    The program becomes PID 1 of its own namespace: when it exits (or is killed) the kernel kills
    every process left in that namespace, so a double-forked daemon cannot outlive its candidate.
    The network namespace has only a loopback interface of its own (and its own abstract sockets).
    """
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return ()
    tail = ("--pid", "--fork", "--kill-child", "--net")
    for prefix in ((unshare, *tail), (unshare, "--map-root-user", *tail)) if os.geteuid() == 0 else ((unshare, "--map-root-user", *tail),):
        try:
            if subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0:
                return prefix
        except (OSError, subprocess.SubprocessError):
            pass
    return ()


_CGROUP_ROOTS = ("/sys/fs/cgroup/pids", "/sys/fs/cgroup")


@lru_cache(maxsize=1)
def _cgroup_root() -> Path | None:
    """A pids cgroup folder we may create children in (cgroup v1 or v2), or None."""
    if os.geteuid() != 0:
        return None
    for root in _CGROUP_ROOTS:
        base = Path(root) / "infereco-sandbox"
        try:
            base.mkdir(exist_ok=True)
            if (base / "pids.max").exists() or _enable_v2_pids(base):
                return base
        except OSError:
            continue
    return None


def _enable_v2_pids(base: Path) -> bool:
    try:
        (base.parent / "cgroup.subtree_control").write_text("+pids")
        (base / "cgroup.subtree_control").write_text("+pids")
    except OSError:
        return False
    return (base / "pids.max").exists() or True


def _new_cgroup(processes: int) -> Path | None:
    root = _cgroup_root()
    if root is None:
        return None
    path = root / f"c{os.getpid()}-{secrets.token_hex(6)}"
    try:
        path.mkdir()
        (path / "pids.max").write_text(str(processes))
    except OSError:
        _remove_cgroup(path)
        return None
    return path


def _remove_cgroup(path: Path | None) -> None:
    if path is None:
        return
    deadline = time.monotonic() + 2.0
    while True:  # empty once the namespace's last process is reaped, a moment after PID 1 exits
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)


#: where each `packages` policy lets a candidate import from
PACKAGES = ("site", "stdlib")


def _read_paths(packages: str) -> list[str]:
    """What a candidate may read besides its own folder: the interpreter, its libraries, C libraries."""
    exe = os.path.realpath(sys.executable)
    paths = [exe, str(_HARNESS), os.path.join(sys.base_prefix, "lib"), os.path.join(sys.base_prefix, "lib64")]
    for key in ("stdlib", "platstdlib"):
        paths.append(sysconfig.get_paths()[key])
    if packages == "site":
        paths += [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()]
    paths += ["/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib", "/etc/ld.so.cache",
              "/etc/localtime", "/usr/share/zoneinfo", "/dev/urandom", "/dev/zero"]  # fmt: skip
    return list(dict.fromkeys(paths))


_uid_counter = itertools.count()


def _private_uid() -> int:
    """An unprivileged uid of this candidate's own (the fallback when no cgroup can be made)."""
    return 200_000 + (os.getpid() % 10_000) * 1_000 + next(_uid_counter) % 1_000


def run_python(code: str, tests: str = "", limits: Limits = Limits(), *, packages: str = "site") -> SandboxResult:
    """Run `code` followed by `tests` (plain asserts) in the sandbox.

    Passed means the harness proved the program ran to its end (the nonce came back on a pipe,
    see `_harness.py`) and exited 0: an early `sys.exit(0)` or `os._exit(0)` fails. `packages`:
    "site" lets the candidate import what the running interpreter has installed (numpy...), as
    HumanEval's own harness does; "stdlib" runs `python -I -S` with the standard library only.
    """
    if packages not in PACKAGES:
        raise UserError(f"sandbox packages policy {packages!r} is unknown (expected one of: {', '.join(PACKAGES)})")
    workdir = Path(tempfile.mkdtemp(prefix="infereco-sandbox-"))
    cgroup = None
    read_end, write_end = os.pipe()
    try:
        program = workdir / "main.py"
        program.write_text(code + "\n\n" + tests + "\n", encoding="utf-8")
        netns = _namespace_prefix()
        root = os.geteuid() == 0
        cgroup = _new_cgroup(limits.processes) if root else None
        if root and cgroup is None:  # no cgroup: an unprivileged uid of its own carries the process limit
            mode = f"uid:{_private_uid()}"
            os.chown(workdir, int(mode[4:]), int(mode[4:]))
            os.chown(program, int(mode[4:]), int(mode[4:]))
        else:
            mode = "caps" if root else "none"
        os.chmod(workdir, 0o700)
        flags = ["-I"] if packages == "site" else ["-I", "-S"]
        command = [
            *netns, sys.executable, "-I", "-S", str(_JAIL),
            str(limits.cpu_s), str(limits.memory_bytes), str(limits.file_bytes), str(limits.processes),
            str(limits.open_files), mode, str(workdir), str(cgroup or "-"), os.pathsep.join(_read_paths(packages)),
            os.path.realpath(sys.executable), *flags, str(_HARNESS), str(write_end), str(program),
        ]  # fmt: skip
        proof = secrets.token_hex(16).encode()
        started = time.monotonic()
        # output goes to files, not pipes: the file-size limit caps a flood of prints
        with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
            proc = subprocess.Popen(
                command, cwd=workdir, stdin=subprocess.PIPE, stdout=out_f, stderr=err_f, pass_fds=(write_end,),
                start_new_session=True, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            )  # fmt: skip
            os.close(write_end)
            write_end = -1
            try:
                assert proc.stdin is not None
                proc.stdin.write(proof + b"\n")
                proc.stdin.close()
            except OSError:
                pass  # it died before reading: no proof, a failure
            timed_out = False
            try:
                proc.wait(timeout=limits.wall_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(proc.pid)  # unshare, and with it (--kill-child) the namespace's PID 1 and all its processes
                proc.wait()
            proved = _read_proof(read_end) == proof
            out, err = _tail(out_f), _tail(err_f)
            err_f.seek(0)
            first = err_f.readline(400).decode("utf-8", "replace")
        seconds = time.monotonic() - started
        err_text = err
        isolation = ["tempdir", "rlimits", "wall-timeout", "killpg", "completion-proof"]
        if netns:
            isolation += ["pidns", "netns"]
        if first.startswith("infereco-jail: isolation "):
            isolation += first.strip().split(" ", 2)[2].split(",")
            err_text = err_text.replace(first, "", 1)
        isolation = [x for x in isolation if x]
        code_ = proc.returncode
        if timed_out:
            outcome = "timeout"
        elif code_ == 0 and proved:
            outcome = "passed"
        elif code_ == 0:
            outcome = "exited before the tests finished"
        elif code_ is not None and code_ < 0:
            outcome = f"killed by {signal.Signals(-code_).name}"
        elif code_ is not None and code_ > 128 and code_ - 128 in signal.Signals._value2member_map_:
            outcome = f"killed by {signal.Signals(code_ - 128).name}"  # PID 1 of a namespace, reported by unshare
        else:
            outcome = "failed"
        return SandboxResult(
            passed=outcome == "passed", returncode=code_, outcome=outcome, stdout=out,
            stderr=err_text[-4000:], seconds=seconds, isolation=tuple(dict.fromkeys(isolation)),
            workdir=str(workdir),
        )  # fmt: skip
    finally:
        if write_end >= 0:
            os.close(write_end)
        os.close(read_end)
        _remove_cgroup(cgroup)
        shutil.rmtree(workdir, ignore_errors=True)


def _read_proof(fd: int) -> bytes:
    """What the harness wrote on the proof pipe (nothing if it never got there)."""
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 64)
    except (BlockingIOError, OSError):
        return b""


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
