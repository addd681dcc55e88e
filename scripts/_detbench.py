#!/usr/bin/env python
"""`detbench ARGS` with the working folder off the import path (what scripts/batch_benchmark.sh runs)."""

import _safe_path  # noqa: F401  (first: the working folder leaves the import path)

# isort: split
import os
import sys

try:
    from detbench.cli import main
except ImportError as exc:
    sys.exit(f"error: {sys.executable} cannot import detbench ({exc}); run make setup in "
             f"{os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}, or set PYTHON to an interpreter that "
             f"has it")

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
