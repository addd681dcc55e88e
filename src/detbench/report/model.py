"""The per-model report as typed sections: what `bench` writes, what `compare`, `ablate` and `gpu_check` read.

This is the report's one shape definition: each field's type, its place in the
JSON layout of the user specification (keys in the order below) and, where
`validate_report` checks it, its `Kind` (`checked(...)` for a dataclass field,
`Key(kind)` for an open section's key).

Two kinds of section:
- fixed ones (`Section`, a dataclass: `metadata`, `latency`, ...): the declared
  fields in order, then `extra`, the keys this version does not know, written
  back as they were;
- open ones (`Record`, a dict whose declared keys read and set as attributes:
  `study`, `pipeline`, `gpu`, ...): their keys vary with the run, so the dict
  keeps them, and their order, exactly as written.
Either way a report from a newer detbench loses nothing when it passes through
this one. Sections build themselves from samples (`Latency.from_values`,
`Throughput.from_latency`, `Statistics.from_samples`, `PipelineStage.from_values`).

`from_dict` expects a dict that `detbench.report.schema.validate_report` has
accepted; `Report.from_dict` also reads schema version 1, in which an interval
that needed more samples was the string "insufficient samples" (now null, the
reason in `statistics.unavailable`) and there was no `config` section.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Generic, TypeVar, overload

from detbench.report.kinds import (
    ANY_TEXT,
    COUNT,
    COUNT0,
    FRACTION,
    LATENCY,
    LOOKS,
    NAMES,
    NONNEGATIVE,
    OBJECT,
    OBJECT_OR_NULL,
    OBJECTS,
    POSITIVE,
    SAMPLES,
    TEXT,
    TEXTS,
    Kind,
)

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
V1_INSUFFICIENT = "insufficient samples"
T = TypeVar("T")


def _stats() -> Any:
    # imported here, not at the top: numpy, kept out of `import detbench` (the API imports this module)
    from detbench.stats import diagnostics, summary

    return summary, diagnostics


def checked(kind: Kind, default: Any = None, factory: Any = None) -> Any:
    """A dataclass field that `validate_report` checks against `kind`."""
    if factory is not None:
        return field(default_factory=factory, metadata={"kind": kind})
    return field(default=default, metadata={"kind": kind})


def _typed(kind: type, value: Any) -> Any:
    """A dict as the section `kind`, and each dict of a list (one level: a list of lists stays as it is, so that a
    crafted file cannot make this recurse); anything else as it is."""
    if isinstance(value, dict) and not isinstance(value, kind):
        return kind.from_dict(value)
    if isinstance(value, list):
        return [kind.from_dict(item) if isinstance(item, dict) and not isinstance(item, kind) else item
                for item in value]
    return value


def _plain(value: Any) -> Any:
    return value.to_dict() if isinstance(value, (Section, Record)) else value


class Key(Generic[T]):
    """A declared key of a `Record`: read (None when absent) and set as an attribute, kept in the dict."""

    def __init__(self, kind: Kind | None = None) -> None:
        self.kind = kind

    def __set_name__(self, owner: type, name: str) -> None:
        if hasattr(dict, name):  # a key named `get` or `items` would hide the dict's own method
            raise TypeError(f"{owner.__name__}.{name}: a declared key may not be named like a dict method")
        self.name = name

    @overload
    def __get__(self, record: None, owner: type) -> Key[T]: ...
    @overload
    def __get__(self, record: Record, owner: type) -> T | None: ...
    def __get__(self, record: Record | None, owner: type) -> Any:
        return self if record is None else record.get(self.name)

    def __set__(self, record: Record, value: T | None) -> None:
        record[self.name] = value


class Record(dict[str, Any]):
    """An open section: the dict as written, keys in their order (unknown ones kept); declared keys (`Key`) read
    as attributes."""

    NESTED: ClassVar[dict[str, type]] = {}  # keys that hold a record (or a list of them)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Any:
        record = cls(data or {})
        for name, kind in cls.NESTED.items():
            if name in record:
                record[name] = _typed(kind, record[name])
        return record

    @classmethod
    def kinds(cls) -> list[tuple[str, Kind | None]]:
        return [(key.name, key.kind) for klass in reversed(cls.__mro__) for key in vars(klass).values()
                if isinstance(key, Key)]

    def to_dict(self) -> dict[str, Any]:
        return dict(self)


@dataclass(kw_only=True)
class Section:
    """Declared fields, then `extra`: the keys this version does not know, kept as they are."""

    extra: dict[str, Any] = field(default_factory=dict)
    NESTED: ClassVar[dict[str, type]] = {}  # fields that hold a section (or a list of them), or None
    OMIT_IF_NONE: ClassVar[tuple[str, ...]] = ()  # fields written only when set

    def __post_init__(self) -> None:
        for name, kind in self.NESTED.items():
            setattr(self, name, _typed(kind, getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for item in fields(self):
            if item.name == "extra":
                continue
            value = getattr(self, item.name)
            if value is None and item.name in self.OMIT_IF_NONE:
                continue
            sections = isinstance(value, list) and any(isinstance(x, (Section, Record)) for x in value[:1])
            out[item.name] = [_plain(x) for x in value] if sections else _plain(value)
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Any:
        data = dict(data or {})
        declared = {item.name for item in fields(cls)} - {"extra"}
        return cls(**{name: data.pop(name) for name in list(data) if name in declared}, extra=data)

    @classmethod
    def kinds(cls) -> list[tuple[str, Kind | None]]:
        return [(item.name, item.metadata.get("kind")) for item in fields(cls)]


@dataclass(kw_only=True)
class Metadata(Section):
    model_name: str | None = checked(TEXT)
    weights: str | None = checked(TEXT)
    weights_sha256: str | None = None
    model_source: str | None = checked(TEXT)  # checkpoint, yaml or zoo
    imgsz: int | None = checked(COUNT)  # as run: --imgsz rounded up to the model's stride
    imgsz_requested: int | None = None
    batch: int | None = checked(COUNT)
    device: str | None = checked(TEXT)
    warmup: int | None = None
    iters: int | None = None  # timed iterations run (the samples); the stopping rule or a study may differ from --iters
    iters_requested: int | None = None  # --iters
    timestamp: str | None = checked(TEXT)
    benchmark_list: str | None = None
    benchmark_size: int | None = None
    benchmark_size_requested: int | None = None
    seed: int | None = None
    data: str | None = None
    unsafe_load: bool | None = None


@dataclass(kw_only=True)
class Complexity(Section):
    params: int | None = checked(NONNEGATIVE)
    params_M: float | None = checked(NONNEGATIVE)
    params_fused: int | None = checked(NONNEGATIVE)
    gflops: float | None = checked(NONNEGATIVE)  # of the fused model, at imgsz
    gflops_unfused: float | None = checked(NONNEGATIVE)
    gflops_method: str | None = None


@dataclass(kw_only=True)
class LatencySummary(Section):
    mean_ms: float | None = checked(LATENCY)
    median_ms: float | None = checked(LATENCY)
    p50_ms: float | None = checked(LATENCY)
    p95_ms: float | None = checked(LATENCY)
    p99_ms: float | None = checked(LATENCY)
    std_ms: float | None = checked(NONNEGATIVE)
    min_ms: float | None = checked(LATENCY)
    max_ms: float | None = checked(LATENCY)

    @classmethod
    def from_values(cls, samples_ms: Sequence[float], **more: Any) -> Any:
        """Mean, median, percentiles, std, min and max of `samples_ms` (`detbench.stats.summary`); `more`: the
        other fields."""
        return cls(**_stats()[0].summarize(samples_ms), **more)


@dataclass(kw_only=True)
class Latency(LatencySummary):
    n_samples: int | None = None
    timer: str | None = None  # cuda_event or perf_counter_ns
    scope: str | None = None
    percentile_method: str | None = None
    std_ddof: int | None = None
    host: LatencySummary | None = None  # on CUDA: host wall time of the same iterations
    NESTED: ClassVar[dict[str, type]] = {"host": LatencySummary}

    @classmethod
    def from_values(cls, samples_ms: Sequence[float], host_ms: Sequence[float] | None = None, **more: Any) -> Any:
        return super().from_values(samples_ms, n_samples=len(samples_ms), **more,
                                   host=LatencySummary.from_values(host_ms) if host_ms else None)


@dataclass(kw_only=True)
class Throughput(Section):
    fps_mean: float | None = checked(POSITIVE)
    fps_p50: float | None = checked(POSITIVE)

    @classmethod
    def from_latency(cls, batch: int, mean_ms: float, p50_ms: float, **more: Any) -> Throughput:
        """Images per second at the mean and at the median latency of one batch."""
        return cls(**_stats()[0].throughput(batch, mean_ms, p50_ms), **more)


@dataclass(kw_only=True)
class Memory(Section):
    """MiB; every `*_MB` key, declared or not, is a number >= 0 or null (`measure.memory` says what each is)."""

    peak_gpu_mem_MB: float | None = checked(NONNEGATIVE)
    allocated_MB: float | None = checked(NONNEGATIVE)
    reserved_MB: float | None = checked(NONNEGATIVE)
    activation_peak_MB: float | None = checked(NONNEGATIVE)
    peak_rss_MB: float | None = checked(NONNEGATIVE)
    rss_MB: float | None = checked(NONNEGATIVE)
    model_rss_MB: float | None = checked(NONNEGATIVE)  # CPU: resident memory that loading and fusing the model added
    weights_MB: float | None = checked(NONNEGATIVE)  # CPU: bytes of the fused model's parameters and buffers
    loop_peak_rss_MB: float | None = checked(NONNEGATIVE)  # CPU: resident high-water mark during the timed loop
    activation_peak_rss_MB: float | None = checked(NONNEGATIVE)  # CPU: that peak minus the RSS after the warm-up
    model_memory_MB: float | None = checked(NONNEGATIVE)  # CPU: weights_MB + activation_peak_rss_MB
    unit: str | None = None
    warmup_peak_gpu_mem_MB: float | None = checked(NONNEGATIVE)  # CUDA: the warm-up's own peak (cuDNN autotuning)
    graph_capture_peak_MB: float | None = checked(NONNEGATIVE)  # --cuda-graph: the capture's peak
    graph_pool_MB: float | None = checked(NONNEGATIVE)  # --cuda-graph: the graph's private pool (its activations)
    activation_source: str | None = None  # --cuda-graph: where activation_peak_MB comes from
    device_used_MB: float | None = checked(NONNEGATIVE)  # CUDA: NVML's memory used on the device after the loop
    scope: str | None = None  # a study's worker: what the figures cover (`measure.own_memory`); bench: absent
    OMIT_IF_NONE: ClassVar[tuple[str, ...]] = ("graph_capture_peak_MB", "graph_pool_MB", "activation_source",
                                               "device_used_MB", "scope")


@dataclass(kw_only=True)
class Inputs(Section):
    list_sha256: str | None = checked(TEXT)
    files_sha256: str | None = None
    decoded_sha256: str | None = checked(TEXT)
    n_images: int | None = checked(COUNT0)
    population_size: int | None = None
    population_sha256: str | None = None
    truncated: bool | None = None
    letterbox: str | None = None
    shapes: dict[str, int] | None = None  # --rect: batches of one pass over the list per input shape ("HxW")


class Backend(Record):
    """`settings.backend`: the --format other than pytorch, its runtime and the exported file."""

    format = Key[str]()
    runtime = Key[str]()
    version = Key[str]()


@dataclass(kw_only=True)
class Settings(Section):
    threads: int | None = checked(COUNT)  # read back from torch
    threads_requested: int | None = None
    interop_threads: int | None = None
    precision: str | None = checked(TEXT)
    channels_last: bool | None = None
    cuda_graph: bool | None = None
    cudnn_benchmark: bool | None = None
    tf32_conv: bool | None = None  # CUDA: fp32 convolutions may run in TF32 (torch.backends.cudnn.allow_tf32)
    tf32_matmul: bool | None = None  # CUDA: fp32 matmuls may run in TF32 (torch.backends.cuda.matmul.allow_tf32)
    fused: bool | None = None
    inference_mode: bool | None = None
    gc_paused_in_loop: bool | None = None  # Python's garbage collector off during the timed loop
    backend: Backend | None = None
    NESTED: ClassVar[dict[str, type]] = {"backend": Backend}


@dataclass(kw_only=True)
class Statistics(Section):
    """CIs, spread, outliers and warnings of the timed samples (`detbench.stats.diagnostics`).

    An interval or bound that needs more samples than were taken is null, and `unavailable` names it with
    the reason.
    """

    n_samples: int | None = checked(COUNT0)
    confidence: float | None = None
    method: str | None = None
    median_ci95_ms: list[float] | None = None
    median_ci95_ranks: list[int] | None = None
    p95_ci95_ms: list[float] | None = None
    p95_ci95_ranks: list[int] | None = None
    p99_ci95_ms: list[float] | None = None
    p99_ci95_ranks: list[int] | None = None
    p95_upper95_ms: float | None = checked(LATENCY)
    p95_upper95_rank: int | None = None
    p95_upper95_min_samples: int | None = None
    p99_upper95_ms: float | None = checked(LATENCY)
    p99_upper95_rank: int | None = None
    p99_upper95_min_samples: int | None = None
    median_ci_half_width_rel: float | None = checked(NONNEGATIVE)
    unavailable: dict[str, str] = checked(OBJECT, factory=dict)
    notes: list[str] = checked(TEXTS, factory=list)  # e.g. an upper bound that is only the largest sample
    q1_ms: float | None = None
    q3_ms: float | None = None
    iqr_ms: float | None = None
    iqr_over_median: float | None = checked(NONNEGATIVE)
    cv: float | None = checked(NONNEGATIVE)
    outliers: dict[str, Any] | None = None
    warmup_check: dict[str, Any] | None = None
    host_over_device: float | None = checked(NONNEGATIVE)
    enqueue_over_device: float | None = checked(NONNEGATIVE)  # CUDA: launch time / device time; >= 0.8: launch-bound
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float], host_ms: Sequence[float] | None = None,
                     enqueue_ms: Sequence[float] | None = None) -> Statistics:
        """The statistics of one series of samples (`detbench.stats.diagnostics.statistics_section`)."""
        return cls.from_dict(_stats()[1].statistics_section(samples_ms, host_ms, enqueue_ms))


@dataclass(kw_only=True)
class Samples(Section):
    """Every raw measurement, in the order taken (ms)."""

    latency_ms: list[float] = checked(SAMPLES, factory=list)
    host_ms: list[float] | None = None
    enqueue_ms: list[float] | None = None  # CUDA: host time until forward() returned (launching the kernels)
    warmup_ms: list[float] | None = None
    pipeline_ms: dict[str, list[float]] | None = None
    round: list[int] | None = None  # in a study: the round of each latency sample
    worker: list[int] | None = None  # in a study: the worker process that took it
    OMIT_IF_NONE: ClassVar[tuple[str, ...]] = ("round", "worker", "enqueue_ms")


class Gpu(Record):
    """NVML's readings around the timed loop (CUDA)."""

    name = Key[str]()
    driver = Key[str]()


