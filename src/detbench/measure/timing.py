"""The timed loop: warm-up, then one measurement per iteration.

CPU: `time.perf_counter_ns` around the forward pass.
CUDA: per iteration, the input is ready and the device idle (synchronize);
a start event is recorded, the forward runs, an end event is recorded, and
the host synchronizes; the latency is the events' `elapsed_time`. The host
time around the same region is kept too, and the time until forward()
returned (the kernels launched, before the synchronize): when that launch time
is close to the device time, the run is bound by kernel launches, not by the
GPU. The garbage collector is off during the timed loop.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from detbench.stats import summary as stats
from detbench.text import Cadence

DEFAULT_MAX_TIME_S = 60.0


@contextlib.contextmanager
def collector_paused() -> Any:
    """Python's garbage collector off for the block (a collection pass inside a timed forward would be counted
    as the model's time), back as it was after."""
    was_enabled = gc.isenabled()
    gc.collect()  # start the block with nothing pending
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class Timings:
    latency_ms: list[float] = field(default_factory=list)  # device time on CUDA, host time on CPU
    host_ms: list[float] = field(default_factory=list)
    enqueue_ms: list[float] = field(default_factory=list)  # CUDA: until forward() returned, before the sync
    warmup_ms: list[float] = field(default_factory=list)
    timer: str = "perf_counter_ns"
    stop_reason: str = "iters"
    warmup_s: float = 0.0  # wall time of the warm-up
    timed_s: float = 0.0  # wall time of the timed loop
    ci_half_width_rel: float | None = None  # at the last check, when a target CI was set

    def add(self, timer: ForwardTimer, latency: float, host: float) -> None:
        """One timed forward's figures, with its launch time when the timer read one (CUDA)."""
        self.latency_ms.append(latency)
        self.host_ms.append(host)
        if timer.last_enqueue_ms is not None:
            self.enqueue_ms.append(timer.last_enqueue_ms)


@dataclass(frozen=True)
class StopRule:
    """When the timed loop may stop: floors `iters` and `min_time_s`, then optionally a target CI."""

    iters: int
    min_time_s: float = 0.0
    target_ci: float | None = None
    max_time_s: float | None = None  # only bounds the target-CI extension; default DEFAULT_MAX_TIME_S

    @property
    def max_time(self) -> float:
        return DEFAULT_MAX_TIME_S if self.max_time_s is None else self.max_time_s

    def describe(self) -> dict[str, Any]:
        return {
            "iters_min": self.iters,
            "min_time_s": self.min_time_s,
            "target_ci": self.target_ci,
            "max_time_s": self.max_time if self.target_ci is not None else None,
            "rule": ("at least iters_min iterations and min_time_s seconds"
                     + ("; then until the median's 95 % CI half-width / median <= target_ci, "
                        "within max_time_s seconds of timed loop" if self.target_ci is not None else "")),
        }


class Stopper:
    """Decides after each timed iteration whether the loop is done."""

    def __init__(self, rule: StopRule) -> None:
        self.rule = rule
        self.next_check = 0
        self.reason = ""
        self.ci_half_width_rel: float | None = None

    def done(self, samples: list[float], elapsed_s: float) -> bool:
        n, rule = len(samples), self.rule
        if n < rule.iters or elapsed_s < rule.min_time_s:
            return False
        if rule.target_ci is None:
            self.reason = "iters" if n <= rule.iters else "min_time"  # the floor met last
            return True
        if n >= self.next_check:
            self.next_check = n + max(1, n // 20)
            median = float(np.median(samples)) if samples else 0.0
            self.ci_half_width_rel = stats.relative_half_width(stats.median_ci(samples), median)  # None: too few
            if self.ci_half_width_rel is not None and self.ci_half_width_rel <= rule.target_ci:
                self.reason = "target_ci"
                return True
        if elapsed_s >= rule.max_time:
            self.reason = "max_time"
            return True
        return False


class ForwardTimer:
    """Times one forward pass: CUDA events around it on CUDA (input ready, device idle), perf_counter_ns on CPU.

    Returns (latency_ms, host_ms): the device time on CUDA (the host's wall time on CPU) and the host's wall
    time of the same region. On CUDA, `last_enqueue_ms` is the host time until forward() returned, before the
    synchronize: the time to launch the kernels. When it is close to the device time the GPU was waiting for
    the launches (launch-bound); events alone cannot show that, because on an idle stream they stretch to the
    launches.
    """

    def __init__(self, device: torch.device, cuda: Any = torch.cuda) -> None:
        self.device, self.cuda = device, cuda
        self.on_cuda = device.type == "cuda"
        self.name = "cuda_event" if self.on_cuda else "perf_counter_ns"
        self.last_enqueue_ms: float | None = None
        if self.on_cuda:
            self.start, self.end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)

    def __call__(self, forward: Callable[[torch.Tensor], Any], x: torch.Tensor) -> tuple[float, float]:
        if not self.on_cuda:
            t0 = time.perf_counter_ns()
            forward(x)
            host = (time.perf_counter_ns() - t0) / 1e6
            return host, host
        self.cuda.synchronize(self.device)
        t0 = time.perf_counter_ns()
        self.start.record()
        forward(x)
        self.last_enqueue_ms = (time.perf_counter_ns() - t0) / 1e6
        self.end.record()
        self.cuda.synchronize(self.device)
        host = (time.perf_counter_ns() - t0) / 1e6
        return float(self.start.elapsed_time(self.end)), host


