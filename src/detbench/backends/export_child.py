"""Ultralytics' exporter in a child process bounded in time and memory, that dies with its parent.

The parent (`run_export`) starts `python -m detbench.backends.export_child` (through `detbench.proc`, as the model
check is started) with its working folder in the export's private folder, hands it the request on stdin and
waits at most the time bound (`--export-timeout`), then kills it and everything it started. The child loads the
model the way the run did: the file, checked again against the SHA-256 the run hashed, through detbench's
allow-listed loader with the run's plugins (a full load only with --unsafe-load). A model without a checkpoint
(built from a YAML, with random weights in every process) is given the run's own weights: the parent saves its
state_dict in a private folder and the child loads it with `weights_only`, so the export computes what the run's
PyTorch model computes. The exporter is handed the model under the short relative name `model.pt`: every file it
derives from that name lands in its working folder, whatever the path of the cache or of the model (it replaces
`.pt` anywhere in a path).

The child imports the exporter and the backend's packages and loads the model first (the bytes the bounded model
check already loaded within its bounds), then limits its address space to what it then holds plus
`--load-memory`, as the model check does, so the bound covers the export; an export on a GPU, where CUDA reserves
address space it never uses, is bounded by the child's resident memory instead, which the parent watches. Its
HOME and XDG folders are a throwaway folder deleted after the export, where OpenVINO's telemetry is declined, and
ONNX Runtime's telemetry is off: nothing a library writes under the home folder reaches the user's, and no
telemetry is sent.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detbench import limits
from detbench.backends.formats import QUIET_IMPORT_ENV
from detbench.checkpoint.model_check import (
    CHILD_ENV,
    answer,
    child_answer,
    keep_stdout_for_the_answer,
    limit_process,
    peak_rss_mb,
    start_child,
    wait_for,
)
from detbench.errors import DetbenchError, first_line
from detbench.limits import ENGINE_EXPORT_TIMEOUT_S, EXPORT_FORWARDS, EXPORT_TIMEOUT_S
from detbench.proc import die_with_parent, kill_tree, refuse_namespace_package

if TYPE_CHECKING:
    import subprocess

    import torch

    from detbench.backends.formats import Format
    from detbench.models.loading import LoadedModel

MODULE = "detbench.backends.export_child"
STEM = "model"  # the exported files' stem: model.pt, model.onnx, model_openvino_model/, model.engine
POLL_S = 0.2
# no telemetry: ONNX Runtime's is off (see formats.QUIET_IMPORT_ENV); OpenVINO's converter, which the export runs,
# reads the user's answer from ~/intel/openvino_telemetry, and the child's home holds "0" (declined) there
EXPORT_ENV = dict(QUIET_IMPORT_ENV["onnxruntime"])
OPENVINO_CONSENT = ("intel", "openvino_telemetry")


@dataclass(frozen=True)
class Target:
    """What an export is made for, besides the model and the format."""
    imgsz: int
    batch: int
    device: str = "cpu"  # where the exporter runs: "cpu", or a CUDA index (a TensorRT engine, a TorchScript trace)
    half: bool = False  # an fp16 TensorRT engine
    device_name: str | None = None  # the GPU a TensorRT engine is built for (an engine runs on that model only)


def exporter_overrides(backend: Format, target: Target) -> dict[str, Any]:
    """Ultralytics' exporter's arguments: a static shape, simplified, on the target's device."""
    return {"format": backend.export_format, "imgsz": target.imgsz, "batch": target.batch, "device": target.device,
            "quantize": 16 if target.half else None, "dynamic": False, "simplify": True, "verbose": False}


@dataclass(frozen=True)
class ExportSource:
    """The model as the run loaded it, for the export's child process to load the same way."""

    weights: str  # a checkpoint or model YAML file, or a zoo or shipped YAML name
    sha256: str | None  # of the file as the run hashed it (None: a name, not a file)
    kind: str  # "checkpoint" or "yaml"
    plugins: tuple[str, ...] = ()
    unsafe_load: bool = False

    @classmethod
    def of(cls, loaded: LoadedModel, plugins: Sequence[str] = ()) -> ExportSource:
        return cls(loaded.path, loaded.sha256, loaded.kind, tuple(plugins), loaded.unsafe_load)


@dataclass(frozen=True)
class ExportBounds:
    """What the export's child may use: wall-clock seconds (`--export-timeout`; None: the default) and bytes of
    memory beyond what it holds once the exporter is imported and the model loaded (`--load-memory`).
    `forward_s`: one forward pass at batch 1 on one thread, as the bounded model check timed it (None: unknown)."""

    timeout_s: float | None = None
    memory_bytes: int = limits.LOAD_MEMORY_BYTES
    forward_s: float | None = None

    def seconds(self, backend: Format, batch: int) -> float:
        """The time bound: the one given, else the format's base time plus EXPORT_FORWARDS forward passes of the
        batch (the base time for each image of the batch when the forward pass was not timed)."""
        if self.timeout_s is not None:
            return self.timeout_s
        base = ENGINE_EXPORT_TIMEOUT_S if backend.name == "engine" else EXPORT_TIMEOUT_S
        if self.forward_s is None:
            return base * max(1, batch)
        return base + EXPORT_FORWARDS * max(1, batch) * self.forward_s


