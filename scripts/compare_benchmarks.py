#!/usr/bin/env python
"""Compare benchmark reports: `python scripts/compare_benchmarks.py [--output results/bench/comparison.csv]`."""

import os
import sys

sys.path[:] = [entry for entry in sys.path if os.path.isabs(entry)]  # no relative entry: the working folder

from detbench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["compare", *sys.argv[1:]]))
