"""What the numbers were measured on: hardware, software and settings."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch

import detbench.version


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_total_mb() -> float | None:
    """The machine's physical memory (MiB), or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**2
    except (AttributeError, ValueError, OSError):
        return None


def detbench_commit() -> str | None:
    """The git commit of the detbench checkout in use, with '-dirty' if it has local changes."""
    root = Path(detbench.version.__file__).resolve().parent.parent.parent  # src/detbench/version.py in a checkout
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def gpu_info(device: torch.device) -> dict[str, Any]:
    if device.type != "cuda":
        return {"gpu_name": None, "gpu_count": torch.cuda.device_count() if torch.cuda.is_available() else 0}
    props = torch.cuda.get_device_properties(device)
    return {
        "gpu_name": props.name,
        "gpu_count": torch.cuda.device_count(),
        "gpu_total_memory_MB": props.total_memory / 1024**2,
        "gpu_capability": f"{props.major}.{props.minor}",
        "cudnn_version": torch.backends.cudnn.version(),
    }


def capture_environment(device: torch.device) -> dict[str, Any]:
    # imported here, not at the top: loads Ultralytics, which only this path needs
    import ultralytics

    return {
        "hostname": platform.node(),
        "os": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_total_MB": memory_total_mb(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "ultralytics": ultralytics.__version__,
        "numpy": np.__version__,
        "detbench": detbench.version.__version__,
        "detbench_commit": detbench_commit(),
        **gpu_info(device),
    }


def capture_settings(device: torch.device, threads: int, mode: Any = None) -> dict[str, Any]:
    """Settings that change the numbers; threads are read back from torch, not assumed."""
    return {
        "threads": torch.get_num_threads(),
        "threads_requested": threads,
        "interop_threads": torch.get_num_interop_threads(),
        "precision": mode.precision if mode else "fp32",
        "channels_last": bool(mode and mode.channels_last),
        "cuda_graph": bool(mode and mode.cuda_graph),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark) if device.type == "cuda" else None,
        # as the timed loop ran (configure_backends has applied --tf32/--no-tf32); TF32 exists on CUDA only
        "tf32_conv": bool(torch.backends.cudnn.allow_tf32) if device.type == "cuda" else None,
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32) if device.type == "cuda" else None,
        "fused": True,
        "inference_mode": True,
        "gc_paused_in_loop": True,
    }
