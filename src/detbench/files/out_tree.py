"""Folders detbench writes below an output folder: no link is followed on the way down.

The rule, for every command that writes into an output folder OUT (`--out`): OUT itself is the user's choice
and may be, or lie under, a symlink the user made; every folder *below* OUT that detbench writes into (a
sweep's `studies/` and `studies/CELL/`, a study's `.study/`, `separate_runs/`, ...) must be a real folder. Each
component below OUT is looked at with lstat and made with mkdir relative to its open parent, then opened with
O_NOFOLLOW | O_DIRECTORY to step into it, so a symlink anywhere on the path (or a file, FIFO or device where a
folder goes) is refused in one line naming it and the fix, before anything is written there. Without this, a
`studies -> /somewhere` link in OUT would send every report, log and lock (and the deletions a study makes when
it replaces its files) to /somewhere.

    folder_below(out, "studies", name)             # OUT/studies/NAME, made where missing, checked all the way
    folder_below(out, "studies", create=False)     # check only: what exists must be real folders
    check_below(out, out / "studies" / name)       # the same for a path already joined below OUT

Each part must be one plain name: not empty, `.` or `..`, without a path separator or NUL (a programming error
or a hostile name otherwise, refused the same way). The check holds when it is made: call it again just before
writing (a sweep checks each study's folder as the study starts), and write files there with O_NOFOLLOW or
`write_atomic(..., follow_folder_link=False)`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from detbench.errors import DetbenchError
from detbench.text import terminal

_STEP_FLAGS = os.O_DIRECTORY | getattr(os, "O_PATH", os.O_RDONLY) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def part_problem(part: str) -> str | None:
    """Why `part` cannot be one folder name below OUT (None if it can)."""
    if not isinstance(part, str) or part in {"", ".", ".."}:
        return "is empty, '.' or '..'"
    if "/" in part or "\\" in part or "\0" in part or (os.altsep and os.altsep in part):
        return "holds a path separator or NUL"
    return None


def _fail(flag: str, out: Path, where: Path, problem: str, fix: str) -> DetbenchError:
    return DetbenchError(f"{flag} {terminal(out)}: {terminal(where)} {problem}; {fix}")


def out_folder(out: str | Path, flag: str = "--out", create: bool = True) -> Path:
    """OUT itself, made if missing (`create`), through any link the user put on its path; it must be a folder."""
    out = Path(out)
    if create:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            pass  # not a folder: said below
        except OSError as exc:
            raise _fail(flag, out, out, f"cannot be made ({exc.strerror})",
                        f"check its permissions, or choose another {flag}") from None
    if (create or os.path.lexists(out)) and not out.is_dir():
        raise _fail(flag, out, out, "is not a folder", f"move it away, or choose another {flag}")
    return out


def folder_below(out: str | Path, *parts: str, create: bool = True, flag: str = "--out") -> Path:
    """OUT/PART/...: every folder below OUT a real folder (no symlink), made where missing (`create`); with
    `create=False` only what exists is checked. The path, or a one-line DetbenchError naming the component and
    the fix (`flag` names the option that gave OUT)."""
    out = Path(out)
    for part in parts:
        problem = part_problem(part)
        if problem:
            raise _fail(flag, out, Path(str(part)[:120]), f"cannot name a folder below it ({problem})",
                        "this is a bug or a hostile name: report it")
    target = out.joinpath(*parts)
    if not create and not out.is_dir():
        out_folder(out, flag, create=False)  # a non-folder OUT is refused; a missing one holds nothing yet
        return target
    out_folder(out, flag, create)
    fd = os.open(out, _STEP_FLAGS)  # OUT's own links are the user's
    try:
        where = out
        for part in parts:
            where = where / part
            next_fd = _step(fd, part, out, where, create, flag)
            if next_fd is None:  # check only, and the rest does not exist yet
                break
            os.close(fd)
            fd = next_fd
    finally:
        os.close(fd)
    return target


def _step(fd: int, part: str, out: Path, where: Path, create: bool, flag: str) -> int | None:
    """The folder `part` of the open folder `fd`, made if missing (`create`) and opened without following a
    link; None when it is missing and not to be made."""
    if create:
        try:
            os.mkdir(part, 0o777, dir_fd=fd)
        except FileExistsError:
            pass
        except OSError as exc:
            raise _fail(flag, out, where, f"cannot be made ({exc.strerror})",
                        f"check the permissions of its folder, or choose another {flag}") from None
    try:
        mode = os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        if create:
            raise _fail(flag, out, where, "vanished while it was made", "run again") from None
        return None
    if stat.S_ISLNK(mode):
        raise _fail(flag, out, where, "is a symlink, and detbench follows no link below the output folder (so "
                                      "that nothing is written outside it)",
                    f"remove the link (what it points to is left alone), or choose another {flag}")
    if not stat.S_ISDIR(mode):
        raise _fail(flag, out, where, "is not a folder", f"move it away, or choose another {flag}")
    try:
        return os.open(part, _STEP_FLAGS | _NOFOLLOW, dir_fd=fd)
    except OSError as exc:  # swapped for a link or a file since the lstat
        raise _fail(flag, out, where, f"changed while it was checked ({exc.strerror})",
                    f"make sure nothing else writes there, or choose another {flag}") from None


def check_below(out: str | Path, path: str | Path, *, create: bool = True, flag: str = "--out") -> Path:
    """`folder_below` for a path already joined below OUT (`OUT/a/b`); a path not below OUT, or with a `..`, is
    refused."""
    out, path = Path(out), Path(path)
    try:
        parts = path.relative_to(out).parts
    except ValueError:
        raise _fail(flag, out, path, "is not below the output folder",
                    "this is a bug or a hostile path: report it") from None
    return folder_below(out, *parts, create=create, flag=flag)
