"""BenchConfig: every setting of one benchmark run, validated once and passed everywhere."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

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


def setting(default: Any = None, help: str = "", *, flag: str | None = None, per_model: bool = False,
            compared: bool = True, in_study: bool = True, default_factory: Any = None, **more: Any) -> Any:
    """A config field with what its flag needs: the help text, the flag's name if not the field's, and how a
    study treats it (`per_model`: set by the study for each model, not passed through; `compared`: a finished
    study is re-run when its value changes; `in_study`: False for the timed loop's own stopping rule, which a
    study replaces by its turns). `more`: `check` ((is it valid, what it must be)), `deprecated` (old spellings),
    `metavar`, `csv` (a list given as one comma-separated value), `design` (a study's own setting that its resume
    key holds: `StudyConfig.design`)."""
    metadata = {"help": help, "flag": flag, "per_model": per_model, "compared": compared, "in_study": in_study,
                **more}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def check_settings(config: Any) -> None:
    """Raise DetbenchError naming the flag for a value its field's `check` refuses."""
    for item in fields(config):
        value = getattr(config, item.name)
        ok, what = item.metadata.get("check") or (None, "")
        try:
            good = ok is None or not isinstance(value, bool) and ok(value)
        except TypeError:  # e.g. a text where a number belongs
            good = False
        if not good:
            raise DetbenchError(f"--{(item.metadata['flag'] or item.name).replace('_', '-')} must be {what}, "
                                f"got {value}")


