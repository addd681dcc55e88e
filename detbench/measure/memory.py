"""Memory figures.

CUDA (torch caching allocator, one device): the peak counter is reset after
the model and the warm-up are done, so `peak_gpu_mem_MB` is the peak of
allocated memory during the timed loop alone. `allocated_MB` is what was
allocated just before the loop (weights + one input batch + cached anchors),
`activation_peak_MB` is peak minus that, and `reserved_MB` is what the
allocator holds from the driver. None of these include the CUDA context.
CPU: the process's peak resident set size over its whole life (imports,
model, decoded image cache and the loop), and its current RSS.
MB means MiB (1024**2 bytes), as in the user specification.
"""

from __future__ import annotations

import resource
import sys
from typing import Any

import psutil
import torch

MIB = 1024**2


def reset_cuda_peak(device: torch.device, cuda: Any = torch.cuda) -> float:
    """Reset the peak counter; return the MiB allocated at that moment (the loop's baseline)."""
    cuda.synchronize(device)
    cuda.reset_peak_memory_stats(device)
    return cuda.memory_allocated(device) / MIB


def cuda_memory(device: torch.device, baseline_mib: float, cuda: Any = torch.cuda) -> dict[str, float]:
    peak = cuda.max_memory_allocated(device) / MIB
    return {
        "peak_gpu_mem_MB": peak,
        "allocated_MB": baseline_mib,
        "reserved_MB": cuda.memory_reserved(device) / MIB,
        "activation_peak_MB": peak - baseline_mib,
    }


def process_memory() -> dict[str, float]:
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_bytes = peak_kib if sys.platform == "darwin" else peak_kib * 1024
    return {"peak_rss_MB": peak_bytes / MIB, "rss_MB": psutil.Process().memory_info().rss / MIB}


def memory_report(device: torch.device, baseline_mib: float | None, cuda: Any = torch.cuda) -> dict[str, Any]:
    """The report's memory section: GPU fields are null on CPU, never zero."""
    gpu = {"peak_gpu_mem_MB": None, "allocated_MB": None, "reserved_MB": None, "activation_peak_MB": None}
    if device.type == "cuda" and baseline_mib is not None:
        gpu = cuda_memory(device, baseline_mib, cuda)
    return {**gpu, **process_memory(), "unit": "MiB"}