class Environment(Record):
    hostname = Key[str]()
    cpu = Key[str](TEXT)
    cpu_count = Key[int]()  # the machine's logical CPUs
    memory_total_MB = Key[float]()  # the machine's physical memory (MiB)
    torch = Key[str]()
    torch_cuda = Key[str]()
    ultralytics = Key[str](TEXT)
    gpu_name = Key[str](TEXT)
    cudnn_version = Key[int]()


class Stopping(Record):
    """Why the timed loop stopped, after how many iterations and how long (`measure.timing.stopping_section`)."""

    rule = Key[str]()
    reason = Key[str]()
    iterations = Key[int]()
    timed_s = Key[float]()
    warmup_s = Key[float]()
    ci_half_width_rel_at_stop = Key[Any]()  # in a merged study report: one per worker
    turn_warmup = Key[int]()  # in a study: untimed forwards before each turn


class PipelineStage(Record):
    """One stage of --pipeline: the latency summary of its samples and their statistics."""

    mean_ms = Key[float]()
    median_ms = Key[float]()
    p50_ms = Key[float]()
    statistics = Key[dict]()

    @classmethod
    def from_values(cls, samples_ms: Sequence[float]) -> PipelineStage:
        summary, diagnostics = _stats()
        return cls(summary.summarize(samples_ms), statistics=diagnostics.statistics_section(samples_ms))


