"""The per-model report as typed sections: what `bench` writes, what `compare`, `ablate` and `gpu_check` read.

Each section is a dataclass with `to_dict` (the JSON layout of the user
specification, keys in the order below) and `from_dict`. Keys a section does
not declare are kept in its `extra` and written back as they were, so a
report from a newer detbench loses nothing when it passes through this one.

`from_dict` expects a dict that `detbench.report.schema.validate_report` has
accepted; `Report.from_dict` also reads schema version 1, in which an interval
that needed more samples was the string "insufficient samples" (now null, the
reason in `statistics.unavailable`) and there was no `config` section.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
V1_INSUFFICIENT = "insufficient samples"


@dataclass(kw_only=True)
class Section:
    """Declared fields, then `extra`: the keys this version does not know, kept as they are."""

    extra: dict[str, Any] = field(default_factory=dict)
    NESTED: ClassVar[dict[str, type[Section]]] = {}  # fields that hold a section (or None)
    OMIT_IF_NONE: ClassVar[tuple[str, ...]] = ()  # fields written only when set

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for item in fields(self):
            if item.name == "extra":
                continue
            value = getattr(self, item.name)
            if value is None and item.name in self.OMIT_IF_NONE:
                continue
            out[item.name] = value.to_dict() if isinstance(value, Section) else value
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Any:
        data = dict(data or {})
        values: dict[str, Any] = {}
        for item in fields(cls):
            if item.name == "extra" or item.name not in data:
                continue
            value = data.pop(item.name)
            nested = cls.NESTED.get(item.name)
            values[item.name] = nested.from_dict(value) if nested and isinstance(value, dict) else value
        return cls(**values, extra=data)


@dataclass(kw_only=True)
class Metadata(Section):
    model_name: str | None = None
    weights: str | None = None
    weights_sha256: str | None = None
    model_source: str | None = None  # checkpoint, yaml or zoo
    imgsz: int | None = None  # as run: --imgsz rounded up to the model's stride
    imgsz_requested: int | None = None
    batch: int | None = None
    device: str | None = None
    warmup: int | None = None
    iters: int | None = None  # timed iterations run (the samples); the stopping rule or a study may differ from --iters
    iters_requested: int | None = None  # --iters
    timestamp: str | None = None
    benchmark_list: str | None = None
    benchmark_size: int | None = None
    benchmark_size_requested: int | None = None
    seed: int | None = None
    data: str | None = None
    unsafe_load: bool | None = None


@dataclass(kw_only=True)
class Complexity(Section):
    params: int | None = None
    params_M: float | None = None
    params_fused: int | None = None
    gflops: float | None = None  # of the fused model, at imgsz
    gflops_unfused: float | None = None
    gflops_method: str | None = None


@dataclass(kw_only=True)
class LatencySummary(Section):
    mean_ms: float | None = None
    median_ms: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    std_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None


@dataclass(kw_only=True)
class Latency(LatencySummary):
    n_samples: int | None = None
    timer: str | None = None  # cuda_event or perf_counter_ns
    scope: str | None = None
    percentile_method: str | None = None
    std_ddof: int | None = None
    host: LatencySummary | None = None  # on CUDA: host wall time of the same iterations
    NESTED: ClassVar[dict[str, type[Section]]] = {"host": LatencySummary}


@dataclass(kw_only=True)
class Throughput(Section):
    fps_mean: float | None = None
    fps_p50: float | None = None


@dataclass(kw_only=True)
class Memory(Section):
    peak_gpu_mem_MB: float | None = None
    allocated_MB: float | None = None
    reserved_MB: float | None = None
    activation_peak_MB: float | None = None
    peak_rss_MB: float | None = None
    rss_MB: float | None = None
    model_rss_MB: float | None = None  # CPU: resident memory that loading and fusing the model added
    weights_MB: float | None = None  # CPU: bytes of the fused model's parameters and buffers
    loop_peak_rss_MB: float | None = None  # CPU: resident high-water mark during the timed loop
    activation_peak_rss_MB: float | None = None  # CPU: that peak minus the RSS at its reset after the warm-up
    model_memory_MB: float | None = None  # CPU: weights_MB + activation_peak_rss_MB
    unit: str | None = None


@dataclass(kw_only=True)
class Inputs(Section):
    list_sha256: str | None = None
    files_sha256: str | None = None
    decoded_sha256: str | None = None
    n_images: int | None = None
    population_size: int | None = None
    population_sha256: str | None = None
    truncated: bool | None = None
    letterbox: str | None = None
    shapes: dict[str, int] | None = None  # --rect: batches of one pass over the list per input shape ("HxW")


@dataclass(kw_only=True)
class Settings(Section):
    threads: int | None = None  # read back from torch
    threads_requested: int | None = None
    interop_threads: int | None = None
    precision: str | None = None
    channels_last: bool | None = None
    cuda_graph: bool | None = None
    cudnn_benchmark: bool | None = None
    tf32_conv: bool | None = None  # CUDA: fp32 convolutions may run in TF32 (torch.backends.cudnn.allow_tf32)
    tf32_matmul: bool | None = None  # CUDA: fp32 matmuls may run in TF32 (torch.backends.cuda.matmul.allow_tf32)
    fused: bool | None = None
    inference_mode: bool | None = None
    gc_paused_in_loop: bool | None = None  # Python's garbage collector off during the timed loop
    backend: dict[str, Any] | None = None  # --format other than pytorch: runtime, version, threads, exported file


@dataclass(kw_only=True)
class Statistics(Section):
    """CIs, spread, outliers and warnings of the timed samples (`detbench.stats.diagnostics`).

    An interval or bound that needs more samples than were taken is null, and `unavailable` names it with
    the reason.
    """

    n_samples: int | None = None
    confidence: float | None = None
    method: str | None = None
    median_ci95_ms: list[float] | None = None
    median_ci95_ranks: list[int] | None = None
    p95_ci95_ms: list[float] | None = None
    p95_ci95_ranks: list[int] | None = None
    p99_ci95_ms: list[float] | None = None
    p99_ci95_ranks: list[int] | None = None
    p95_upper95_ms: float | None = None
    p95_upper95_rank: int | None = None
    p95_upper95_min_samples: int | None = None
    p99_upper95_ms: float | None = None
    p99_upper95_rank: int | None = None
    p99_upper95_min_samples: int | None = None
    median_ci_half_width_rel: float | None = None
    unavailable: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. an upper bound that is only the largest sample
    q1_ms: float | None = None
    q3_ms: float | None = None
    iqr_ms: float | None = None
    iqr_over_median: float | None = None
    cv: float | None = None
    outliers: dict[str, Any] | None = None
    warmup_check: dict[str, Any] | None = None
    host_over_device: float | None = None
    enqueue_over_device: float | None = None  # CUDA: launch time / device time (medians); >= 0.8: launch-bound
    warnings: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class Samples(Section):
    """Every raw measurement, in the order taken (ms)."""

    latency_ms: list[float] = field(default_factory=list)
    host_ms: list[float] | None = None
    enqueue_ms: list[float] | None = None  # CUDA: host time until forward() returned (launching the kernels)
    warmup_ms: list[float] | None = None
    pipeline_ms: dict[str, list[float]] | None = None
    round: list[int] | None = None  # in a study: the round of each latency sample
    worker: list[int] | None = None  # in a study: the worker process that took it
    OMIT_IF_NONE: ClassVar[tuple[str, ...]] = ("round", "worker", "enqueue_ms")


@dataclass(kw_only=True)
class Report(Section):
    """One model's report. `status` is "ok", or why timing did not finish (e.g. "oom", with `error`)."""

    schema_version: int = SCHEMA_VERSION
    status: str = "ok"
    error: str | None = None
    metadata: Metadata = field(default_factory=Metadata)
    model_complexity: Complexity = field(default_factory=Complexity)
    latency: Latency = field(default_factory=Latency)
    throughput: Throughput = field(default_factory=Throughput)
    memory: Memory = field(default_factory=Memory)
    gpu: dict[str, Any] | None = None
    host_load: dict[str, Any] | None = None  # CPU pressure and runnable tasks around the timed loop
    warnings: list[str] = field(default_factory=list)
    statistics: Statistics | None = None
    stopping: dict[str, Any] | None = None
    pipeline: dict[str, Any] | None = None
    setup_cache: dict[str, Any] | None = None
    model_check: dict[str, Any] | None = None
    inputs: Inputs = field(default_factory=Inputs)
    settings: Settings = field(default_factory=Settings)
    config: dict[str, Any] | None = None  # BenchConfig.to_dict(): every setting of the run
    environment: dict[str, Any] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)
    cwd: str | None = None
    notes: list[str] = field(default_factory=list)
    samples: Samples = field(default_factory=Samples)
    rounds: list[dict[str, Any]] | None = None
    study: dict[str, Any] | None = None  # made by an interleaved study: its id, design and this model's workers
    timing_phases_s: dict[str, Any] | None = None
    parity: dict[str, Any] | None = None  # --format: the backend's outputs against PyTorch's

    NESTED: ClassVar[dict[str, type[Section]]] = {
        "metadata": Metadata, "model_complexity": Complexity, "latency": Latency, "throughput": Throughput,
        "memory": Memory, "statistics": Statistics, "inputs": Inputs, "settings": Settings, "samples": Samples}
    OMIT_IF_NONE: ClassVar[tuple[str, ...]] = ("error", "config", "rounds", "study", "timing_phases_s",
                                               "host_load")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Report:
        data = dict(data or {})
        if data.get("schema_version") == 1:
            data = upgrade_v1(data)
        return super().from_dict(data)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def name(self) -> str:
        return str(self.metadata.model_name)

    def latency_samples(self) -> list[float]:
        return list(self.samples.latency_ms or [])

    def save(self, folder: str | Path, force: bool = False) -> Path:
        """Write the report as FOLDER/NAME.json (validated, atomically); return the path. A report already there is
        replaced only by one of the same settings, as `detbench bench` would (DetbenchError naming each
        difference); `force` replaces any."""
        # both import this module: imported here, not at the top
        from detbench.report.schema import write_report
        from detbench.workflows.existing import refuse_replacing_with

        path = Path(folder) / f"{self.name}.json"
        if not force:
            refuse_replacing_with(path, self)
        return write_report(self, path)

    def __repr__(self) -> str:
        return f"Report({self.metadata.model_name!r}, status {self.status!r}, median {self.latency.median_ms} ms)"


def upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A version-1 report in version 2's form: "insufficient samples" strings become null plus a reason."""
    data = {**data, "schema_version": SCHEMA_VERSION}
    statistics = data.get("statistics")
    if isinstance(statistics, dict):
        data["statistics"] = without_placeholders(statistics)
    pipeline = data.get("pipeline")
    if isinstance(pipeline, dict):
        data["pipeline"] = {stage: ({**part, "statistics": without_placeholders(part["statistics"])}
                                    if isinstance(part, dict) and isinstance(part.get("statistics"), dict) else part)
                            for stage, part in pipeline.items()}
    return data


def without_placeholders(statistics: dict[str, Any]) -> dict[str, Any]:
    unavailable = {key: value for key, value in statistics.items() if value == V1_INSUFFICIENT}
    recorded = statistics.get("unavailable")
    return {**statistics, **dict.fromkeys(unavailable),
            "unavailable": {**unavailable, **(recorded if isinstance(recorded, dict) else {})}}