@dataclass
class BenchConfig:
    """Settings of one `detbench bench` run; defaults are the user specification's.

    Each field is one flag of `detbench bench` (`detbench.flags` builds them from this metadata), one entry of
    a report's `config` section, and what a study's workers are given.
    """

    weights: str = setting(help="Ultralytics .pt checkpoint, model .yaml, zoo name or shipped YAML name "
                                "(e.g. yolov8n.yaml)", per_model=True)
    imgsz: int = setting(640, "square input size (default %(default)s)")
    rect: bool = setting(False, "letterbox each image to its minimal rectangle within imgsz (a multiple of the "
                                "stride, e.g. 640x480 for a 4:3 photo), as Ultralytics' predictor does; a batch of "
                                "mixed shapes stays square, as there (default: the square imgsz x imgsz)")
    device: str | None = setting(None, "0, 1, cuda:N or cpu (default: GPU 0 if present, else cpu)",
                                 compared=False)  # compared as resolved (cuda:0), not as typed
    warmup: int = setting(50, "warm-up iterations (default %(default)s)")
    iters: int = setting(300, "timed iterations (default %(default)s)")
    batch: int = setting(1, "batch size (default 1)")
    # the list's hash covers data, seed and size
    data: str | None = setting(None, "dataset YAML (default: the checkpoint's train_args['data'])", compared=False)
    seed: int = setting(42, "seed of the benchmark list (default 42)", compared=False)
    benchmark_size: int = setting(200, "images in the benchmark list (default 200)", compared=False)
    use_benchmark_list: bool = setting(False, "reuse the existing benchmark list as is (error if there is none)",
                                       per_model=True)
    name: str | None = setting(None, "model name in the report (default: run folder, else file stem)",
                               per_model=True)
    out: str = setting("results/bench", "output folder (default results/bench)", per_model=True)
    force: bool = setting(False, "replace OUT/NAME.json even when it holds a report of other settings",
                          per_model=True, compared=False)
    list_path: str | None = setting(None, "benchmark list file (default: OUT/benchmark_list.txt)", flag="list",
                                    per_model=True)
    threads: int | None = setting(None, "CPU threads for torch (default: all available cores)")
    # how to load, not what to measure
    unsafe_load: bool = setting(False, "load the checkpoint with a full pickle load (runs code inside it: only for "
                                       "trusted files)", compared=False)
    format: str = setting("pytorch", "what runs the model: pytorch (eager), torchscript, onnx (ONNX Runtime) or "
                                     "openvino, the last three exported by Ultralytics' exporter and cached; on CPU "
                                     "(default pytorch)")
    half: bool = setting(False, "run model and inputs in fp16 (CUDA only)")
    amp: bool = setting(False, "autocast an fp32 model (fp16 on CUDA, bf16 on CPU)")
    channels_last: bool = setting(False, "channels-last memory format for model and inputs")
    cudnn_benchmark: bool = setting(True, "let cuDNN autotune convolutions during the warm-up (default on; "
                                          "recorded)")
    tf32: bool | None = setting(None, "allow (--tf32) or forbid (--no-tf32) TF32 in fp32 convolutions and matmuls "
                                      "on CUDA (default: torch's own, convolutions yes, matmuls no; recorded)")
    cuda_graph: bool = setting(False, "capture the forward once as a CUDA graph and replay it in the timed loop "
                                      "(CUDA only)")
    min_time: float = setting(0.0, "time at least this many seconds as well as at least --iters iterations "
                                   "(default 0)", in_study=False)
    target_ci: float | None = setting(None, "then keep timing until the median's 95%% CI half-width is at most "
                                            "this fraction of the median (e.g. 0.01), within --max-time",
                                      in_study=False)
    max_time: float | None = setting(None, "seconds the timed loop may run to reach --target-ci (default 60; "
                                           "never cuts --iters/--min-time)", in_study=False)
    pipeline: bool = setting(False, "also time preprocess, inference and postprocess (NMS) per image, and their "
                                    "sum")
    plugins: list[str] = setting(help="module or .py file with custom layers to allow and register (repeatable)",
                                 flag="plugin", compared=False, default_factory=list)
    load_timeout: float = setting(limits.LOAD_TIMEOUT_S,
                                  f"seconds the bounded check of the model (load, count, one forward pass) may "
                                  f"take (default {limits.LOAD_TIMEOUT_S:g})", compared=False)
    load_memory_mb: float = setting(limits.LOAD_MEMORY_BYTES / 2**20,
                                    f"MiB of memory that check, and the export for --format, may use beyond the "
                                    f"interpreter (default "
                                    f"{limits.LOAD_MEMORY_BYTES // 2**20})", flag="load_memory", compared=False)
    export_timeout: float | None = setting(None, "seconds the export for --format (Ultralytics' exporter, in a bounded "
                                                 "child process) may take (default: 60, or 1800 for --format engine, "
                                                 "plus 20 forward passes of the batch as the model check timed one)",
                                           compared=False)
    time_budget: float = setting(limits.RUN_TIME_BUDGET_S,
                                 f"seconds the warm-up and timed loop may be expected to take, judged from the "
                                 f"bounded check's forward pass before they start (default "
                                 f"{limits.RUN_TIME_BUDGET_S:g})", compared=False)
    max_image_pixels: int = setting(limits.MAX_IMAGE_PIXELS,
                                    f"refuse images with more pixels than this, read from their header before "
                                    f"decoding (default {limits.MAX_IMAGE_PIXELS:,})")

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
        if self.weights is None or not str(self.weights).strip():
            raise DetbenchError("--weights is empty: give a .pt checkpoint, a model .yaml or a zoo model name")
        if self.name is not None:
            check_model_name(self.name, f"--name {self.name[:80]!r}", "the report is OUT/NAME.json: choose a plain "
                             "file name")
        validate_stopping(self.min_time, self.target_ci, self.max_time)
        if self.rect and self.cuda_graph:
            raise DetbenchError("--rect gives inputs of varying shape, which a CUDA graph (one static shape) cannot "
                                "replay; drop --rect or --cuda-graph")
        if self.export_timeout is not None and (isinstance(self.export_timeout, bool) or not isinstance(
                self.export_timeout, (int, float)) or not 0 < self.export_timeout <= 86_400):
            raise DetbenchError(f"--export-timeout must be a positive number up to 86400, got {self.export_timeout!r}")
        for flag, value, high in (("--load-timeout", self.load_timeout, 86_400),
                                  ("--load-memory", self.load_memory_mb, 2**30),
                                  ("--time-budget", self.time_budget, 30 * 86_400)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= high:
                raise DetbenchError(f"{flag} must be a positive number up to {high}, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """Every setting by field name: a report's `config` section, and what a study's worker is given."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BenchConfig:
        """The config a `to_dict` (or a report's `config` section) describes; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise DetbenchError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)