class Pipeline(Record):
    """--pipeline: preprocess, inference, postprocess and their total per iteration (`measure.pipeline`)."""

    STAGES: ClassVar[tuple[str, ...]] = ("preprocess", "inference", "postprocess", "total")
    NESTED: ClassVar[dict[str, type]] = dict.fromkeys(STAGES, PipelineStage)
    batch = Key[int]()
    n_samples = Key[int]()
    stop_reason = Key[str]()
    preprocess = Key[PipelineStage]()
    inference = Key[PipelineStage]()
    postprocess = Key[PipelineStage]()
    total = Key[PipelineStage]()
    per_image_ms = Key[dict]()
    throughput = Key[dict]()
    note = Key[str]()

    def stages(self) -> dict[str, PipelineStage]:
        return {stage: self[stage] for stage in self.STAGES if isinstance(self.get(stage), dict)}

    def summarise(self, samples: dict[str, list[float]], batch: int) -> None:
        """Each stage's summary from its samples, with the throughput of the total and the stages per image."""
        for stage in self.STAGES:
            if samples.get(stage):
                self[stage] = PipelineStage.from_values(samples[stage])
        if self.total is None:
            return
        self.throughput = Throughput.from_latency(batch, self.total.mean_ms, self.total.p50_ms).to_dict()
        if len(self.stages()) == len(self.STAGES):
            self.per_image_ms = {stage: {key: part[key] / batch for key in ("mean_ms", "median_ms")}
                                 for stage, part in self.stages().items()}

    def warnings(self) -> list[str]:
        """Each stage's warnings, prefixed with the stage's name."""
        return [f"pipeline {stage}: {warning}" for stage, part in self.stages().items()
                for warning in (part.statistics or {}).get("warnings") or []]


