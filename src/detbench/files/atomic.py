"""Atomic file writes: a reader sees the old file or the whole new one, never a part.

The content goes to a hidden temporary file beside the target, is fsynced, and
is renamed over the target. A process killed outright (SIGKILL, power loss)
mid-write can leave a hidden `.NAME.XXXXXXXX.tmp` beside the target; it is
never read as a result (reports are `*.json`, lists `*.txt`) and the next
write does not depend on it.

Mode: the temporary file is created with `open(..., O_CREAT | O_EXCL, 0o666)`,
so the kernel applies the process umask (and a folder's default ACL) exactly
as for a file made with `open()`: 0644 under umask 022, 0600 under 077.
(`tempfile.mkstemp` would always give 0600.) Nothing reads the umask, so there
is no race with a thread changing it.

Links: the rename replaces a symlink at the target instead of writing through
it. With `follow_folder_link=False` the folder itself must not be a symlink
either (it is opened with O_NOFOLLOW and every step works relative to that
open folder, so swapping it for a link mid-write changes nothing); detbench's
cache uses this so that it never writes outside the results folder.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_FOLDER_FLAGS = os.O_DIRECTORY | getattr(os, "O_PATH", os.O_RDONLY) | getattr(os, "O_CLOEXEC", 0)
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def write_text_atomic(path: str | Path, text: str, *, follow_folder_link: bool = True) -> None:
    """Write `text` (UTF-8) to a temporary file beside `path`, fsync it, then rename it over `path`."""
    data = text.encode("utf-8")
    write_atomic(path, lambda handle: handle.write(data), follow_folder_link=follow_folder_link)


def write_atomic(path: str | Path, fill: Callable[[BinaryIO], object], *, follow_folder_link: bool = True) -> None:
    """Let `fill` write a temporary file beside `path` (opened binary), fsync it, then rename it over `path`.

    With `follow_folder_link` (the default) the folder is created if needed; without it, the folder must
    already exist and not be a symlink (OSError otherwise).
    """
    path = Path(path)
    if follow_folder_link:
        path.parent.mkdir(parents=True, exist_ok=True)
    nofollow = 0 if follow_folder_link else getattr(os, "O_NOFOLLOW", 0)
    folder_fd = os.open(path.parent, _FOLDER_FLAGS | nofollow)
    try:
        tmp_name, fd = _create_temp(folder_fd, path.name)
        try:
            with os.fdopen(fd, "wb") as handle:
                fill(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path.name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
        except BaseException:  # Ctrl-C and SIGTERM (raised as KeyboardInterrupt by the CLI) included
            with contextlib.suppress(OSError):
                os.unlink(tmp_name, dir_fd=folder_fd)
            raise
        _fsync_dir(folder_fd)
    finally:
        os.close(folder_fd)


def _create_temp(folder_fd: int, name: str) -> tuple[str, int]:
    """A new hidden file `.NAME.XXXXXXXX.tmp` in the open folder, with the mode `open()` would give."""
    for _ in range(100):
        tmp_name = f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            return tmp_name, os.open(tmp_name, _TEMP_FLAGS, 0o666, dir_fd=folder_fd)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name for {name}")


def _fsync_dir(folder_fd: int) -> None:
    """Make the rename itself durable (best effort: not every OS or file system allows it)."""
    try:
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY, dir_fd=folder_fd)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
