"""Sandbox launcher (standard library only): limit this process, then exec the interpreter on the code.

Run by `infereco.sandbox` as `python -I -S _jail.py CPU_S MEM FSIZE NPROC NOFILE DROP WORKDIR PROGRAM...`.
Limits set here are inherited across `exec` and by every child. It prints one line on stderr,
`infereco-jail: isolation a,b,c`, naming the layers it could apply, before exec'ing PROGRAM.
"""

from __future__ import annotations

import ctypes
import os
import resource
import struct
import sys

NOBODY = 65534
# Landlock (linux/landlock.h); the syscall numbers are the same on every architecture
SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38
FS_WRITE_FILE = 1 << 1
# every right that changes the file system: write, remove, make (char, dir, reg, sock, fifo, block, sym)
FS_CHANGE_V1 = FS_WRITE_FILE | (1 << 4) | (1 << 5) | sum(1 << b for b in range(6, 13))
FS_REFER, FS_TRUNCATE = 1 << 13, 1 << 14  # ABI 2, ABI 3
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6


def _limit(kind: int, value: int, grace: int = 0) -> None:
    """Soft limit `value`, hard limit `value + grace` (never above the hard limit we already have)."""
    _, hard = resource.getrlimit(kind)
    cap = (lambda v: v) if hard == resource.RLIM_INFINITY else (lambda v: min(v, hard))
    resource.setrlimit(kind, (cap(value), cap(value + grace)))


def _landlock(workdir: str) -> list[str]:
    """Allow changes to the file system only under `workdir`; no TCP; no signals out. Returns what applied."""
    if not sys.platform.startswith("linux"):
        return []
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    if abi < 1:
        return []
    fs = FS_CHANGE_V1 | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0)
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX | SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("QQQ", fs, net, scoped) if abi >= 6 else struct.pack("QQ", fs, net) if abi >= 4 else struct.pack("Q", fs)
    buf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = libc.syscall(SYS_CREATE_RULESET, buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        return []
    try:
        for path, access in ((workdir, fs), ("/dev/null", FS_WRITE_FILE | (FS_TRUNCATE if abi >= 3 else 0))):
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
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
    return ["landlock-fs"] + (["landlock-net"] if net else []) + (["landlock-signal"] if scoped else [])


def main(argv: list[str]) -> None:
    cpu_s, memory, fsize, nproc, nofile = (int(x) for x in argv[:5])
    drop, workdir, program = argv[5] == "1", argv[6], argv[7:]
    os.chdir(workdir)
    _limit(resource.RLIMIT_CPU, cpu_s, grace=1)  # SIGXCPU at the soft limit, SIGKILL a second later
    _limit(resource.RLIMIT_AS, memory)
    _limit(resource.RLIMIT_FSIZE, fsize)
    _limit(resource.RLIMIT_NOFILE, nofile)
    _limit(resource.RLIMIT_CORE, 0)
    if drop:  # root is exempt from RLIMIT_NPROC and from file permissions: become nobody
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    _limit(resource.RLIMIT_NPROC, nproc)
    if not os.access(program[0], os.X_OK):  # e.g. an interpreter under /root, which nobody cannot enter
        usable = [p for p in ("/usr/local/bin/python3", "/usr/bin/python3") if os.access(p, os.X_OK)]
        if not usable:
            sys.stderr.write(f"infereco-jail: no Python interpreter that uid {os.getuid()} may run\n")
            sys.exit(126)
        program = [usable[0], *program[1:]]
    applied = _landlock(workdir)
    sys.stderr.write(f"infereco-jail: isolation {','.join(applied)}\n")
    sys.stderr.flush()
    os.environ.clear()
    os.environ.update({"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir})
    os.execv(program[0], program)


if __name__ == "__main__":
    main(sys.argv[1:])