class Round(Record):
    """An entry of a version-1 study report's `rounds`."""

    median_ms = Key[float](LATENCY)
    timestamp = Key[str](TEXT)


class StudyWorker(Record):
    """One worker process of a study, in the merged report's `study.workers`."""

    worker = Key[int]()
    pid = Key[int]()
    median_ms = Key[float]()
    gpu = Key[dict]()


class Study(Record):
    """What an interleaved study writes into each report: its id and design (`study.engine.StudyPlan.describe`),
    then, in a worker's report, the worker; in the merged one, every worker and the looks taken."""

    NESTED: ClassVar[dict[str, type]] = {"workers": StudyWorker}
    id = Key[str](TEXT)
    baseline = Key[str](TEXT)
    models = Key[list](NAMES)
    workers_per_model = Key[int]()
    turn_warmup = Key[int]()  # untimed forwards before each turn
    order_seed = Key[int]()  # the seed of the models' order in each round
    alpha = Key[float](FRACTION)
    min_effect = Key[float](FRACTION)
    planned_looks = Key[list](LOOKS)
    fresh_workers_each_look = Key[bool]()
    formats = Key[list]()
    processes_hold_every_model = Key[bool]()  # absent: a study of the older design (W processes per model)
    design = Key[str]()
    cpus = Key[list]()
    worker = Key[int]()  # a worker's report: its index and process
    pid = Key[int]()
    workers = Key[list]()  # the merged report: `StudyWorker`s
    looks_at_rounds = Key[list](LOOKS)
    finished_models = Key[list](NAMES)


