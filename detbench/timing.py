"""The timed loop: warm-up, then one measurement per iteration.

CPU: `time.perf_counter_ns` around the forward pass.
CUDA: per iteration, the input is ready and the device idle (synchronize);
a start event is recorded, the forward runs, an end event is recorded, and
the host synchronizes; the latency is the events' `elapsed_time`. The host
time around the same region is kept too: when it is far above the device
time, the run is bound by kernel launches, not by the GPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Timings:
    latency_ms: list[float] = field(default_factory=list)  # device time on CUDA, host time on CPU
    host_ms: list[float] = field(default_factory=list)
    warmup_ms: list[float] = field(default_factory=list)
    timer: str = "perf_counter_ns"


def run_timed_loop(forward: Callable[[torch.Tensor], Any], next_input: Callable[[int], torch.Tensor],
                   warmup: int, iters: int, device: torch.device, cuda: Any = torch.cuda,
                   after_warmup: Callable[[], None] | None = None) -> Timings:
    """Warm up, call `after_warmup` (e.g. reset the peak-memory counter), then time `iters` forwards.

    `next_input(i)` gives iteration i's batch, prepared outside the timed region;
    the timed iterations start again at input 0, so every model sees the same
    sequence. `cuda` is injectable so the CUDA path can be tested without a GPU.
    """
    on_cuda = device.type == "cuda"
    timings = Timings(timer="cuda_event" if on_cuda else "perf_counter_ns")
    with torch.inference_mode():
        for i in range(warmup):
            x = next_input(i)
            t0 = time.perf_counter_ns()
            forward(x)
            if on_cuda:
                cuda.synchronize(device)
            timings.warmup_ms.append((time.perf_counter_ns() - t0) / 1e6)
        if after_warmup is not None:
            after_warmup()
        if on_cuda:
            start, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
        for i in range(iters):
            x = next_input(i)
            if on_cuda:
                cuda.synchronize(device)
                t0 = time.perf_counter_ns()
                start.record()
                forward(x)
                end.record()
                cuda.synchronize(device)
                t1 = time.perf_counter_ns()
                timings.latency_ms.append(float(start.elapsed_time(end)))
            else:
                t0 = time.perf_counter_ns()
                forward(x)
                t1 = time.perf_counter_ns()
                timings.latency_ms.append((t1 - t0) / 1e6)
            timings.host_ms.append((t1 - t0) / 1e6)
    return timings
