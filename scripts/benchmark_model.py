#!/usr/bin/env python
"""Benchmark one YOLO model: `python scripts/benchmark_model.py --weights best.pt --device 0`."""

import os
import sys

sys.path[:] = [entry for entry in sys.path if os.path.isabs(entry)]  # no relative entry: the working folder

from detbench.cli import bench_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(bench_main())
