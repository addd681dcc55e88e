"""BenchConfig: every setting of one benchmark run, validated once and passed everywhere."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from detbench import limits
from detbench.errors import DetbenchError
from detbench.names import check_model_name

LIMITS = {
    "imgsz": (32, 8192),
    "batch": (1, 1024),
    "iters": (1, 1_000_000),
    "warmup": (0, 1_000_000),
    "benchmark_size": (1, 1_000_000),
    "threads": (1, 4096),
    "max_image_pixels": (1, 2**36),
}


def available_cores() -> int:
    """CPU cores this process may run on (respects affinity masks and cgroup pinning)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def validate_stopping(min_time: float, target_ci: float | None, max_time: float | None) -> None:
    """--min-time >= 0, 0 < --target-ci < 1, --max-time > 0 and only with --target-ci, not below --min-time."""
    for flag, value in (("--min-time", min_time), ("--target-ci", target_ci), ("--max-time", max_time)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value)):
            raise DetbenchError(f"{flag} must be a number, got {value!r}")
    if not 0 <= min_time <= 86_400:
        raise DetbenchError(f"--min-time must be between 0 and 86400 seconds, got {min_time}")
    if target_ci is not None and not 0 < target_ci < 1:
        raise DetbenchError(f"--target-ci is a fraction of the median between 0 and 1 (e.g. 0.01), got {target_ci}")
    if max_time is not None:
        if target_ci is None:
            raise DetbenchError("--max-time bounds the --target-ci extension; give --target-ci too, or drop it")
        if not 0 < max_time <= 86_400 or max_time < min_time:
            raise DetbenchError(f"--max-time must be positive, at most 86400 and not below --min-time "
                                f"({min_time}), got {max_time}")


@dataclass
class BenchConfig:
    """Settings of one `detbench bench` run; defaults are the user specification's."""

    weights: str
    imgsz: int = 640
    device: str | None = None  # None: first CUDA GPU if there is one, else cpu
    warmup: int = 50
    iters: int = 300
    batch: int = 1
    data: str | None = None
    seed: int = 42
    benchmark_size: int = 200
    use_benchmark_list: bool = False
    name: str | None = None
    out: str = "results/bench"
    list_path: str | None = None  # None: {out}/benchmark_list.txt
    threads: int | None = None  # None: all available cores
    unsafe_load: bool = False
    half: bool = False
    amp: bool = False
    channels_last: bool = False
    cudnn_benchmark: bool = True
    cuda_graph: bool = False
    min_time: float = 0.0  # seconds: the timed loop runs at least this long AND at least `iters` iterations
    target_ci: float | None = None  # then until the median CI half-width / median is at most this
    max_time: float | None = None  # seconds: bound of the --target-ci extension (default 60)
    pipeline: bool = False  # also time preprocess + inference + postprocess per image
    plugins: list[str] = field(default_factory=list)
    load_timeout: float = limits.LOAD_TIMEOUT_S  # seconds the bounded model check may take
    load_memory_mb: float = limits.LOAD_MEMORY_BYTES / 2**20  # memory it may use beyond the interpreter
    max_image_pixels: int = limits.MAX_IMAGE_PIXELS  # larger images are refused before decoding
    time_budget: float = limits.RUN_TIME_BUDGET_S  # runs estimated to take longer are refused before they start

    def __post_init__(self) -> None:
        self.validate()
        if self.threads is None:
            self.threads = available_cores()

    def validate(self) -> None:
        """Raise DetbenchError naming the flag for any value out of range."""
        for name, (low, high) in LIMITS.items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise DetbenchError(f"--{name} must be an integer, got {value!r}")
            if not low <= value <= high:
                raise DetbenchError(f"--{name} must be between {low} and {high}, got {value}")
        if not str(self.weights).strip():
            raise DetbenchError("--weights is empty: give a .pt checkpoint, a model .yaml or a zoo model name")
        if self.name is not None:
            check_model_name(self.name, f"--name {self.name[:80]!r}", "the report is OUT/NAME.json: choose a plain "
                             "file name")
        validate_stopping(self.min_time, self.target_ci, self.max_time)
        for flag, value, high in (("--load-timeout", self.load_timeout, 86_400),
                                  ("--load-memory", self.load_memory_mb, 2**30),
                                  ("--time-budget", self.time_budget, 30 * 86_400)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= high:
                raise DetbenchError(f"{flag} must be a positive number up to {high}, got {value!r}")

