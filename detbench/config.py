"""BenchConfig: every setting of one benchmark run, validated once and passed everywhere."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from detbench.errors import DetbenchError

LIMITS = {
    "imgsz": (32, 8192),
    "batch": (1, 1024),
    "iters": (1, 1_000_000),
    "warmup": (0, 1_000_000),
    "benchmark_size": (1, 1_000_000),
    "threads": (1, 4096),
}


def available_cores() -> int:
    """CPU cores this process may run on (respects affinity masks and cgroup pinning)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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
    plugins: list[str] = field(default_factory=list)

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