# ---------------------------------------------------------------- the parent's side

def run_export(source: ExportSource, reference: torch.nn.Module, backend: Format, target: Target, folder: Path,
               bounds: ExportBounds, threads: int = 1) -> tuple[float, float]:
    """Export the model into `folder` in a bounded child process; (the seconds the exporter took, the seconds the
    whole child took: imports, the model's load, the export). A one-line DetbenchError when it fails or overruns a
    bound (then it is killed, with everything it started)."""
    began = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="detbench-export-"))  # 0700: the weights, the child's home
    try:
        request = _request(source, reference, backend, target, bounds, threads, scratch)
        process, stderr = start_child(MODULE, request, _child_env(scratch, threads), cwd=str(folder))
        try:
            overrun = _wait(process, request["timeout_s"], request["ready"], bounds.memory_bytes)
            output = process.stdout.read() if overrun is None else b""
        finally:
            if process.poll() is None:
                kill_tree(process)
        try:
            return _outcome(overrun, output, process, stderr, source, backend, request), time.monotonic() - began
        finally:
            process.stdout.close()
            stderr.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _absolute(path: str) -> str:
    """A file path made absolute (the child works in another folder); a name that is no file stays as it is."""
    return os.path.abspath(path) if os.path.exists(path) else path


def _request(source: ExportSource, reference: torch.nn.Module, backend: Format, target: Target,
             bounds: ExportBounds, threads: int, scratch: Path) -> dict[str, Any]:
    weights = None
    if source.kind != "checkpoint":
        # imported here: this module's top stays torch-free (the child imports torch in _prepare, before its limits)
        import torch

        weights = str(scratch / "weights.pt")
        torch.save(reference.state_dict(), weights)
    return {"weights": _absolute(source.weights), "name": source.weights, "sha256": source.sha256,
            "unsafe_load": source.unsafe_load,
            "plugins": [_absolute(p) if p.endswith(".py") else p for p in source.plugins], "state_dict": weights,
            "format": backend.name, "target": asdict(target), "memory_bytes": bounds.memory_bytes,
            "timeout_s": round(bounds.seconds(backend, target.batch), 1), "threads": max(1, threads),
            "ready": None if target.device == "cpu" else str(scratch / "ready")}


def _child_env(scratch: Path, threads: int) -> dict[str, str]:
    home = scratch / "home"
    consent = home.joinpath(*OPENVINO_CONSENT)
    consent.parent.mkdir(mode=0o700, parents=True)
    consent.write_text("0\n", encoding="ascii")
    count = str(max(1, threads))
    return {**CHILD_ENV, **EXPORT_ENV, "OMP_NUM_THREADS": count, "MKL_NUM_THREADS": count, "HOME": str(home),
            "XDG_CACHE_HOME": str(home / ".cache"), "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local" / "share"), "XDG_STATE_HOME": str(home / ".local" / "state")}


def _rss(pid: int) -> int:
    """The process's resident bytes, as measure.memory reads this process's (psutil); 0 once it is gone."""
    # imported here: psutil is needed only while a GPU export runs
    import psutil

    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return 0


def _ceiling(ready: str, memory_bytes: int) -> int | None:
    """The most resident memory the child may reach: what it held when it said it was ready, plus the bound."""
    try:
        return int(Path(ready).read_text(encoding="ascii")) + memory_bytes
    except (OSError, ValueError):
        return None


def _wait(process: subprocess.Popen, seconds: float, ready: str | None, memory_bytes: int) -> str | None:
    """Wait for the child; "time" or "memory" when it overruns that bound (`ready`: the file where a child whose
    address space is not limited writes its resident memory when it is about to export; None: limited)."""
    deadline = time.monotonic() + seconds
    ceiling = None
    while not wait_for(process, max(min(POLL_S, deadline - time.monotonic()), 0.0)):
        if time.monotonic() >= deadline:
            return "time"
        if ready is not None:
            ceiling = ceiling or _ceiling(ready, memory_bytes)
            if ceiling is not None and _rss(process.pid) > ceiling:
                return "memory"
    return None


def _outcome(overrun: str | None, output: bytes, process: subprocess.Popen, stderr: Any, source: ExportSource,
             backend: Format, request: dict[str, Any]) -> float:
    what = f"--format {backend.name}: exporting {source.weights}"
    if overrun == "time":
        raise DetbenchError(f"{what} took more than {request['timeout_s']:g} s, detbench's limit; if the model is "
                            f"genuine and large, raise --export-timeout")
    if overrun == "memory":
        raise DetbenchError(memory_error(what, request["memory_bytes"]))
    return float(child_answer(output, process, stderr, f"{what}: the bounded process that exports it",
                              "the model")["export_s"])


