"""Ray's processes of `detbench sweep --ray local` end with the sweep, however it ends (`kill -9` included).

`ray.init(address="local")` starts Ray's processes as children of the sweep and ties the direct ones to it
(PR_SET_PDEATHSIG), but the raylet's own children, `ray::DashboardAgent` and `ray::RuntimeEnvAgent`, outlive a
killed sweep by about a minute: they notice that the raylet is gone, then wait up to 60 s on the dead GCS to
report it. So the sweep first starts this reaper: a small process in its own session (a Ctrl-C or a `kill` of
the sweep's process group does not reach it), reading one end of a pipe whose other end only the sweep holds.
Ray starts in a private empty folder the sweep made for it (mkdtemp; see ray_executor.empty_working_folder),
which every process Ray starts inherits as its working folder: the GCS, the raylet, its agents, its workers and
the studies they run. When the pipe reads end-of-file (the sweep shut Ray down and exited, or was killed), the
reaper SIGKILLs every process of this user that works in that folder, until none is left (at most REAP_S),
removes the folder if it is empty, and exits. (A marker in the environment would not do: Ray's agents overwrite
theirs with their process title, and /proc shows an empty one.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from detbench.proc import python_module

REAP_S = 10.0  # the longest the reaper keeps killing processes that appear while it does


class Reaper:
    """The reaper process for Ray's private `folder` (absolute), and the pipe's end this process holds."""

    def __init__(self, folder: str) -> None:
        self.folder = os.path.abspath(folder)
        read_end, self._write_end = os.pipe()  # neither is inherited by any other child
        try:
            self.process = subprocess.Popen(
                python_module(sys.executable, "detbench.sweep.reaper", self.folder), stdin=read_end,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/", start_new_session=True)
        except BaseException:
            os.close(self._write_end)
            raise
        finally:
            os.close(read_end)

    def stop(self) -> None:
        """Close the pipe (the reaper kills whatever of Ray is left) and wait for the reaper to finish."""
        if self._write_end >= 0:
            os.close(self._write_end)
            self._write_end = -1
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=REAP_S + 5)


def _works_in(entry: Path, folder: str) -> bool:
    try:
        return os.readlink(entry / "cwd") in (folder, f"{folder} (deleted)")
    except OSError:  # gone, or another user's
        return False


def ray_pids(folder: str, spare: frozenset[int] = frozenset(), proc: Path = Path("/proc")) -> list[int]:
    """The processes (of this user: others' cannot be read) working in `folder`, but for this one and `spare`."""
    spare = spare | {os.getpid()}
    return [int(entry.name) for entry in proc.iterdir()
            if entry.name.isdigit() and int(entry.name) not in spare and _works_in(entry, folder)]


def reap(folder: str, spare: frozenset[int] = frozenset(), limit_s: float = REAP_S) -> int:
    """SIGKILL every process working in `folder` (but `spare`) until none is left or `limit_s` passed; how many
    were."""
    killed: set[int] = set()
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        pids = ray_pids(folder, spare)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
        time.sleep(0.05)
    return len(killed)


def main() -> int:
    if len(sys.argv) != 2 or not os.path.isabs(sys.argv[1]) or os.path.realpath(sys.argv[1]) == "/":
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the pipe's end decides
    sweep = os.getppid()  # never killed, should it still be there
    while sys.stdin.buffer.read(4096):
        pass
    folder = sys.argv[1]
    reap(folder, frozenset({sweep}))
    with contextlib.suppress(OSError):
        os.rmdir(folder)  # left by a sweep that was killed (a finished one removes it itself)
    return 0


if __name__ == "__main__":
    sys.exit(main())
