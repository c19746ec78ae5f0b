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
    result = run_python("while True:\n    pass", "", FAST)
    assert not result.passed and result.outcome in ("killed by SIGXCPU", "killed by SIGKILL")
    assert result.seconds < FAST.wall_s


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
