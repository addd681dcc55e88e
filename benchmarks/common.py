"""Shared set-up of the scripts that measure detbench itself: machine description, a model, real inputs."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "src") not in sys.path:  # the package from this checkout, installed or not
    sys.path.insert(0, str(REPO / "src"))

from detbench.models.ultralytics_env import configure_process  # noqa: E402

configure_process()  # offline, quiet, restricted: before Ultralytics is imported


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> dict[str, Any]:
    import torch
    import ultralytics

    from detbench.config import available_cores

    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores_available": available_cores(),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "ultralytics": ultralytics.__version__,
    }


def print_header(title: str) -> None:
    info = machine()
    print(f"== {title} ==")
    print(f"machine: {info['cpu']}, {info['cores_available']} cores available, load average (1 min) "
          f"{info['load_average_1m']}; python {info['python']}, torch {info['torch']}, "
          f"ultralytics {info['ultralytics']}; {info['date']}")


def dataset(folder: Path | None = None, n_val: int = 200) -> Path:
    """A synthetic dataset (data.yaml) with `n_val` val images, in `folder` or a fresh temporary one."""
    from detbench.data.synthetic import make_dataset

    root = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="detbench-bench-"))
    return make_dataset(root / "data", n_train=2, n_val=n_val, seed=7)


def yolov8n_and_inputs(imgsz: int, threads: int, n_images: int = 200):
    """YOLOv8n (fused, eval, from yolov8n.yaml) and the letterboxed input cache of a synthetic val set."""
    import torch
    import ultralytics  # noqa: F401  (it changes thread settings: set ours after)

    from detbench.data.benchmark_list import sample_list
    from detbench.data.inputs import decode_images
    from detbench.models.loading import load_model, prepare_for_inference

    torch.set_num_threads(threads)
    model = prepare_for_inference(load_model("yolov8n.yaml").model)
    data = dataset(n_val=n_images)
    inputs = decode_images(sample_list(data, n_images, 42).paths, imgsz)
    return model, inputs


def verdict(met: bool) -> str:
    return "target met" if met else "target NOT met"
