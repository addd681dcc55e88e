"""Whether results can be written in a folder: checked before any work, creating nothing."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from detbench.errors import DetbenchError

MIN_FREE_BYTES = 64 * 2**20


def check_writable(folder: Path, needed: int = MIN_FREE_BYTES) -> None:
    """Fail before any work if results cannot be written there; create nothing.

    The folder, or its nearest existing parent, is probed with a temporary file (removed at once) and for
    free space; the folder itself is made only when the first result is written.
    """
    try:
        probe = folder
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            raise DetbenchError(f"--out {folder}: {probe} is a file, not a folder; choose another --out")
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".write-test-"):
            pass
        free = shutil.disk_usage(probe).free
    except OSError as exc:
        raise DetbenchError(f"--out {folder}: cannot write there ({exc.strerror}); choose a writable folder") from exc
    if free < needed:
        raise DetbenchError(f"--out {folder}: only {free / 2**20:.0f} MiB free there, the results need about "
                            f"{needed / 2**20:.0f} MiB; free some space or choose another --out")