@dataclass(kw_only=True)
class Report(Section):
    """One model's report. `status` is "ok", or why timing did not finish (e.g. "oom", with `error`)."""

    schema_version: int = SCHEMA_VERSION
    status: str = "ok"
    error: str | None = checked(ANY_TEXT)
    metadata: Metadata = field(default_factory=Metadata)
    model_complexity: Complexity = field(default_factory=Complexity)
    latency: Latency = field(default_factory=Latency)
    throughput: Throughput = field(default_factory=Throughput)
    memory: Memory = field(default_factory=Memory)
    gpu: Gpu | None = checked(OBJECT_OR_NULL)
    host_load: dict[str, Any] | None = checked(OBJECT_OR_NULL)  # CPU pressure and runnable tasks around the loop
    warnings: list[str] = checked(TEXTS, factory=list)
    statistics: Statistics | None = checked(OBJECT_OR_NULL)
    stopping: Stopping | None = None
    pipeline: Pipeline | None = checked(OBJECT_OR_NULL)
    setup_cache: dict[str, Any] | None = None
    model_check: dict[str, Any] | None = None
    inputs: Inputs = checked(OBJECT, factory=Inputs)
    settings: Settings = checked(OBJECT, factory=Settings)
    config: dict[str, Any] | None = checked(OBJECT_OR_NULL)  # BenchConfig.to_dict(): every setting of the run
    environment: Environment = checked(OBJECT, factory=Environment)
    command: list[str] = checked(TEXTS, factory=list)
    cwd: str | None = checked(TEXT)
    notes: list[str] = checked(TEXTS, factory=list)
    samples: Samples = checked(OBJECT, factory=Samples)
    rounds: list[Round] | None = checked(OBJECTS)
    study: Study | None = checked(OBJECT_OR_NULL)  # made by an interleaved study: its id, design and workers
    timing_phases_s: dict[str, Any] | None = None
    parity: dict[str, Any] | None = None  # --format: the backend's outputs against PyTorch's

    NESTED: ClassVar[dict[str, type]] = {
        "metadata": Metadata, "model_complexity": Complexity, "latency": Latency, "throughput": Throughput,
        "memory": Memory, "gpu": Gpu, "statistics": Statistics, "stopping": Stopping, "pipeline": Pipeline,
        "inputs": Inputs, "settings": Settings, "environment": Environment, "samples": Samples, "rounds": Round,
        "study": Study}
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
