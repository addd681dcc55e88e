"""One model deployed to a backend: exported in a bounded child process (or found in the cache), opened in its
runtime, checked for parity."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from detbench.backends.export import Artifact, Target, exported
from detbench.backends.export_child import ExportBounds, ExportSource
from detbench.backends.formats import Format
from detbench.backends.parity import PARITY_BATCHES, check_parity, parity_warnings
from detbench.backends.runtimes import Runtime, open_runtime
from detbench.measure.memory import current_rss_mib
from detbench.text import Echo

MIB = 2**20


@dataclass
class Deployed:
    backend: Format
    artifact: Artifact
    runtime: Runtime
    parity: dict[str, Any]
    size_mib: float  # the exported model's files
    runtime_rss_mib: float | None  # resident memory that opening the runtime (and its first runs) added
    warnings: list[str] = field(default_factory=list)
    runtime_device_mib: float | None = None  # GPU memory that opening it took, seen by the driver (not by torch)
    precision: str = "fp32"
    notes: list[str] = field(default_factory=list)  # for the report's notes: why the export was not cached

    def record(self) -> dict[str, Any]:
        """The report's settings.backend."""
        return {**self.runtime.info, "exported": self.artifact.record(), "exported_size_MB": self.size_mib,
                "runtime_rss_MB": self.runtime_rss_mib, "precision": self.precision,
                "runtime_device_MB": self.runtime_device_mib,
                "params_and_gflops": "those of the PyTorch model the export was made from"}


def export_target(backend: Format, imgsz: int, batch: int, device: torch.device, half: bool) -> Target:
    """A TensorRT engine is built, and TorchScript traced, on the GPU it runs on; ONNX and OpenVINO export on the CPU
    (their files do not depend on the device)."""
    if device.type != "cuda" or backend.name not in {"engine", "torchscript"}:
        return Target(imgsz, batch)
    name = None
    if backend.name == "engine":
        major, minor = torch.cuda.get_device_capability(device)
        name = f"{torch.cuda.get_device_name(device)} (sm_{major}{minor})"
    return Target(imgsz, batch, str(device.index or 0), half and backend.half, name)


def parity_precision(backend: Format, target: Target, tf32: bool, device: torch.device) -> tuple[str, str]:
    """(the precision the report states, the parity tolerances to judge by). A TensorRT engine computes in fp16
    with --half, and in fp32 its builder allows TF32; ORT's CUDA provider uses TF32 when the run does."""
    if target.half:
        return "fp16", "reduced"
    if backend.name == "engine":
        return "fp32 (TF32 allowed by TensorRT)", "reduced"
    return "fp32", "reduced" if tf32 and device.type == "cuda" else "fp32"


def _device_used_mib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    free, total = torch.cuda.mem_get_info(device)
    return (total - free) / MIB


def deploy(backend: Format, source: ExportSource, fused: torch.nn.Module, imgsz: int, batch: int, threads: int,
           batches: list[torch.Tensor], echo: Echo, cache_root: Path | None = None, device: torch.device | None = None,
           half: bool = False, tf32: bool = False, bounds: ExportBounds | None = None) -> Deployed:
    """Export the model `source` names (as the run loaded it) in a bounded child process, or find it in the
    private export cache; open it in the backend's runtime on `device` (default the CPU), compare it with `fused`
    (the run's model) on `batches`. `half`: an fp16 TensorRT engine; `tf32`: ONNX Runtime's CUDA provider may use
    TF32; `bounds`: the export's time and memory (default: the format's time, `--load-memory`'s default)."""
    device = device or torch.device("cpu")
    target = export_target(backend, imgsz, batch, device, half)
    artifact = exported(source, fused, backend, target, cache_root, bounds, threads)
    echo(f"✓ {backend.runtime} model {_how(artifact)} (sha256 {artifact.sha256[:12]})")
    notes = export_notes(artifact)
    if artifact.refused_entry:
        echo(f"  note: {notes[0]}")
    reference = fused.to(device)
    rss_before, device_before = current_rss_mib(settle=True), _device_used_mib(device)
    runtime = open_runtime(backend, artifact, threads, device, tf32)
    runtime.forward(batches[0])  # a runtime may allocate its working memory on the first run
    device_after = _device_used_mib(device)
    runtime_device = None if device_before is None or device_after is None else max(0.0, device_after - device_before)
    classes = head_classes(fused)
    precision, tolerance = parity_precision(backend, target, tf32, device)
    parity = check_parity(reference, runtime.forward, batches[:PARITY_BATCHES], imgsz, classes, tolerance)
    if device.type == "cuda":
        fused.to("cpu")  # the reference's weights would otherwise sit in the GPU memory the run reports
        torch.cuda.empty_cache()
    runtime_rss = max(0.0, current_rss_mib(settle=True) - rss_before)
    warnings = parity_warnings(parity, backend.runtime)
    agreement = parity.get("detection_agreement")
    mark = "✓" if parity.get("within_tolerance") else "✗"
    if "box_max_abs_diff_px" in parity:
        echo(f"{mark} parity with PyTorch: boxes within {parity['box_max_abs_diff_px']:.2g} px, scores within "
             f"{parity['score_max_abs_diff']:.2g}, detections "
             f"{'n/a (none at conf 0.3)' if agreement is None else f'{100 * agreement:.1f} % agree'}")
    else:  # not a detection head's layout: one relative bound on every value
        echo(f"{mark} parity with PyTorch: every value within {parity['max_rel_diff']:.2g} of the largest "
             f"(not a detection head's output: boxes and detections not compared)")
    for warning in warnings:
        echo(f"  warning: {warning}")
    return Deployed(backend, artifact, runtime, parity, artifact.size_bytes / MIB, runtime_rss, warnings,
                    runtime_device, precision, notes)


def _how(artifact: Artifact) -> str:
    if artifact.reused:
        return "reused from the private export cache"
    cached = f"; not cached: {artifact.not_cached}" if artifact.not_cached else ""
    return f"exported in {artifact.export_s:.1f} s ({artifact.process_s:.1f} s in its bounded process{cached})"


def export_notes(artifact: Artifact) -> list[str]:
    """What the report's notes say of the export: why it was not cached, and a cache entry that was not used."""
    notes = []
    if artifact.refused_entry:
        notes.append(f"export cache: the entry {artifact.refused_entry}; it was not used, and the model was "
                     f"exported afresh")
    if artifact.not_cached:
        notes.append(f"the exported model was made for this run only and not cached: {artifact.not_cached}")
    return notes


def head_classes(model: torch.nn.Module) -> int | None:
    """The class count of the model's detection head (its last layer), which decides the output's layout; a
    checkpoint's own `nc` attribute may say otherwise, and would switch parity to its looser, layout-free bound."""
    layers = getattr(model, "model", None)
    head = layers[-1] if isinstance(layers, torch.nn.Sequential) and len(layers) else None
    classes = getattr(head, "nc", None)
    return classes if isinstance(classes, int) and not isinstance(classes, bool) and classes > 0 else None
