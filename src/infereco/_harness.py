"""Sandbox harness (standard library only): run a candidate program, then prove the tests finished.

Run by `_jail.py` as `python -I [-S] _harness.py FD PROGRAM`. It reads a one-time nonce from stdin,
closes stdin, executes PROGRAM (the candidate's code followed by the tests) as `__main__`, and only
when that returns normally writes the nonce to the pipe FD and exits at once with `os._exit(0)`.

The verdict is "passed" only when the parent reads the nonce back: a candidate that exits early
(`os._exit(0)`, `sys.exit(0)`, `raise SystemExit`), is killed, or ends the process from a thread
never reaches that line, whatever exit status it leaves behind. The nonce is never in the program
file, its environment or its arguments.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    fd, program = int(sys.argv[1]), sys.argv[2]
    proof = sys.stdin.buffer.readline().strip()
    sys.stdin.close()
    os.close(0)
    os.open(os.devnull, os.O_RDONLY)  # fd 0 again, so the candidate's own input() sees EOF
    with open(program, encoding="utf-8") as f:
        code = compile(f.read(), program, "exec")
    sys.argv = [program]
    namespace = {"__name__": "__main__", "__file__": program, "__builtins__": __builtins__}
    exec(code, namespace)  # an exception or SystemExit leaves here: no proof is written
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(fd, proof)
    os._exit(0)  # no atexit handler or lingering thread of the candidate runs after the proof


if __name__ == "__main__":
    main()
