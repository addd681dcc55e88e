"""A model's own memory in a process that holds several models (an interleaved study's worker).

In a worker, the process's resident memory and the device's allocator count every model it holds, and the timed
loop spans the whole study: a peak read at the loop's end would be the process's, over every model's turns, and
an activation peak taken as that minus the RSS when the model's loop began would fall in load order. So each
model's memory is read in a window where it computes alone, in the state `detbench bench` reads it in (after
the warm-up, so that one-time set-up such as oneDNN's kernels, first-use pages and cuDNN autotuning is not the
model's): right after its warm-up, which the coordinator runs one model at a time across the whole study, the
peak is reset (after `settle_heap`), `MEMORY_FORWARDS` untimed forwards of the model run on the timed loop's
first inputs (and on the first input of each shape with --rect), and the peak is read.

CPU: `activation_peak_rss_MB` is that window's resident high-water mark minus the RSS at its reset, and
`model_memory_MB` is `weights_MB` plus it, as in bench. `loop_peak_rss_MB` (the high-water mark itself) is the
process's, every model included, and is null. `weights_MB` and `model_rss_MB` (what loading it added: the
models load one at a time) are the model's own.

CUDA: every absolute figure is counted from what the allocator held before the model was put on the device (the
models loaded before it): `allocated_MB` is the model's own weights, buffers and cached tensors after its
warm-up, `peak_gpu_mem_MB` that plus the window's activation peak (`activation_peak_MB`), not the sum of every
model resident; `warmup_peak_gpu_mem_MB` is its warm-up's own peak (reset right before it) and, with
--cuda-graph, `graph_capture_peak_MB` its capture's. `reserved_MB` (the caching allocator's) and
`device_used_MB` (NVML's, device-wide) cannot be split between models: null. The board's energy counter over
the study counts every model's turns: `energy_mJ_per_image` is null (`energy_scope` says why).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from detbench.data.inputs import InputCache
from detbench.data.rect import RectInputCache
from detbench.measure.memory import (
    MIB,
    current_rss_mib,
    graph_mode_memory,
    lifetime_peak_rss_mib,
    loop_memory,
    memory_report,
    reset_cuda_peak,
    reset_rss_peak,
    rss_peak_mib,
)

MEMORY_FORWARDS = 3
SCOPE = ("the model's own: read over {n} untimed forward(s) of it alone, right after its warm-up (models warm up "
         "one at a time), in a worker process that holds every model of the study; peak_rss_MB and rss_MB are "
         "the process's")
ENERGY_SCOPE = ("not measured in a study's worker: the board's energy counter over the study counts every model's "
                "turns (and every worker's); run detbench bench for the model's energy per image")


def memory_iterations(inputs: InputCache, batch: int, iters: int) -> list[int]:
    """The iterations whose inputs the window runs: the timed loop's first ones, and with --rect the first of each
    input shape, so that the largest shape's activations are in it."""
    first = set(range(max(1, min(MEMORY_FORWARDS, iters))))
    if isinstance(inputs, RectInputCache):
        first.update(inputs.first_of_each_shape(batch))
    return sorted(first)


class OwnMemoryWindow:
    """Made before the model is put on the device; `before_warmup` and `after_warmup` are called by the loop
    around the model's warm-up; `memory` gives the report's memory section."""

    def __init__(self, device: torch.device, cuda: Any = torch.cuda) -> None:
        self.device, self.cuda = device, cuda
        self.on_cuda = device.type == "cuda"
        self.before_model = cuda.memory_allocated(device) / MIB if self.on_cuda else 0.0
        self.readings: dict[str, Any] = {}

    def before_warmup(self) -> None:
        if self.on_cuda:
            reset_cuda_peak(self.device, self.cuda)  # the earlier peak is the other models' loading

    def after_warmup(self, forward: Callable[[Any], Any], next_input: Callable[[int], Any],
                     iterations: Sequence[int]) -> None:
        """Reset the peak, run the model alone on `iterations`' inputs, read the peak."""
        if self.on_cuda:
            self.cuda.synchronize(self.device)
            warmup_peak = self.cuda.max_memory_allocated(self.device) / MIB
            at_reset = reset_cuda_peak(self.device, self.cuda)
            self._run(forward, next_input, iterations)
            self.cuda.synchronize(self.device)
            self.readings.update(warmup_peak=warmup_peak, at_reset=at_reset,
                                 peak=self.cuda.max_memory_allocated(self.device) / MIB, forwards=len(iterations))
            return
        lifetime = lifetime_peak_rss_mib()  # before the reset, which lowers it
        reset = reset_rss_peak()
        rss_before = current_rss_mib()
        self._run(forward, next_input, iterations)
        self.readings.update(lifetime=lifetime, reset=reset, rss_before=rss_before,
                             peak=rss_peak_mib() if reset else None, forwards=len(iterations))

    @staticmethod
    def _run(forward: Callable[[Any], Any], next_input: Callable[[int], Any], iterations: Sequence[int]) -> None:
        for iteration in iterations:
            forward(next_input(iteration))

    def memory(self, model_rss_mib: float | None, weights: float | None,
               graph: dict[str, float] | None = None) -> dict[str, Any]:
        """The report's memory section: the model's own figures, the process's where they cannot be split."""
        got = self.readings
        forwards = got.get("forwards", 0)
        if not self.on_cuda:
            memory = memory_report(self.device, None, lifetime_floor_mib=got.get("lifetime", 0.0))
            memory.update(loop_memory(got.get("rss_before"), got.get("peak") is not None, model_rss_mib, weights,
                                      peak_mib=got.get("peak")))
            memory["loop_peak_rss_MB"] = None  # the process's, every model included
            return {**memory, "warmup_peak_gpu_mem_MB": None, "scope": SCOPE.format(n=forwards)}
        return self._cuda_memory(graph, forwards)

    def _cuda_memory(self, graph: dict[str, float] | None, forwards: int) -> dict[str, Any]:
        got, base = self.readings, self.before_model

        def own(value: float | None) -> float | None:
            return None if value is None else max(0.0, value - base)

        memory = memory_report(torch.device("cpu"), None)  # the process's RSS, the GPU fields null
        if "peak" in got:
            memory.update(peak_gpu_mem_MB=own(got["peak"]), allocated_MB=own(got["at_reset"]),
                          activation_peak_MB=max(0.0, got["peak"] - got["at_reset"]))
        memory["warmup_peak_gpu_mem_MB"] = own(got.get("warmup_peak"))
        if graph:
            memory = graph_mode_memory(memory, {**graph, "graph_capture_peak_MB": own(graph["graph_capture_peak_MB"])})
        return {**memory, "scope": SCOPE.format(n=forwards)}
