#!/usr/bin/env python
"""Benchmark one YOLO model: `python scripts/benchmark_model.py --weights best.pt --device 0`."""

import _safe_path  # noqa: F401  (first: the working folder leaves the import path)

# isort: split
import sys

from detbench.cli import bench_main

if __name__ == "__main__":
    sys.exit(bench_main())
