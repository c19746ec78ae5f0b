"""Generated code runs contained: loops, fork bombs, huge allocations, escapes and network calls all fail safely."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from infereco.checkers import PythonTestsChecker, get_checker
from infereco.sandbox import Limits, run_python

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox's limits are Linux-specific")
FAST = Limits(cpu_s=1, wall_s=3.0)


def _alive(workdir: str) -> list[int]:
    """Pids of processes still running the sandboxed program (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if workdir.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def test_passing_and_failing_code() -> None:
    ok = run_python("def add(a, b):\n    return a + b", "assert add(2, 3) == 5", FAST)
    assert ok.passed and ok.outcome == "passed" and {"tempdir", "rlimits", "killpg"} <= set(ok.isolation)
    bad = run_python("def add(a, b):\n    return a - b", "assert add(2, 3) == 5", FAST)
    assert not bad.passed and bad.outcome == "failed" and "AssertionError" in bad.stderr
    assert not Path(ok.workdir).exists()  # the working directory is removed


def test_the_checker_grades_the_last_code_block() -> None:
    checker = get_checker("python-tests")
    assert isinstance(checker, PythonTestsChecker)
    text = "First try:\n```python\ndef sq(x): return x\n```\nFixed:\n```python\ndef sq(x):\n    return x * x\n```"
    code = checker.extract(text)
    assert code == "def sq(x):\n    return x * x"
    assert checker.is_correct(code, "assert sq(3) == 9")
    assert not checker.is_correct("def sq(x): return x", "assert sq(3) == 9")
    assert not checker.is_correct(None, "assert True")


def test_an_infinite_loop_is_stopped_by_the_cpu_limit() -> None:
    result = run_python("while True:\n    pass", "", Limits(cpu_s=1, wall_s=60.0))  # the CPU limit comes first, however busy the machine
    assert not result.passed and result.outcome in ("killed by SIGXCPU", "killed by SIGKILL")


def test_a_sleeping_program_is_stopped_by_the_wall_timeout() -> None:
    result = run_python("import time\ntime.sleep(60)", "", Limits(cpu_s=1, wall_s=1.0))
    assert not result.passed and result.outcome == "timeout" and result.seconds < 5


def test_a_fork_bomb_is_contained_and_leaves_no_process_behind() -> None:
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    result = run_python(bomb, "", Limits(cpu_s=2, processes=16, wall_s=2.0))
    assert not result.passed and result.seconds < 10
    deadline = time.monotonic() + 5
    while _alive(result.workdir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _alive(result.workdir) == []
    assert os.getloadavg() is not None  # the test process itself is fine


def test_a_huge_allocation_fails_inside_the_sandbox() -> None:
    result = run_python("x = bytearray(64 * 1024**3)\nprint('allocated')", "", FAST)
    assert not result.passed and "MemoryError" in result.stderr and "allocated" not in result.stdout


def test_a_huge_file_is_cut_at_the_file_size_limit() -> None:
    result = run_python("open('big', 'wb').write(b'x' * (64 << 20))", "", Limits(cpu_s=2, file_bytes=1 << 20))
    assert not result.passed
    assert "File too large" in result.stderr or result.outcome == "killed by SIGXFSZ"


def test_a_write_outside_the_temp_dir_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    os.chmod(tmp_path, 0o777)  # plain file permissions would allow it: the sandbox must refuse
    result = run_python(f"open({str(target)!r}, 'w').write('out')", "", FAST)
    if not {"landlock-fs", "uid-nobody"} & set(result.isolation) and result.passed:
        pytest.skip(f"no file-system isolation on this machine ({result.isolation}); see docs/reliability.md")
    assert not result.passed and "PermissionError" in result.stderr
    assert not target.exists()
    inside = run_python("open('inside.txt', 'w').write('ok')\nassert open('inside.txt').read() == 'ok'", "", FAST)
    assert inside.passed  # the temp dir itself is writable


def test_no_network_from_the_sandbox() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[object] = []
    listener.settimeout(0.5)  # the run below is over by then: a connection would have been accepted
    thread = threading.Thread(target=lambda: accepted.append(_accept(listener)), daemon=True)
    thread.start()
    code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'leak')"
    result = run_python(code, "", FAST)
    thread.join(5)
    listener.close()
    if not {"netns", "landlock-net"} & set(result.isolation) and result.passed:
        pytest.skip(f"no network isolation on this machine ({result.isolation}); see docs/reliability.md")
    assert not result.passed and accepted == [None]


def _accept(listener: socket.socket) -> object:
    try:
        conn, _ = listener.accept()
        conn.close()
        return "connected"
    except OSError:
        return None


# --- soundness: the verdict comes from the tests' own completion; nothing outlives a candidate ---

TESTS = "assert add(2, 3) == 5"
GOOD = "def add(a, b):\n    return a + b\n"


@pytest.mark.parametrize(
    "escape",
    [
        "import os\nos._exit(0)",
        "import sys\nsys.exit(0)",
        "raise SystemExit",
        "raise SystemExit(0)",
        "import os, threading\nthreading.Thread(target=lambda: os._exit(0)).start()\nimport time\ntime.sleep(5)",
        "import atexit, os\natexit.register(lambda: os._exit(0))\nraise RuntimeError('boom')",
        "def add(a, b):\n    import sys\n    sys.exit(0)",
        "def add(a, b):\n    raise SystemExit(0)",
        "print('1' * 32)\nimport os\nos.write(3, b'0' * 32)\nos._exit(0)",  # guessing at the proof pipe
    ],
)
def test_an_early_exit_fails_whatever_its_status(escape: str) -> None:
    result = run_python(GOOD + escape, "assert False, 'the tests must run to the end'\n" + TESTS, FAST)
    assert not result.passed and result.outcome != "passed"
    assert run_python(GOOD, TESTS, FAST).passed  # the same harness passes a program that finishes


def test_a_daemon_dies_with_its_candidate(tmp_path: Path) -> None:
    daemon = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(60)\n"  # a double-forked, session-leading daemon
        "    os._exit(0)\n"
        "time.sleep(0.3)\n"
    )
    result = run_python(GOOD + daemon, TESTS, FAST)
    assert result.passed and "pidns" in result.isolation
    deadline = time.monotonic() + 5
    while _alive(result.workdir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _alive(result.workdir) == []


def test_no_unix_sockets(tmp_path: Path) -> None:
    path = tmp_path / "daemon.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    os.chmod(tmp_path, 0o777)
    os.chmod(path, 0o777)  # file permissions would allow anyone: the sandbox must refuse
    server.listen(1)
    server.settimeout(0.5)
    abstract = socket.socket(socket.AF_UNIX)
    name = f"\0infereco-test-{os.getpid()}"
    abstract.bind(name)
    abstract.listen(1)
    abstract.settimeout(0.5)
    try:
        for target in (str(path), name):
            code = f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({target!r})\ns.sendall(b'leak')"
            result = run_python(code, "", FAST)
            assert not result.passed
            assert "seccomp-no-unix-sockets" in result.isolation or "netns" in result.isolation
        for listener in (server, abstract):
            with pytest.raises(OSError):
                listener.accept()  # nobody connected
    finally:
        server.close()
        abstract.close()


def test_no_reading_other_candidates_or_the_store(tmp_path: Path) -> None:
    secret = tmp_path / "runs.db"
    secret.write_text("the store")
    os.chmod(tmp_path, 0o755)
    os.chmod(secret, 0o644)  # readable by anyone, by file permissions
    other = run_python("open('mine.txt', 'w').write('x')\nimport os\nprint(os.getcwd())\nimport time\ntime.sleep(1.5)", "", FAST)
    for path in (str(secret), "/tmp", str(Path(other.workdir).parent)):
        result = run_python(f"import os\nprint(open({path!r}).read() if os.path.isfile({path!r}) else os.listdir({path!r}))", "", FAST)
        assert not result.passed and "PermissionError" in result.stderr, (path, result.stderr)
    # while one candidate runs, the next cannot read its folder
    found: dict[str, object] = {}
    running = threading.Thread(target=lambda: found.setdefault("a", run_python("import time\nopen('a.txt','w').write('a')\ntime.sleep(2)", "", FAST)))
    running.start()
    time.sleep(0.8)
    dirs = [p for p in Path(tempfile_root()).glob("infereco-sandbox-*")]
    probe = run_python("import sys\nfor d in sys.argv[1:]: pass\n" + "".join(
        f"try:\n    open({str(d / 'a.txt')!r}).read()\n    print('LEAK')\nexcept OSError:\n    pass\n" for d in dirs), "", FAST)
    running.join()
    assert probe.passed and "LEAK" not in probe.stdout


def tempfile_root() -> str:
    import tempfile

    return tempfile.gettempdir()


def test_one_candidates_fork_bomb_does_not_starve_the_next() -> None:
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    results: dict[str, object] = {}
    thread = threading.Thread(target=lambda: results.setdefault("bomb", run_python(bomb, "", Limits(cpu_s=2, processes=16, wall_s=4.0))))
    thread.start()
    time.sleep(1.0)  # the bomb is at its process limit now
    spawner = "import subprocess, sys\nfor _ in range(4):\n    subprocess.run([sys.executable, '-c', 'pass'], check=True)\n"
    ok = run_python(GOOD + spawner, TESTS, Limits(cpu_s=5, processes=16, wall_s=10.0))
    thread.join()
    assert ok.passed, ok.stderr
    assert "cgroup-pids" in ok.isolation or "uid-unprivileged" in ok.isolation


def test_the_packages_policy() -> None:
    pytest.importorskip("numpy")
    code = "import numpy\ndef add(a, b):\n    return int(numpy.add(a, b))\n"
    assert run_python(code, TESTS, FAST, packages="site").passed
    stdlib = run_python(code, TESTS, FAST, packages="stdlib")
    assert not stdlib.passed and "ModuleNotFoundError" in stdlib.stderr
