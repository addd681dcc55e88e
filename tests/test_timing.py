"""The timed loop on CPU, and the CUDA event/synchronize order with a fake torch.cuda."""

from __future__ import annotations

import time

import torch

from detbench.measure.timing import run_timed_loop
from detbench.stats.summary import summarize, throughput


def test_cpu_loop_times_each_iteration_after_warmup():
    seen = []

    def forward(x):
        seen.append(int(x.item()))
        time.sleep(0.002)

    timings = run_timed_loop(forward, lambda i: torch.tensor(i), warmup=3, iters=10, device=torch.device("cpu"))
    assert seen == [0, 1, 2] + list(range(10))  # warm-up first, then the timed sequence from input 0
    assert len(timings.latency_ms) == 10 and len(timings.warmup_ms) == 3
    assert timings.timer == "perf_counter_ns"
    assert all(1.5 < ms < 1000 for ms in timings.latency_ms)


class FakeEvent:
    def __init__(self, log, name):
        self.log, self.name, self.when = log, name, None

    def record(self):
        self.log.append(f"record:{self.name}")
        self.when = len(self.log)

    def elapsed_time(self, other):
        self.log.append("elapsed")
        return 1.25


class FakeCuda:
    def __init__(self):
        self.log = []
        self.names = iter(["start", "end"])

    def Event(self, enable_timing=False):  # noqa: N802 (mirrors torch.cuda.Event)
        assert enable_timing
        return FakeEvent(self.log, next(self.names))

    def synchronize(self, device=None):
        self.log.append("sync")


def test_cuda_path_records_events_around_forward_and_synchronizes():
    cuda = FakeCuda()

    def forward(x):
        cuda.log.append("forward")

    timings = run_timed_loop(forward, lambda i: torch.tensor(i), warmup=2, iters=3,
                             device=torch.device("cuda:0"), cuda=cuda,
                             after_warmup=lambda: cuda.log.append("reset-peak"))
    log = cuda.log
    assert log[:5] == ["forward", "sync", "forward", "sync", "reset-peak"]
    one_iteration = ["sync", "record:start", "forward", "record:end", "sync", "elapsed"]
    assert log[5:] == one_iteration * 3
    assert timings.latency_ms == [1.25] * 3 and timings.timer == "cuda_event"
    assert len(timings.host_ms) == 3


def test_statistics_use_linear_percentiles_and_sample_std():
    values = list(range(1, 101))  # 1..100
    s = summarize(values)
    assert s["mean_ms"] == 50.5 and s["median_ms"] == s["p50_ms"] == 50.5
    assert abs(s["p95_ms"] - 95.05) < 1e-9 and abs(s["p99_ms"] - 99.01) < 1e-9
    assert s["min_ms"] == 1 and s["max_ms"] == 100
    assert abs(s["std_ms"] - 29.011491975882016) < 1e-9


def test_throughput_counts_the_batch():
    assert throughput(8, 10.0, 8.0) == {"fps_mean": 800.0, "fps_p50": 1000.0}