def memory_error(what: str, memory_bytes: int) -> str:
    return (f"{what} needs more than {memory_bytes / 2**20:,.0f} MiB of memory, detbench's limit; if the model is "
            f"genuine and large, raise --load-memory")


# ---------------------------------------------------------------- the child's side

def _prepare(request: dict[str, Any]) -> Format:
    """Everything imported before the memory limit, which then covers only the export."""
    # imported here, before the memory limit, which then covers only the export
    import torch
    import ultralytics.engine.exporter  # noqa: F401

    from detbench import zoo
    from detbench.backends.formats import FORMATS, require

    backend = FORMATS[request["format"]]
    require(backend)
    torch.set_num_threads(request["threads"])
    zoo.register()
    return backend


def _bound(request: dict[str, Any]) -> None:
    cpu_seconds = request["timeout_s"] * (os.cpu_count() or 1)
    if request["ready"] is None:
        limit_process(request["memory_bytes"], cpu_seconds)
        return
    # imported here: this module's top stays torch-free (the child imports torch in _prepare, before its limits)
    import torch

    # CUDA reserves far more address space than it uses: the parent watches the resident memory instead, from
    # what the child holds with CUDA's context made (so that the context is not counted against the export)
    torch.zeros(1, device=f"cuda:{request['target']['device']}")
    limit_process(None, cpu_seconds)
    Path(request["ready"]).write_text(str(_rss(os.getpid())), encoding="ascii")


def _with_run_weights(model: torch.nn.Module, path: str, weights: str) -> torch.nn.Module:
    """`model` holding the run's weights (saved by the parent): fused first when the run's model is."""
    # imported here: this module's top stays torch-free (the child imports torch in _prepare, before its limits)
    import torch

    from detbench.models.loading import prepare_for_inference

    state = torch.load(path, map_location="cpu", weights_only=True)
    if set(state) != set(model.state_dict()):
        model = prepare_for_inference(model)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise DetbenchError(f"--weights {weights}: the model built for the export does not take the run's weights "
                            f"({first_line(exc)}); run again, or use --format pytorch") from None
    return model


def load_for_export(request: dict[str, Any]) -> torch.nn.Module:
    """The model, loaded as the run loaded it, named `model.pt` with the task and class names the exporter reads."""
    # imported here: loads torch and Ultralytics' model code, which the parent's side of this module does not need
    from detbench.models.loading import load_model

    loaded = load_model(request["weights"], unsafe_load=request["unsafe_load"], plugins=request["plugins"],
                        expected_sha256=request["sha256"])
    model = loaded.model
    if request["state_dict"]:
        model = _with_run_weights(model, request["state_dict"], request["name"])
    model.pt_path = f"{STEM}.pt"  # relative: the exporter writes beside it, in the working folder
    if not getattr(model, "task", None):
        model.task = "detect"
    if not isinstance(getattr(model, "names", None), dict):  # a model built from a YAML has none
        model.names = {i: str(i) for i in range(int(getattr(model, "nc", 80)))}
    return model


def export_here(model: torch.nn.Module, request: dict[str, Any], backend: Format) -> float:
    """Ultralytics' exporter on `model`, writing into the working folder; the seconds it took."""
    # imported here: Ultralytics' exporter, in the child only
    from ultralytics.engine.exporter import Exporter

    overrides = exporter_overrides(backend, Target(**request["target"]))
    began = time.perf_counter()
    Exporter(overrides=overrides)(model=model)
    return time.perf_counter() - began


def _failure(request: dict[str, Any], exc: BaseException) -> str:
    what = f"--format {request['format']}: exporting {request['name']}"
    if isinstance(exc, DetbenchError):
        return str(exc)
    if isinstance(exc, MemoryError) or "alloc" in first_line(exc).lower():
        return memory_error(what, request["memory_bytes"])
    if isinstance(exc, ImportError):
        # imported here: only to name the extra that installs a missing runtime
        from detbench.backends.formats import FORMATS

        return (f"{what}: Ultralytics' exporter needs {exc.name or exc}; pip install -e "
                f"'.[{FORMATS[request['format']].extra or 'onnx'}]'")
    return f"{what}: Ultralytics' export failed ({type(exc).__name__}: {first_line(exc)}); nothing was written"


def child_main() -> int:
    refuse_namespace_package()
    die_with_parent()
    os.umask(0o077)  # what the exporter writes is this user's alone: the cache refuses anything others may write
    keep_stdout_for_the_answer()
    request = json.loads(sys.stdin.read(1 << 20))
    try:
        backend = _prepare(request)
        model = load_for_export(request)  # the same bytes the bounded model check loaded within --load-memory
        _bound(request)
        seconds = export_here(model, request, backend)
    except Exception as exc:  # any failure: one line, no traceback
        answer({"ok": False, "error": _failure(request, exc)})
        return 2
    answer({"ok": True, "export_s": round(seconds, 3), "peak_rss_MB": round(peak_rss_mb(), 1)})
    return 0


if __name__ == "__main__":
    sys.exit(child_main())
