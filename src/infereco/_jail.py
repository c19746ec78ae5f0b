"""Sandbox launcher (standard library only): confine this process, then exec the interpreter on the code.

Run by `infereco.sandbox` (inside fresh PID and network namespaces) as
`python -I -S _jail.py CPU_S MEM FSIZE NPROC NOFILE MODE WORKDIR CGROUP READ_PATHS PROGRAM...`:
- CGROUP: a pids cgroup directory this process joins first ("-": none), so every process the
  candidate starts counts against that candidate's own process limit;
- MODE: "caps" stays uid 0 but drops every capability for good (bounding set, securebits,
  capset), "uid:N" switches to the unprivileged uid N (the fallback without a cgroup: the kernel
  applies RLIMIT_NPROC per uid, and never to root), "none" changes nothing (an unprivileged user);
- READ_PATHS: the only paths outside WORKDIR that may be read or executed (os.pathsep-separated):
  the interpreter, its standard library, the site-packages the policy allows, the C libraries.
Limits set here are inherited across `exec` and by every child. It prints one line on stderr,
`infereco-jail: isolation a,b,c`, naming the layers it could apply, before exec'ing PROGRAM.
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import struct
import sys
from typing import Callable

# Landlock (linux/landlock.h); the syscall numbers are the same on every architecture
SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
# every right that changes the file system: write, remove, make (char, dir, reg, sock, fifo, block, sym)
FS_CHANGE_V1 = FS_WRITE_FILE | (1 << 4) | (1 << 5) | sum(1 << b for b in range(6, 13))
FS_REFER, FS_TRUNCATE = 1 << 13, 1 << 14  # ABI 2, ABI 3
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6
# capabilities and seccomp
PR_CAPBSET_DROP, PR_SET_SECUREBITS, PR_SET_SECCOMP = 24, 28, 22
SECUREBITS_LOCKED_NOROOT = 0x3F  # keep-caps off, no setuid fixup, no root: each bit set and locked
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
AF_UNIX, EACCES = 1, 13
# (audit arch, socket syscall number) per machine
SECCOMP_ARCH = {"x86_64": (0xC000003E, 41), "aarch64": (0xC00000B7, 198)}


def _limit(kind: int, value: int, grace: int = 0) -> None:
    """Soft limit `value`, hard limit `value + grace` (never above the hard limit we already have)."""
    _, hard = resource.getrlimit(kind)
    cap = (lambda v: v) if hard == resource.RLIM_INFINITY else (lambda v: min(v, hard))
    resource.setrlimit(kind, (cap(value), cap(value + grace)))


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return libc


def _landlock(workdir: str, read_paths: list[str]) -> list[str]:
    """Reads only of `read_paths` and `workdir`, changes only under `workdir`; no TCP; no signals or
    abstract sockets out. Returns the layers that applied."""
    if not sys.platform.startswith("linux"):
        return []
    libc = _libc()
    abi = libc.syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    if abi < 1:
        return []
    fs = FS_READ | FS_CHANGE_V1 | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0)
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX | SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("QQQ", fs, net, scoped) if abi >= 6 else struct.pack("QQ", fs, net) if abi >= 4 else struct.pack("Q", fs)
    buf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = libc.syscall(SYS_CREATE_RULESET, buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        return []
    dev_null = FS_READ_FILE | FS_WRITE_FILE | (FS_TRUNCATE if abi >= 3 else 0)
    rules = [(workdir, fs), ("/dev/null", dev_null)] + [(p, FS_READ) for p in read_paths]
    try:
        for path, access in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # a library folder this machine does not have
            try:
                if not os.path.isdir(path):
                    access &= ~FS_READ_DIR & ~(FS_CHANGE_V1 & ~FS_WRITE_FILE) & ~FS_REFER
                rule = struct.pack("=Qi", access, fd)
                rbuf = ctypes.create_string_buffer(rule, len(rule))
                if libc.syscall(SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(RULE_PATH_BENEATH), rbuf, ctypes.c_uint32(0)) != 0:
                    return []
            finally:
                os.close(fd)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return []
        if libc.syscall(SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            return []
    finally:
        os.close(ruleset)
    return ["landlock-fs", "landlock-read"] + (["landlock-net"] if net else []) + (["landlock-signal"] if scoped else [])


def _drop_capabilities() -> bool:
    """Uid 0 without any capability, now or after exec: no mount, no ptrace, no raw sockets."""
    libc = _libc()
    if libc.prctl(PR_SET_SECUREBITS, SECUREBITS_LOCKED_NOROOT, 0, 0, 0) != 0:
        return False
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() != 22:  # EINVAL: no such cap
            return False
    header = struct.pack("Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = ctypes.create_string_buffer(24)  # two (effective, permitted, inheritable) triples, all zero
    return libc.capset(ctypes.create_string_buffer(header, len(header)), data) == 0


def _no_unix_sockets() -> bool:
    """A seccomp filter: socket(AF_UNIX, ...) fails with EACCES (pathname sockets are not namespaced:
    a daemon's socket file would otherwise be reachable); syscalls of another ABI are refused."""
    known = SECCOMP_ARCH.get(platform.machine())
    if known is None or not sys.platform.startswith("linux"):
        return False
    arch, socket_nr = known
    deny = SECCOMP_RET_ERRNO | EACCES
    insns = [
        (0x20, 0, 0, 4),  # A = arch
        (0x15, 1, 0, arch),  # arch ok -> skip the next
        (0x06, 0, 0, SECCOMP_RET_ERRNO | 1),  # other ABI: EPERM
        (0x20, 0, 0, 0),  # A = syscall number
        (0x35, 0, 1, 0x40000000),  # x32 numbers: refused
        (0x06, 0, 0, SECCOMP_RET_ERRNO | 1),
        (0x15, 0, 3, socket_nr),  # not socket() -> allow
        (0x20, 0, 0, 16),  # A = low 32 bits of the first argument (domain)
        (0x15, 0, 1, AF_UNIX),  # not AF_UNIX -> allow
        (0x06, 0, 0, deny),
        (0x06, 0, 0, SECCOMP_RET_ALLOW),
    ]
    raw = b"".join(struct.pack("HBBI", *i) for i in insns)
    filt = ctypes.create_string_buffer(raw, len(raw))
    prog = struct.pack("HxxxxxxP", len(insns), ctypes.addressof(filt))
    pbuf = ctypes.create_string_buffer(prog, len(prog))
    libc = _libc()
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return False
    return libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(pbuf), 0, 0) == 0


