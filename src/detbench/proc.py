"""Child processes that end with their parent, and are killed whole when they overrun.

detbench runs work in child processes (the bounded model check, one model per
process in a study). A child started by `spawn_child` gets the parent's pid in
`DETBENCH_PARENT_PID` and its own process group; at start-up it calls
`die_with_parent`, which asks Linux to SIGKILL it the moment its parent exits
(PR_SET_PDEATHSIG), so `kill -9` of a study leaves no orphan computing on.

Every child runs a detbench module with `python_module` instead of `python -m`: `-m` (and `-c`) put the
working folder first on the import path, so a `resource.py` there would run inside the child, and a folder
named `detbench/` (a clone of this repository, say) would be imported in place of the package.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

PARENT_ENV = "DETBENCH_PARENT_PID"
CPUS_ENV = "DETBENCH_CPUS"  # cores a process (and its children) keeps to, e.g. "4,5,6,7": a sweep's GPU slot
KILL_WAIT_S = 30.0
_PR_SET_PDEATHSIG = 1


# `python -c` puts the working folder ('') first on sys.path, and an empty or relative PYTHONPATH entry (as
# `PYTHONPATH=$PYTHONPATH:/x` leaves) is the working folder again, made absolute: every entry that is the working
# folder goes before the module is imported, and the module runs as `-m` would run it. (`sys` is built in and `os`
# is loaded at start-up, so nothing is looked up on the path before that.)
_SAFE_MODULE_BOOTSTRAP = ("import sys, os; here = os.getcwd(); "
                          "sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != here]; import runpy; "
                          "runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)")


def python_module(python: str, module: str, *args: str) -> list[str]:
    """The command line of `python -m MODULE ARGS`, without the working folder on the import path."""
    return [python, "-c", _SAFE_MODULE_BOOTSTRAP, module, *args]


def refuse_namespace_package() -> None:
    """Exit with one line if `detbench` was imported as a namespace package: a folder named detbench/ without
    __init__.py (a clone of the repository, say) found before the installed package."""
    package = sys.modules.get("detbench")
    if package is None or getattr(package, "__file__", None) is not None:
        return
    folders = ", ".join(str(folder) for folder in getattr(package, "__path__", [])) or "a folder"
    sys.stderr.write(f"error: 'detbench' was imported from {folders}, a folder without __init__.py that shadows "
                     f"the installed package; run from another folder, or reinstall detbench (make setup, or pip "
                     f"install -e PATH_OF_THE_CLONE)\n")
    raise SystemExit(2)


def die_with_parent() -> bool:
    """If started by `spawn_child`: die with the parent (exit at once if it is already gone). True if armed.

    DETBENCH_PARENT_PID is only believed when it names this process's parent: a value left in a user's shell
    (not a number, or a process that is not the parent) is ignored, except that a parent pid that names no
    running process means the parent died before this check, and the process exits with a line saying so."""
    expected = os.environ.get(PARENT_ENV)
    if not expected or not sys.platform.startswith("linux"):
        return False
    parent = _pid(expected)
    if parent is None:
        return False
    if os.getppid() != parent:
        if _running(parent):
            return False  # not about this process: some other process's pid, left in the environment
        sys.stderr.write(f"error: the detbench process that started this one (pid {parent}, {PARENT_ENV}) is "
                         f"gone, so this one stops too; unset {PARENT_ENV} if you set it yourself\n")
        os._exit(137)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        armed = False
    if os.getppid() != parent:  # the parent died between the check and the request
        os._exit(137)
    return armed


def _pid(text: str) -> int | None:
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) <= 1:  # 1 is init: never a parent
        return None
    return int(text)


def _running(pid: int) -> bool:
    """The process exists and has not exited: one that exited but that its own parent has not reaped yet (a
    zombie) is gone, as a parent that died just before this check is."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            # the state follows the command name, which is in parentheses and may itself hold ") "
            state = handle.read(4096).rpartition(b")")[2].split()[:1]
    except OSError:
        return True
    return state not in ([b"Z"], [b"X"])


def keep_to_cpus() -> bool:
    """If DETBENCH_CPUS names cores this process may use, keep it (and so its children) to them. True if applied."""
    wanted = os.environ.get(CPUS_ENV)
    if not wanted or not hasattr(os, "sched_setaffinity"):
        return False
    try:
        cores = {int(core) for core in wanted.split(",") if core.strip()} & os.sched_getaffinity(0)
        if cores:
            os.sched_setaffinity(0, cores)
            return True
    except (ValueError, OSError):
        pass
    return False


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment plus the parent pid a child needs for `die_with_parent`. PYTHONPATH loses every
    entry that is the working folder (an empty one, as `PYTHONPATH=$PYTHONPATH:/x` leaves, or '.'): Python reads it
    before any of the child's code runs. Other relative entries are made absolute."""
    env = {**os.environ, **(extra or {}), PARENT_ENV: str(os.getpid())}
    if "PYTHONPATH" in env:
        here = os.getcwd()
        kept = [os.path.abspath(entry) for entry in env["PYTHONPATH"].split(os.pathsep)
                if entry and os.path.abspath(entry) != here]
        if kept:
            env["PYTHONPATH"] = os.pathsep.join(kept)
        else:
            del env["PYTHONPATH"]
    return env


def spawn_child(argv: Sequence[str], extra_env: dict[str, str] | None = None, **popen: object) -> subprocess.Popen:
    """Start `argv` in its own process group (so `kill_tree` reaches its children too), tied to this process."""
    return subprocess.Popen(list(argv), env=child_env(extra_env), start_new_session=True, **popen)  # type: ignore[arg-type]


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group and reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    # stuck in the kernel (e.g. a GPU driver call): it dies when that returns
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=KILL_WAIT_S)
