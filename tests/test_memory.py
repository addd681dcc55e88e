"""Memory fields: CUDA peak/allocated/reserved via a fake allocator; nulls on CPU."""

from __future__ import annotations

import torch

from detbench.measure.memory import MIB, memory_report, reset_cuda_peak


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