def _join_cgroup(cgroup: str) -> bool:
    try:
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
        return True
    except OSError:
        return False


def main(argv: list[str]) -> None:
    cpu_s, memory, fsize, nproc, nofile = (int(x) for x in argv[:5])
    mode, workdir, cgroup, read_paths, program = argv[5], argv[6], argv[7], argv[8], argv[9:]
    os.chdir(workdir)
    applied: list[str] = []
    if cgroup != "-" and _join_cgroup(cgroup):
        applied.append("cgroup-pids")
    _limit(resource.RLIMIT_CPU, cpu_s, grace=1)  # SIGXCPU at the soft limit, SIGKILL a second later
    _limit(resource.RLIMIT_AS, memory)
    _limit(resource.RLIMIT_FSIZE, fsize)
    _limit(resource.RLIMIT_NOFILE, nofile)
    _limit(resource.RLIMIT_CORE, 0)
    if os.getpid() == 1:  # PID 1 of the candidate's namespace: stay as its init, run it as a child
        _init(lambda: _confine_and_exec(mode, workdir, read_paths, program, applied, nproc))
    _confine_and_exec(mode, workdir, read_paths, program, applied, nproc)


def _init(child: Callable[[], None]) -> None:
    """Fork the candidate and exit with its status (128 + signal when killed). When this PID 1
    exits, the kernel kills every process left in the namespace. Signals the candidate sends
    itself work as usual, which they would not for a PID 1 without handlers."""
    pid = os.fork()
    if pid == 0:
        child()
    while True:
        try:
            done, status = os.waitpid(-1, 0)  # reap orphans too, so their zombies do not count
        except ChildProcessError:
            os._exit(1)
        if done == pid:
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
            os._exit(code)


def _confine_and_exec(mode: str, workdir: str, read_paths: str, program: list[str], applied: list[str], nproc: int) -> None:
    if mode.startswith("uid:"):  # root is exempt from RLIMIT_NPROC and from file permissions
        uid = int(mode[4:])
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        applied.append("uid-unprivileged")
    elif mode == "caps" and _drop_capabilities():
        applied.append("no-capabilities")
    _limit(resource.RLIMIT_NPROC, nproc)
    if not os.access(program[0], os.X_OK):  # e.g. an interpreter under /root, which the uid cannot enter
        usable = [p for p in ("/usr/local/bin/python3", "/usr/bin/python3") if os.access(p, os.X_OK)]
        if not usable:
            sys.stderr.write(f"infereco-jail: no Python interpreter that uid {os.getuid()} may run\n")
            os._exit(126)
        program = [usable[0], *program[1:]]
        read_paths += os.pathsep + usable[0]
    applied += _landlock(workdir, [p for p in read_paths.split(os.pathsep) if p])
    if _no_unix_sockets():
        applied.append("seccomp-no-unix-sockets")
    sys.stderr.write(f"infereco-jail: isolation {','.join(applied)}\n")
    sys.stderr.flush()
    os.environ.clear()
    os.environ.update({
        "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir,
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",  # threads count as processes
    })  # fmt: skip
    os.execv(program[0], program)


if __name__ == "__main__":
    main(sys.argv[1:])