class Heartbeat:
    """A progress line at most every `every` seconds of a loop, from outside its timed regions (one clock reading
    per iteration): `heartbeat("warm-up", done, total)`."""

    def __init__(self, echo: Callable[[str], None], every: float = 15.0) -> None:
        self.echo, self.cadence = echo, Cadence(every)

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self.cadence.due():
            self.cadence.said()
            count = f"{done} of {total}" if done <= total else f"{done} ({total} asked, the stopping rule goes on)"
            self.echo(f"  {phase}: {count} forwards ({self.cadence.last - self.cadence.began:.0f} s)")


def run_warmup(forward: Callable[[torch.Tensor], Any], next_input: Callable[[int], torch.Tensor], warmup: int,
               device: torch.device, cuda: Any, timings: Timings, heartbeat: Heartbeat | None = None) -> None:
    """`warmup` untimed-for-the-statistics forwards; their wall times go to `timings.warmup_ms`."""
    on_cuda = device.type == "cuda"
    warmup_start = time.perf_counter()
    for i in range(warmup):
        x = next_input(i)
        t0 = time.perf_counter_ns()
        forward(x)
        if on_cuda:
            cuda.synchronize(device)
        timings.warmup_ms.append((time.perf_counter_ns() - t0) / 1e6)
        if heartbeat is not None:
            heartbeat("warm-up", i + 1, warmup)
    timings.warmup_s = time.perf_counter() - warmup_start


def run_timed_loop(forward: Callable[[torch.Tensor], Any], next_input: Callable[[int], torch.Tensor],
                   warmup: int, iters: int, device: torch.device, cuda: Any = torch.cuda,
                   after_warmup: Callable[[], None] | None = None, stop: StopRule | None = None,
                   heartbeat: Heartbeat | None = None) -> Timings:
    """Warm up, call `after_warmup` (e.g. reset the peak-memory counter), then time `iters` forwards.

    `next_input(i)` gives iteration i's batch, prepared outside the timed region;
    the timed iterations start again at input 0, so every model sees the same
    sequence. `cuda` is injectable so the CUDA path can be tested without a GPU.
    `stop` replaces the fixed count by the stopping rule (its `iters` is the floor). `heartbeat` says how far the
    loop is, every so often, between iterations.
    """
    stopper = Stopper(stop if stop is not None else StopRule(iters))
    timer = ForwardTimer(device, cuda)
    timings = Timings(timer=timer.name)
    with torch.inference_mode():
        run_warmup(forward, next_input, warmup, device, cuda, timings, heartbeat)
        if after_warmup is not None:
            after_warmup()
        with collector_paused():
            loop_start = time.perf_counter_ns()
            i = 0
            while not stopper.done(timings.latency_ms, (time.perf_counter_ns() - loop_start) / 1e9):
                timings.add(timer, *timer(forward, next_input(i)))
                i += 1
                if heartbeat is not None:
                    heartbeat("timed loop", i, stopper.rule.iters)
            timings.timed_s = (time.perf_counter_ns() - loop_start) / 1e9
    timings.stop_reason = stopper.reason
    timings.ci_half_width_rel = stopper.ci_half_width_rel
    return timings


def stopping_section(rule: StopRule, timings: Timings) -> dict[str, Any]:
    """The report's `stopping` section: the rule, why the loop stopped, how many iterations in how long."""
    return {
        **rule.describe(),
        "reason": timings.stop_reason,
        "iterations": len(timings.latency_ms),
        "timed_s": timings.timed_s,
        "warmup_s": timings.warmup_s,
        "ci_half_width_rel_at_stop": timings.ci_half_width_rel,
    }
