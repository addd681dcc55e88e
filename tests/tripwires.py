"""Tripwires: modules that, if a process ever imports them, leave a mark and stop it. Planted in the folder commands
run from, they show whether detbench's child processes import from the working folder (they must not)."""

from __future__ import annotations

import sys
from pathlib import Path

# what a process started in the folder would import from there, if it could: resource.py (imported by the bounded
# model check), runpy.py (by every `python -m`) and a detbench/ folder's modules
WORKING_FOLDER_MODULES = ("resource.py", "runpy.py", "detbench/cli.py", "detbench/__main__.py",
                          "detbench/study/cli.py", "detbench/study/__main__.py")

CONSOLE = Path(sys.executable).with_name("detbench")  # the installed `detbench` command (no working folder on its path)


def tripwire(path: Path, marker: Path) -> None:
    """A module that, if it is ever imported, leaves `marker` and stops the process."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"open({str(marker)!r}, 'a').write({path.name!r} + '\\n')\nraise SystemExit(97)\n")


def plant(folder: Path, marker: Path, modules: tuple[str, ...] = WORKING_FOLDER_MODULES) -> list[Path]:
    """A tripwire for each of `modules` (paths relative to `folder`); their paths."""
    paths = [folder / name for name in modules]
    for path in paths:
        tripwire(path, marker)
    return paths
