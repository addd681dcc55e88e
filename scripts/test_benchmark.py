#!/usr/bin/env python
"""Run detbench's test suite the user specification's way: `python scripts/test_benchmark.py`."""

import sys
from pathlib import Path

import pytest

if __name__ == "__main__":
    tests = Path(__file__).resolve().parent.parent / "tests"
    sys.exit(pytest.main([str(tests), "-q", *sys.argv[1:]]))
