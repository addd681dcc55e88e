"""Memory fields: CUDA peak/allocated/reserved via a fake allocator; nulls on CPU; the model's own memory on CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detbench.measure.memory import (
    MIB,
    captured_with_memory,
    current_rss_mib,
    graph_mode_memory,
    lifetime_peak_rss_mib,
    loop_memory,
    memory_report,
    process_memory,
    reset_cuda_peak,
    reset_rss_peak,
    rss_peak_mib,
    weights_mib,
)


class FakeAllocator:
    def __init__(self):
        self.allocated, self.peak, self.reserved, self.calls = 100 * MIB, 300 * MIB, 512 * MIB, []

    def synchronize(self, device=None):
        self.calls.append("sync")

    def reset_peak_memory_stats(self, device=None):
        self.calls.append("reset")
        self.peak = self.allocated

    def memory_allocated(self, device=None):
        return self.allocated

    def max_memory_allocated(self, device=None):
        return self.peak

    def memory_reserved(self, device=None):
        return self.reserved


def test_cuda_peak_is_reset_then_measured_over_the_loop():
    cuda = FakeAllocator()
    device = torch.device("cuda:0")
    baseline = reset_cuda_peak(device, cuda)
    assert cuda.calls == ["sync", "reset"] and baseline == 100.0
    cuda.peak = 160 * MIB  # activations during the loop
    memory = memory_report(device, baseline, cuda)
    assert memory["peak_gpu_mem_MB"] == 160.0
    assert memory["allocated_MB"] == 100.0
    assert memory["activation_peak_MB"] == 60.0
    assert memory["reserved_MB"] == 512.0
    assert memory["peak_rss_MB"] > 0


def test_cpu_leaves_gpu_fields_null_not_zero():
    memory = memory_report(torch.device("cpu"), None)
    for key in ("peak_gpu_mem_MB", "allocated_MB", "reserved_MB", "activation_peak_MB"):
        assert memory[key] is None
    assert memory["peak_rss_MB"] >= memory["rss_MB"] * 0.5 > 0


def test_rss_high_water_mark_is_reset_before_the_loop_and_read_after():
    """A 200 MiB allocation made after the reset shows in the loop's peak; one freed before it does not."""
    before_reset = np.ones(200 * MIB // 8)  # touched: resident
    del before_reset
    if not reset_rss_peak():
        pytest.skip("this kernel does not let a process reset its VmHWM")
    rss = current_rss_mib()
    assert rss_peak_mib() < rss + 100  # the earlier 200 MiB no longer counts
    during = np.ones(200 * MIB // 8)
    memory = loop_memory(rss, True, model_rss_mib=50.0, weights=12.0)
    del during
    assert 180 < memory["activation_peak_rss_MB"] < 400
    assert memory["model_memory_MB"] == memory["weights_MB"] + memory["activation_peak_rss_MB"]
    assert loop_memory(rss, False, 50.0, 12.0)["activation_peak_rss_MB"] is None  # no reset: no loop peak claimed


def test_the_reset_does_not_lower_the_lifetime_peak_and_shared_weights_count_once():
    lifetime = lifetime_peak_rss_mib()
    reset_rss_peak()
    assert process_memory(lifetime)["peak_rss_MB"] >= lifetime
    shared = torch.nn.Linear(256, 256, bias=False)
    model = torch.nn.Sequential(shared, shared)  # one weight used twice
    assert weights_mib(model) == 256 * 256 * 4 / MIB


def test_cuda_graph_activations_are_the_capture_pool_not_the_replay():
    """Replay allocates nothing; the capture's peak above what was allocated before it is the activations."""
    cuda = FakeAllocator()
    device = torch.device("cuda:0")

    def capture(before_capture):
        cuda.peak = cuda.allocated + 500 * MIB  # the side-stream warm-up (cuDNN autotuning): not measured
        before_capture()
        cuda.peak = cuda.allocated + 120 * MIB  # the graph's private pool fills while capturing
        return "graphed"

    graphed, graph = captured_with_memory(capture, device, cuda)
    assert graphed == "graphed" and graph == {"graph_capture_peak_MB": 220.0, "graph_pool_MB": 120.0}
    loop = memory_report(device, reset_cuda_peak(device, cuda), cuda)  # the replay loop: no new allocation
    assert loop["activation_peak_MB"] == 0.0
    memory = graph_mode_memory(loop, graph)
    assert memory["activation_peak_MB"] == 120.0 and memory["peak_gpu_mem_MB"] == 220.0
    assert "private pool" in memory["activation_source"]
