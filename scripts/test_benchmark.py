#!/usr/bin/env python
"""Run detbench's test suite the user specification's way: `python scripts/test_benchmark.py [PYTEST ARGS]`.

From any folder: the suite runs from the repository's root, as `make test` runs it (two pytest workers when
pytest-xdist is installed). Extra arguments go to pytest; `-m "not slow"` runs the unit tier, which starts no
process. Test paths may be given relative to the folder you are in.
"""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def pytest_args(extra: list[str]) -> list[str]:
    """pytest's arguments, to run from the repository's root (where its configuration names the tests folder)."""
    # a path that exists from the caller's folder stays that path once the suite runs from the repository
    given = [str(Path(arg).resolve()) if not arg.startswith("-") and os.path.exists(arg) else arg for arg in extra]
    chose_workers = any(arg.startswith(("-n", "--numprocesses")) for arg in given)
    parallel = ["-n", "2", "--dist", "loadfile"] if importlib.util.find_spec("xdist") and not chose_workers else []
    return ["-q", *parallel, *given]


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(pytest.main(pytest_args(sys.argv[1:])))
