"""The timed loop on CPU, and the CUDA event/synchronize order with a fake torch.cuda."""

from __future__ import annotations

import gc
import time

import torch

from detbench.measure.timing import Heartbeat, StopRule, run_timed_loop
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


def test_garbage_collector_is_off_in_the_timed_loop_only():
    states = []
    timings = run_timed_loop(lambda x: states.append(gc.isenabled()), lambda i: torch.tensor(i), warmup=2, iters=3,
                             device=torch.device("cpu"))
    assert states == [True, True, False, False, False] and len(timings.latency_ms) == 3
    assert gc.isenabled()  # as it was before


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


def test_cuda_enqueue_time_ends_when_forward_returns_not_at_the_sync():
    """The launch time is read before the synchronize: a slow device does not count in it."""
    cuda = FakeCuda()
    cuda.synchronize = lambda device=None: time.sleep(0.02)  # the device still busy after the launches

    def forward(x):
        time.sleep(0.002)  # launching

    timings = run_timed_loop(forward, lambda i: torch.tensor(i), warmup=0, iters=3, device=torch.device("cuda:0"),
                             cuda=cuda)
    assert len(timings.enqueue_ms) == 3
    assert all(1.5 < enqueue < 15 for enqueue in timings.enqueue_ms), timings.enqueue_ms
    assert all(host >= 20 for host in timings.host_ms)
    cpu = run_timed_loop(forward, lambda i: torch.tensor(i), warmup=0, iters=2, device=torch.device("cpu"))
    assert cpu.enqueue_ms == []  # CPU: nothing is enqueued


def test_statistics_use_linear_percentiles_and_sample_std():
    values = list(range(1, 101))  # 1..100
    s = summarize(values)
    assert s["mean_ms"] == 50.5 and s["median_ms"] == s["p50_ms"] == 50.5
    assert abs(s["p95_ms"] - 95.05) < 1e-9 and abs(s["p99_ms"] - 99.01) < 1e-9
    assert s["min_ms"] == 1 and s["max_ms"] == 100
    assert abs(s["std_ms"] - 29.011491975882016) < 1e-9


def test_throughput_counts_the_batch():
    assert throughput(8, 10.0, 8.0) == {"fps_mean": 800.0, "fps_p50": 1000.0}


def test_the_heartbeat_says_how_far_the_loop_is_between_iterations():
    lines: list[str] = []
    run_timed_loop(lambda x: None, lambda i: torch.tensor(i), warmup=2, iters=3, device=torch.device("cpu"),
                   heartbeat=Heartbeat(lines.append, every=0.0), stop=StopRule(3))
    assert [line.split(" (")[0] for line in lines] == [
        "  warm-up: 1 of 2 forwards", "  warm-up: 2 of 2 forwards", "  timed loop: 1 of 3 forwards",
        "  timed loop: 2 of 3 forwards", "  timed loop: 3 of 3 forwards"]
    quiet: list[str] = []
    run_timed_loop(lambda x: None, lambda i: torch.tensor(i), warmup=2, iters=3, device=torch.device("cpu"),
                   heartbeat=Heartbeat(quiet.append))  # every 15 s: a loop of milliseconds says nothing
    assert quiet == []
