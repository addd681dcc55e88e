"""One study at a time per output folder.

Two `detbench ablate` runs writing into one folder would time their models
side by side (each slowing the other) and overwrite each other's round
reports. A study holds an exclusive `flock` on OUT/.detbench-study.lock for
its whole run; a second study in that folder stops at once with one line
naming the holder. The lock is released by the kernel when the holder exits,
however it exits, so a killed study never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from detbench.errors import DetbenchError

LOCK_NAME = ".detbench-study.lock"


@contextlib.contextmanager
def study_lock(out: Path) -> Iterator[None]:
    """Hold the folder's study lock for the block; DetbenchError if another study holds it."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    if os.path.lexists(path) and not (path.is_file() and not path.is_symlink()):
        raise DetbenchError(f"--out {out}: {LOCK_NAME} exists and is not a regular file; delete it (detbench "
                            f"writes only regular files inside OUT)")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise DetbenchError(f"--out {out}: another study is running in this folder ({holder}); wait for it to "
                                f"finish, or choose another --out") from exc
        started = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, started {started}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def unless_study_running(folder: Path) -> Iterator[bool]:
    """Hold the folder's study lock (if there is one) for the block, which gets True; False when a study holds
    it, and then nothing may be touched there."""
    lock = folder / LOCK_NAME
    if lock.is_symlink() or not lock.is_file():
        yield True
        return
    fd = os.open(lock, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC)  # no FIFO hang
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since it was looked at: no lock to respect
            yield True
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
