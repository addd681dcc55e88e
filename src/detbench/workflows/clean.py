"""`detbench clean [FOLDER ...]`: remove the helper files detbench leaves beside its results, and nothing else.

In a results folder (default results/bench) and, for a sweep's folder, in each of its studies/NAME/:
- `.detbench-cache/`: the decoded inputs a study's workers share (tens of MB; made again when needed);
- `benchmark_list.txt.lock`: the lock that makes concurrent first runs agree on one list;
- `.detbench-study.lock`: the lock that keeps one study per folder;
- `.study/`: the workers' reports and logs of a study that did not finish (kept for a look at what happened).

Reports, study.json, sweep.json, the benchmark list and its record, the comparison tables, plots and logs stay.
Only a folder detbench made is cleaned (one that holds a study.json, a benchmark list, a sweep.json or a study
lock). A folder where a study is running is left alone, and so is a list lock another run holds, each with a line
saying so. The input cache may go while a `bench` runs there: its use of the cache is best-effort. A symlink is
removed as a link, never followed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from filelock import FileLock, Timeout

from detbench import text
from detbench.data.benchmark_list import LIST_FILENAME, list_lock_path
from detbench.data.cache import CACHE_DIRNAME
from detbench.errors import DetbenchError
from detbench.report.study_record import STUDY_FILE
from detbench.study.ablation import WORK_DIR
from detbench.study.lock import LOCK_NAME, unless_study_running
from detbench.sweep.run import INDEX_NAME, STUDIES_DIR
from detbench.text import Echo

MARKERS = (STUDY_FILE, LIST_FILENAME, INDEX_NAME, LOCK_NAME)  # a folder detbench made holds one of them
LIST_LOCK = list_lock_path(LIST_FILENAME).name


def helper_paths(folder: Path) -> list[Path]:
    """The helper files that exist in `folder`, if detbench made it (the study lock last: it is removed while
    held)."""
    if not any(os.path.lexists(folder / name) for name in MARKERS):
        return []
    names = [CACHE_DIRNAME, LIST_LOCK, WORK_DIR, LOCK_NAME]
    return [folder / name for name in names if os.path.lexists(folder / name)]


def result_folders(folder: Path) -> Iterator[Path]:
    """`folder`, then each study folder of a sweep in it (real folders only)."""
    yield folder
    studies = folder / STUDIES_DIR
    if studies.is_dir() and not studies.is_symlink():
        for entry in sorted(os.scandir(studies), key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False):
                yield Path(entry.path)


def _size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        return os.lstat(path).st_size
    return sum(os.lstat(os.path.join(top, name)).st_size for top, _, files in os.walk(path) for name in files)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        os.unlink(path)


@contextlib.contextmanager
def _unless_list_locked(lock: Path) -> Iterator[bool]:
    """Hold the list's lock (`lock`, a regular file) for the block, which gets True; False when a run holds it."""
    if lock.is_symlink() or not lock.is_file():
        yield True
        return
    held = FileLock(str(lock), timeout=0)
    try:
        held.acquire()
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        held.release()


def clean(folders: Sequence[str | Path], echo: Echo = print) -> int:
    """Remove the helper files of each folder; 0, or 1 if something was left alone because a run holds it."""
    try:
        return _clean(folders, echo)
    except OSError as exc:
        raise DetbenchError(f"{text.terminal(exc.filename or folders[0])}: cannot remove it ({exc.strerror}); check "
                            f"its permissions, or remove it by hand") from exc


def _clean(folders: Sequence[str | Path], echo: Echo) -> int:
    missing = [str(folder) for folder in folders if not Path(folder).is_dir()]
    if missing:
        raise DetbenchError(f"{text.terminal(missing[0])}: no such folder; name a results folder (e.g. "
                            f"results/bench or results/sweep)")
    freed, busy, removed = 0, 0, 0
    for folder in (found for given in folders for found in result_folders(Path(given))):
        paths = helper_paths(folder)
        if not paths:
            continue
        with unless_study_running(folder) as free:
            if not free:
                echo(f"· {text.terminal(folder)}: a study is running there; left alone")
                busy += 1
                continue
            for path in paths:  # the study lock last, while this process holds it
                guard = _unless_list_locked(path) if path.name == LIST_LOCK else contextlib.nullcontext(True)
                with guard as free_to_go:
                    if not free_to_go:
                        echo(f"· {text.terminal(path)}: a run is drawing the benchmark list; left alone")
                        busy += 1
                        continue
                    size = _size(path)
                    _remove(path)
                freed, removed = freed + size, removed + 1
                echo(f"✓ removed {text.terminal(path)} ({size / 2**20:.1f} MiB)")
    where = ", ".join(text.terminal(folder) for folder in folders)
    echo(f"cleaned: {removed} helper file(s), {freed / 2**20:.1f} MiB" if removed else f"nothing to clean in {where}")
    return 1 if busy else 0
