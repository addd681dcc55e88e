"""Memory figures.

CUDA (torch caching allocator, one device): the peak counter is reset after
the model and the warm-up are done, so `peak_gpu_mem_MB` is the peak of
allocated memory during the timed loop alone. `allocated_MB` is what was
allocated just before the loop (weights + one input batch + cached anchors),
`activation_peak_MB` is peak minus that, and `reserved_MB` is what the
allocator holds from the driver. None of these include the CUDA context.
CUDA graphs: replay allocates nothing, so the loop's peak would show no
activations; they live in the graph's private pool, measured around the
capture alone (after the side-stream warm-up that capture requires, so cuDNN
autotuning is not in it): `graph_pool_MB` is the capture's peak above what was
allocated just before it. In that mode `activation_peak_MB` is the pool and
`peak_gpu_mem_MB` the higher of the loop's peak and the capture's.
CPU, the model's own memory: `weights_MB` is the bytes of the fused model's
parameters and buffers (each storage once), and `activation_peak_rss_MB` the
high-water mark of resident memory during the timed loop (Linux VmHWM, reset
to the current RSS just after the warm-up by writing 5 to
/proc/self/clear_refs) minus the RSS at the reset: what the forwards allocate,
each iteration's input batch included. Before the reset the C allocator
hands its free memory back (`malloc_trim`): otherwise the loop reuses pages
the warm-up freed and its peak shows about 0. `model_memory_MB` is their sum.
`model_rss_MB`, the resident memory that loading and fusing added (weights
plus the runtime's own set-up, about 20 MiB here), is kept beside them, as are
the process-wide `peak_rss_MB` (its whole life: imports, model, decoded image
cache and the loop; read before the reset as well, so the reset does not
lower it) and the current `rss_MB`.
MB means MiB (1024**2 bytes), as in the user specification.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import resource
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import psutil
import torch

T = TypeVar("T")

MIB = 1024**2


def reset_cuda_peak(device: torch.device, cuda: Any = torch.cuda) -> float:
    """Reset the peak counter; return the MiB allocated at that moment (the loop's baseline)."""
    cuda.synchronize(device)
    cuda.reset_peak_memory_stats(device)
    return cuda.memory_allocated(device) / MIB


def captured_with_memory(capture: Callable[[Callable[[], None]], T], device: torch.device,
                         cuda: Any = torch.cuda) -> tuple[T, dict[str, float]]:
    """Run a CUDA-graph capture and measure it: replay allocates nothing, so the activations live in the
    graph's private pool, whose size is the capture's peak above what was allocated just before it.
    `capture(before_capture)` calls `before_capture()` right before capturing (after its warm-up runs)."""
    mark: dict[str, float] = {}

    def before_capture() -> None:
        mark["before"] = reset_cuda_peak(device, cuda)

    result = capture(before_capture)
    cuda.synchronize(device)
    peak = cuda.max_memory_allocated(device) / MIB
    before = mark.get("before", 0.0)
    return result, {"graph_capture_peak_MB": peak, "graph_pool_MB": max(0.0, peak - before)}


def graph_mode_memory(memory: dict[str, Any], graph: dict[str, float]) -> dict[str, Any]:
    """The loop's memory in CUDA-graph mode: activations are the graph pool's, not the replay's (none)."""
    loop_peak = memory.get("peak_gpu_mem_MB")
    return {**memory, **graph, "activation_peak_MB": graph["graph_pool_MB"],
            "peak_gpu_mem_MB": max(loop_peak or 0.0, graph["graph_capture_peak_MB"]),
            "activation_source": "CUDA graph capture (its private pool; replay allocates nothing)"}


def cuda_memory(device: torch.device, baseline_mib: float, cuda: Any = torch.cuda) -> dict[str, float]:
    peak = cuda.max_memory_allocated(device) / MIB
    return {
        "peak_gpu_mem_MB": peak,
        "allocated_MB": baseline_mib,
        "reserved_MB": cuda.memory_reserved(device) / MIB,
        "activation_peak_MB": peak - baseline_mib,
    }


def current_rss_mib(settle: bool = False) -> float:
    """Resident memory now; with `settle`, after `settle_heap`, so that memory freed a moment ago does not
    count."""
    if settle:
        settle_heap()
    return psutil.Process().memory_info().rss / MIB


def settle_heap() -> None:
    """Collect garbage, then hand the C allocator's free memory back to the system (glibc `malloc_trim`), so
    that what is allocated next shows as new resident memory instead of reusing pages freed earlier."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: not glibc
        ctypes.CDLL(None).malloc_trim(0)


def lifetime_peak_rss_mib() -> float:
    """The process's resident high-water mark since it started (ru_maxrss), as the kernel keeps it."""
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak_kib if sys.platform == "darwin" else peak_kib * 1024) / MIB


def reset_rss_peak(clear_refs: str = "/proc/self/clear_refs") -> bool:
    """Set this process's resident high-water mark (VmHWM) to its current RSS, after releasing the free heap;
    False where Linux does not allow it (then no loop peak is reported). The reset lowers ru_maxrss too: read
    `lifetime_peak_rss_mib` first to keep the lifetime peak."""
    settle_heap()
    try:
        with open(clear_refs, "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def rss_peak_mib(status: str = "/proc/self/status") -> float | None:
    """VmHWM (the resident high-water mark) in MiB, or None where it cannot be read."""
    try:
        with open(status, encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / MIB
    except (OSError, ValueError, IndexError):
        return None
    return None


def weights_mib(model: torch.nn.Module) -> float:
    """Bytes of the model's parameters and buffers, each underlying storage counted once (shared weights)."""
    seen: dict[int, int] = {}
    for tensor in [*model.parameters(), *model.buffers()]:
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = max(seen.get(storage.data_ptr(), 0), storage.nbytes())
    return sum(seen.values()) / MIB


def loop_memory(rss_before_mib: float | None, reset: bool, model_rss_mib: float | None,
                weights: float | None, peak_mib: float | None = None) -> dict[str, float | None]:
    """The model's own memory on CPU: its weights, plus the timed loop's peak above the RSS before it (the
    high-water mark now, or `peak_mib` where it was read earlier)."""
    peak = (peak_mib if peak_mib is not None else rss_peak_mib()) if reset and rss_before_mib is not None else None
    activations = max(0.0, peak - rss_before_mib) if peak is not None else None
    total = weights + activations if weights is not None and activations is not None else None
    return {"weights_MB": weights, "model_rss_MB": model_rss_mib, "loop_peak_rss_MB": peak,
            "activation_peak_rss_MB": activations, "model_memory_MB": total}


def process_memory(lifetime_floor_mib: float = 0.0) -> dict[str, float]:
    """Peak RSS over the process's life (at least `lifetime_floor_mib`, read before a VmHWM reset) and now."""
    return {"peak_rss_MB": max(lifetime_peak_rss_mib(), lifetime_floor_mib),
            "rss_MB": psutil.Process().memory_info().rss / MIB}


def memory_report(device: torch.device, baseline_mib: float | None, cuda: Any = torch.cuda,
                  lifetime_floor_mib: float = 0.0) -> dict[str, Any]:
    """The report's memory section: GPU fields are null on CPU, never zero."""
    gpu = {"peak_gpu_mem_MB": None, "allocated_MB": None, "reserved_MB": None, "activation_peak_MB": None}
    if device.type == "cuda" and baseline_mib is not None:
        gpu = cuda_memory(device, baseline_mib, cuda)
    return {**gpu, **process_memory(lifetime_floor_mib), "unit": "MiB"}
