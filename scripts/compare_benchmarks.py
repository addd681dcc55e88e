#!/usr/bin/env python
"""Compare benchmark reports: `python scripts/compare_benchmarks.py [--output results/bench/comparison.csv]`."""

import _safe_path  # noqa: F401  (first: the working folder leaves the import path)

# isort: split
import sys

from detbench.cli import main

if __name__ == "__main__":
    sys.exit(main(["compare", *sys.argv[1:]]))
