"""How the parent reads the bounded check child (`detbench.checkpoint.model_check`): its one-line JSON answer, its
exit cause and the tail of its stderr, for a one-line error."""

from __future__ import annotations

import subprocess
import sys
import tempfile

from detbench.checkpoint.model_check import exit_cause, read_answer, stderr_tail


def test_the_answer_is_the_last_line_of_stdout_or_none():
    assert read_answer(b"noise\n{\"ok\": true}\n") == {"ok": True}
    assert read_answer(b"") is None and read_answer(b"\xff\xfe") is None and read_answer(b"not json") is None


def test_the_exit_cause_and_the_last_line_of_stderr_make_one_line():
    killed = subprocess.Popen([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
    killed.wait()
    assert exit_cause(killed) == "was killed by signal 9"
    failed = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    failed.wait()
    assert exit_cause(failed) == "exited with status 3"
    with tempfile.TemporaryFile() as stderr:
        stderr.write(b"Traceback (most recent call last):\n  ...\n" + b"MemoryError: " + b"x" * 500 + b"\n\n")
        tail = stderr_tail(stderr)
    assert tail.startswith("MemoryError: ") and len(tail) == 200
    with tempfile.TemporaryFile() as empty:
        assert stderr_tail(empty) == "no message"
