#!/usr/bin/env python
"""Run detbench's test suite the user specification's way: `python scripts/test_benchmark.py [PYTEST ARGS]`.

From any folder: the suite runs from the repository's root, as `make test` runs it (two pytest workers when
pytest-xdist is installed). Extra arguments go to pytest; `-m "not slow"` runs the unit tier, which starts no
process. Test paths may be given relative to the folder you are in.
"""

import _safe_path  # noqa: F401  (first: the working folder leaves the import path)

# isort: split
import importlib.util
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

try:
    import pytest

    import detbench  # noqa: F401  (the suite tests the installed package)
except ImportError as exc:
    sys.exit(f"error: {sys.executable} cannot import {exc.name}: the tests need detbench and its test tools "
             f"(`make setup` leaves pytest out); run `make setup-dev` in {REPO}, then {REPO}/.venv/bin/python "
             f"{Path(__file__).resolve()}")


def _from_here(arg: str) -> str:
    """A test path (a .py file or a folder, maybe with ::node) given from the caller's folder, made absolute; one
    that is neither there nor in the repository is an error here, not a run that collects nothing."""
    path, sep, node = arg.partition("::")
    if arg.startswith("-") or not (path.endswith(".py") or os.path.isdir(path) or sep):
        return arg
    if os.path.exists(path):
        return str(Path(path).resolve()) + sep + node
    if (REPO / path).exists():
        return arg
    print(f"error: {path}: no such test file or folder here or in {REPO}; give a path such as tests/test_timing.py",
          file=sys.stderr)
    sys.exit(2)


def pytest_args(extra: list[str]) -> list[str]:
    """pytest's arguments, to run from the repository's root (where its configuration names the tests folder)."""
    given = [_from_here(arg) for arg in extra]
    chose_workers = any(arg.startswith(("-n", "--numprocesses")) or arg in ("no:xdist", "-pno:xdist")
                        for arg in given)
    parallel = ["-n", "2", "--dist", "loadfile"] if importlib.util.find_spec("xdist") and not chose_workers else []
    return ["-q", *parallel, *given]


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(pytest.main(pytest_args(sys.argv[1:])))
