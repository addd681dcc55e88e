"""A model's own memory in a process that holds several (a study's worker): the window right after its warm-up.
CUDA through a fake allocator; CPU for real (the resident high-water mark)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detbench.data.inputs import InputCache
from detbench.measure.measure import _gpu_readings, measure
from detbench.measure.memory import MIB, reset_rss_peak
from detbench.measure.modes import ExecutionMode
from detbench.measure.own_memory import ENERGY_SCOPE, MEMORY_FORWARDS, OwnMemoryWindow, memory_iterations
from detbench.measure.timing import run_timed_loop


class FakeAllocator:
    """torch.cuda's memory counters: `allocate` and `free` move them as the caching allocator would."""

    def __init__(self, allocated_mib: float = 0.0):
        self.allocated = self.peak = allocated_mib * MIB
        self.reserved = 4096 * MIB

    def allocate(self, mib: float) -> None:
        self.allocated += mib * MIB
        self.peak = max(self.peak, self.allocated)

    def free(self, mib: float) -> None:
        self.allocated -= mib * MIB

    def synchronize(self, device=None):
        pass

    def reset_peak_memory_stats(self, device=None):
        self.peak = self.allocated

    def memory_allocated(self, device=None):
        return self.allocated

    def max_memory_allocated(self, device=None):
        return self.peak

    def memory_reserved(self, device=None):
        return self.reserved


def _forward_needing(cuda: FakeAllocator, activation_mib: float):
    def forward(x):
        cuda.allocate(activation_mib)
        cuda.free(activation_mib)

    return forward


def test_cuda_figures_are_the_models_own_not_every_model_resident():
    """Two models loaded before it (300 MiB), its own 50 MiB of weights, a 900 MiB cuDNN autotuning peak in its
    warm-up, 60 MiB of activations; then a later model's turns reach 2 GiB: none of that is this model's."""
    cuda, device = FakeAllocator(300.0), torch.device("cuda:0")
    own = OwnMemoryWindow(device, cuda)  # before the model is put on the device
    cuda.allocate(50.0)  # its weights and buffers
    cuda.allocate(700.0)  # another model loads after it: the process's peak, not this model's
    cuda.free(700.0)
    own.before_warmup()
    cuda.allocate(900.0)  # the warm-up's autotuning workspace
    cuda.free(900.0)
    cuda.allocate(2.0)  # the anchors the head caches in its first forward
    own.after_warmup(_forward_needing(cuda, 60.0), lambda i: i, [0, 1, 2])
    cuda.allocate(2048.0)  # the other models' turns, later in the study
    memory = own.memory(None, None)
    assert memory["allocated_MB"] == 52.0 and memory["activation_peak_MB"] == 60.0
    assert memory["peak_gpu_mem_MB"] == 112.0  # its own resident memory plus its activation peak
    assert memory["warmup_peak_gpu_mem_MB"] == 950.0
    assert memory["reserved_MB"] is None and "device_used_MB" not in memory  # the allocator's: not splittable
    assert memory["peak_rss_MB"] > 0 and "3 untimed forward(s) of it alone" in memory["scope"]


def test_cuda_graph_pool_and_capture_peak_count_from_what_the_device_held_before_the_model():
    cuda, device = FakeAllocator(300.0), torch.device("cuda:0")
    own = OwnMemoryWindow(device, cuda)
    cuda.allocate(50.0)
    graph = {"graph_capture_peak_MB": 300.0 + 50.0 + 120.0, "graph_pool_MB": 120.0}  # as captured_with_memory reads
    cuda.allocate(120.0)  # the pool stays allocated; replay allocates nothing
    own.before_warmup()
    own.after_warmup(lambda x: None, lambda i: i, [0])
    memory = own.memory(None, None, graph)
    assert memory["graph_capture_peak_MB"] == 170.0 and memory["activation_peak_MB"] == 120.0
    assert memory["peak_gpu_mem_MB"] == 170.0 and memory["allocated_MB"] == 170.0
    assert "private pool" in memory["activation_source"]


class FakeMonitor:
    def static_info(self):
        return {"nvml": True, "name": "NVIDIA H200", "driver": "580.65"}

    def snapshot(self):
        return {"energy_mJ": 5_000_000, "device_used_MB": 9000.0}

    def other_processes(self):
        return []


def test_energy_per_image_is_null_in_a_worker_and_says_why():
    state = {"before": {"energy_mJ": 1_000_000}}
    alone, _ = _gpu_readings(FakeMonitor(), state, {"reserved_MB": 10.0}, images=100)
    assert alone["energy_mJ_per_image"] == 40_000.0
    memory: dict = {"reserved_MB": None}
    shared, _ = _gpu_readings(FakeMonitor(), state, memory, images=100, shared=True)
    assert shared["energy_mJ_per_image"] is None and shared["energy_scope"] == ENERGY_SCOPE
    assert "device_used_MB" not in memory


def test_the_window_runs_the_loops_first_inputs():
    cache = InputCache(torch.zeros(5, 3, 8, 8, dtype=torch.uint8), "", "")
    assert memory_iterations(cache, 1, 40) == list(range(MEMORY_FORWARDS))
    assert memory_iterations(cache, 1, 1) == [0]


def _turns_of_other_models(mib: int):
    """A study worker's loop: the model's warm-up and window, then other models' turns, which need `mib`."""

    def loop(forward, next_input, warmup, iters, device, after_warmup=None, before_warmup=None, **_):
        if before_warmup is not None:
            before_warmup()
        timings = run_timed_loop(forward, next_input, warmup, 0, device, after_warmup=after_warmup)
        others = np.ones(mib * MIB // 8)  # touched: resident while the loop lasts
        timings.latency_ms = [float(others[0])]
        return timings

    return loop


def test_in_a_worker_the_model_is_measured_alone_and_other_models_turns_do_not_count():
    if not reset_rss_peak():
        pytest.skip("this kernel does not let a process reset its VmHWM")
    model = torch.nn.Conv2d(3, 4, 3)
    inputs = InputCache(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), "", "")
    cpu = torch.device("cpu")
    args = (model, inputs, 1, cpu, ExecutionMode(), 1, 4)
    shared = measure(*args, loop=_turns_of_other_models(300), watch_host=False, model_rss_mib=1.0,
                     shared_process=True).memory
    assert shared["activation_peak_rss_MB"] < 50 and shared["loop_peak_rss_MB"] is None
    assert shared["model_memory_MB"] == shared["weights_MB"] + shared["activation_peak_rss_MB"]
    assert shared["model_rss_MB"] == 1.0 and shared["scope"]
    alone = measure(*args, loop=_turns_of_other_models(300), watch_host=False, model_rss_mib=1.0).memory
    assert alone["activation_peak_rss_MB"] > 250 and "scope" not in alone  # bench's loop peak: what ran in it
