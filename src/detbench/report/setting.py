"""SettingKey: the setting a measurement was made under, the one definition of "the same setting".

`compare` groups reports by it, the pivot by it without the backend, a study's workers must share it, a run
refuses to replace a report of another (`changes_to`), and the resume keys of `ablate` and `sweep` are its
`digest`. A report that predates a field gets the field's default here, and only here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields, replace
from typing import Any

from detbench import text
from detbench.config import BenchConfig
from detbench.flags import bench_fields, default_of, flag_name
from detbench.report.model import Report
from detbench.report.schema import shown

LIST_CHANGED = "another benchmark list (--list, --data, --seed or --benchmark_size)"


def _key(label: str, grouped: bool = True, default: Any = None) -> Any:
    """A field named `label` in messages; `grouped`: reports differing in it are never in one table."""
    return field(default=default, metadata={"label": label, "grouped": grouped})


def _bounded(value: Any) -> Any:
    """A setting's text as compared and shown (`text.bounded`: a long one cut, with a hash); numbers and None kept."""
    return value if value is None or isinstance(value, (int, float)) else text.bounded(value)


@dataclass(frozen=True)
class SettingKey:
    """What ran (the report's measured setting) and what was asked (weights, compared flags); None: not known."""

    imgsz: int | None = _key("imgsz")
    batch: int | None = _key("batch")
    device: str | None = _key("device")
    precision: str | None = _key("precision")
    threads: int | None = _key("threads")
    hardware: str | None = _key("hardware")  # the GPU's name on CUDA, the CPU's model on the CPU
    list_sha256: str | None = _key("input list")
    decoded_sha256: str | None = _key("decoded inputs")
    modes: str | None = _key("modes")
    software: str | None = _key("software")
    backend: str | None = _key("backend")
    weights: str | None = _key("weights", grouped=False)
    weights_sha256: str | None = _key("weights' SHA-256", grouped=False)
    flags: tuple[tuple[str, Any], ...] = _key("flags", grouped=False, default=())  # compared bench settings

    @classmethod
    def of_report(cls, report: Report) -> SettingKey:
        meta, inputs = report.metadata, report.inputs
        return cls(imgsz=meta.imgsz, batch=meta.batch, device=_bounded(meta.device),
                   precision=_bounded(report.settings.precision), threads=report.settings.threads,
                   hardware=_bounded(_hardware(report)), list_sha256=_bounded(inputs.list_sha256),
                   decoded_sha256=_bounded(inputs.decoded_sha256), modes=_modes(report),
                   software=_bounded(_software(report)), backend=_bounded(backend_of(report)),
                   weights=meta.weights, weights_sha256=meta.weights_sha256, flags=_report_flags(report))

    @classmethod
    def of_config(cls, cfg: BenchConfig | dict[str, Any], device: str | None, list_sha256: str | None = None,
                  weights_sha256: str | None = None) -> SettingKey:
        """What a run will be (a BenchConfig or its field values), known before it runs: its compared flags,
        device, list and weights."""
        values = cfg if isinstance(cfg, dict) else cfg.to_dict()
        return cls(device=device, list_sha256=list_sha256, weights=values.get("weights"),
                   weights_sha256=weights_sha256, flags=_flags_of(values))

    def grouped(self) -> SettingKey:
        """The fields `compare` groups by (what ran, not what was asked)."""
        return self.without(*(item.name for item in fields(self) if not item.metadata["grouped"]))

    def without(self, *names: str) -> SettingKey:
        """A copy with these fields unset (e.g. the backend, for the pivot's matrix)."""
        return replace(self, **{name: () if name == "flags" else None for name in names})

    def difference(self, other: SettingKey) -> str:
        """How this key's grouped fields differ from `other`'s ("imgsz 1280 vs 640, ..."); hashes shortened."""
        parts = []
        for item in fields(self):
            mine, theirs = getattr(self, item.name), getattr(other, item.name)
            if item.metadata["grouped"] and mine != theirs:
                if item.name.endswith("sha256"):
                    mine, theirs = short_hash(mine), short_hash(theirs)
                parts.append(f"{item.metadata['label']} {mine} vs {theirs}")
        return ", ".join(parts)

    def worker_difference(self, other: SettingKey) -> str | None:
        """What a study's workers must share (inputs, model, imgsz, batch, device): the first that differs, or None."""
        labels = {item.name: item.metadata["label"] for item in fields(self)} | {"list_sha256": "benchmark list"}
        names = ("list_sha256", "decoded_sha256", "imgsz", "batch", "device", "weights", "weights_sha256")
        return next((labels[name] for name in names if getattr(self, name) != getattr(other, name)), None)

    def changes_to(self, new: SettingKey, weights: bool = True) -> list[str]:
        """How a run at `new` differs from the one this key records ("--imgsz 64, now 96"), each named once: the
        weights (if `weights`), the device, every compared flag both know, the list (an unknown one matches)."""
        found = []
        if weights and self.weights_sha256 != new.weights_sha256 and (new.weights_sha256
                                                                       or self.weights != new.weights):
            found.append("other weights")
        if self.device != new.device:
            found.append(f"--device {self.device}, now {new.device}")
        old = dict(self.flags)
        found += [f"--{name} {shown(old[name])}, now {shown(value)}" for name, value in new.flags
                  if name in old and old[name] != value]
        if None not in (self.list_sha256, new.list_sha256) and self.list_sha256 != new.list_sha256:
            found.append(LIST_CHANGED)
        return found

    def digest(self, **extra: Any) -> str:
        """A stable hash of the device, the list, the flags not at their default (so that a flag added later does
        not change every key) and `extra` (models, a study's design, ...): a resume key."""
        defaults = {flag_name(item): default_of(item) for item in bench_fields()}
        content = {"config": {name: value for name, value in self.flags if value != defaults.get(name)},
                   "device": self.device, "list_sha256": self.list_sha256, **extra}
        return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def _flags_of(config: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The compared settings by flag; one a report predates counts as its default."""
    return tuple((flag_name(item), config.get(item.name, default_of(item))) for item in bench_fields(pass_through=True)
                 if item.metadata["compared"])


def _report_flags(report: Report) -> tuple[tuple[str, Any], ...]:
    if report.config is not None:
        return _flags_of(report.config)
    meta = report.metadata  # a version-1 report: what its metadata says
    return (("imgsz", meta.imgsz_requested or meta.imgsz), ("batch", meta.batch), ("warmup", meta.warmup),
            ("iters", meta.iters))


def short_hash(digest: Any) -> str:
    return str(digest)[:12] if digest else "unknown"


def backend_of(report: Report) -> str:
    """What ran the model: "pytorch" (eager), or the --format's runtime and version; for the reports of a study
    that compared backends (`--models NAME@FORMAT`), one value for that study, so that its reports stay in one
    table and no other report joins them."""
    formats = (report.study or {}).get("formats")
    if isinstance(formats, list) and len(formats) > 1:
        return f"several ({', '.join(map(str, formats))}), compared in interleaved study {report.study.get('id')}"
    backend = report.settings.backend if isinstance(report.settings.backend, dict) else {}
    if not backend.get("format"):
        return "pytorch"
    return f"{backend['format']} ({backend.get('runtime')} {backend.get('version')})"


def _modes(report: Report) -> str:
    """The execution settings beyond precision that change latency, each as the run had it. A report that
    predates a setting ran with detbench's default then (no channels-last, no graph, cuDNN autotuning on,
    torch's TF32 defaults: convolutions yes, matmuls no)."""
    settings, on_cuda = report.settings, str(report.metadata.device or "").startswith("cuda")
    parts = ["channels-last" if settings.channels_last else "contiguous"]
    if (report.config or {}).get("rect"):
        parts.insert(0, "rect inputs (--rect)")
    if on_cuda:
        parts.append("CUDA graph" if settings.cuda_graph else "eager")
        parts.append("cudnn.benchmark " + ("off" if settings.cudnn_benchmark is False else "on"))
        conv = settings.tf32_conv if settings.tf32_conv is not None else True
        matmul = settings.tf32_matmul if settings.tf32_matmul is not None else False
        parts.append(f"TF32 conv {'on' if conv else 'off'}, matmul {'on' if matmul else 'off'}")
    return ", ".join(parts)


def _software(report: Report) -> str:
    """torch, and on CUDA the CUDA runtime, cuDNN and the driver: their kernels decide the latency."""
    env, on_cuda = report.environment or {}, str(report.metadata.device or "").startswith("cuda")
    parts = [f"torch {env.get('torch') or '?'}"]
    if on_cuda:
        driver = (report.gpu or {}).get("driver") if isinstance(report.gpu, dict) else None
        parts += [f"CUDA {env.get('torch_cuda') or '?'}", f"cuDNN {env.get('cudnn_version') or '?'}",
                  f"driver {driver or '?'}"]
    return ", ".join(parts)


def _hardware(report: Report) -> str | None:
    env = report.environment or {}
    if str(report.metadata.device or "").startswith("cuda"):
        return env.get("gpu_name")
    return env.get("cpu")
