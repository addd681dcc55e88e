"""detbench: defensible benchmarks for YOLO ablation studies.

The Python API (see `detbench.api`):

    import detbench
    report = detbench.bench("yolov8n.yaml", imgsz=320, device="cpu")
    report.latency.median_ms
    table = detbench.compare([baseline, report], baseline="baseline")

Importing the package changes nothing in the process: no environment
variables, no thread settings, no heavy imports until a function is called.
"""

from detbench.api import BenchReport, Comparison, bench, compare
from detbench.errors import DetbenchError
from detbench.version import __version__

__all__ = ["BenchReport", "Comparison", "DetbenchError", "__version__", "bench", "compare"]
