"""detbench: defensible benchmarks for YOLO ablation studies.

Importing the package makes Ultralytics run offline: it must never probe the
network or download weights, fonts or datasets while benchmarking.
"""

import os

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")
os.environ.setdefault("MPLBACKEND", "Agg")

__version__ = "0.1.0"
