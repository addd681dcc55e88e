"""The backends `--format` takes, the extra each needs, and the checks made before anything loads."""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from detbench.errors import DetbenchError


@dataclass(frozen=True)
class Format:
    name: str
    runtime: str  # what runs it, as reports name it
    module: str  # the package imported to run it
    extra: str  # `pip install -e '.[EXTRA]'`
    export_format: str  # Ultralytics' exporter's `format`
    export_modules: tuple[str, ...] = ()  # what the exporter imports besides the runtime
    devices: tuple[str, ...] = ("cpu", "cuda")  # the device types it runs on here
    half: bool = False  # --half builds an fp16 model (TensorRT); elsewhere the export is fp32
    gpu_extra: str = ""  # the extra its GPU runtime needs, when that is another package


FORMATS: dict[str, Format] = {
    "torchscript": Format("torchscript", "TorchScript", "torch", "", "torchscript"),
    "onnx": Format("onnx", "ONNX Runtime", "onnxruntime", "onnx", "onnx", ("onnx", "onnxslim"),
                   gpu_extra="onnx-gpu"),
    "openvino": Format("openvino", "OpenVINO", "openvino", "openvino", "openvino", devices=("cpu",)),
    "engine": Format("engine", "TensorRT", "tensorrt", "tensorrt", "engine", ("onnx", "onnxslim"),
                     devices=("cuda",), half=True),
}
PYTORCH = "pytorch"
CHOICES = (PYTORCH, *FORMATS)
UNSUPPORTED_MODES = (("half", "--half"), ("amp", "--amp"), ("channels_last", "--channels-last"),
                     ("cuda_graph", "--cuda-graph"), ("rect", "--rect"))
CUDA_PROVIDER = "CUDAExecutionProvider"


def split_format(raw: str) -> tuple[str, str | None]:
    """`NAME@FORMAT` -> (NAME, FORMAT) when FORMAT names a backend (`--format`'s values); else (raw, None)."""
    entry, at, fmt = raw.rpartition("@")
    return (entry, fmt) if at and entry and fmt in CHOICES else (raw, None)


def check_format(name: str, device_type: str, settings: Mapping[str, Any], runtime: bool = True) -> Format | None:
    """The backend of `--format NAME` (None for PyTorch eager), its runtime installed; a one-line error for an
    unknown name, a device it does not run on here, a PyTorch-only mode asked with it in `settings` (a run's
    settings by field name), or (with `runtime`; a sweep planning for other machines passes False) a missing
    runtime."""
    if name == PYTORCH:
        return None
    if name not in FORMATS:
        raise DetbenchError(f"--format {name}: not a backend here; choose one of {', '.join(CHOICES)}")
    backend = FORMATS[name]
    if device_type not in backend.devices:
        where = {"cpu": "the CPU", "cuda": "an NVIDIA GPU"}
        raise DetbenchError(f"--format {name}: {backend.runtime} runs on {where[backend.devices[0]]} here, not on "
                            f"{device_type}; pass --device {'cpu' if backend.devices == ('cpu',) else '0'}")
    for key, flag in UNSUPPORTED_MODES:
        if settings.get(key) and not (key == "half" and backend.half):
            raise DetbenchError(f"--format {name}: {flag} applies to PyTorch eager"
                                f"{' and TensorRT' if key == 'half' else ''} only (the exported model is fp32 and "
                                f"takes square inputs); drop {flag} or use --format pytorch")
    if runtime:
        module = require(backend)
        if device_type == "cuda" and name == "onnx":
            require_cuda_provider(module)
    return backend


def require_cuda_provider(ort: ModuleType) -> None:
    """ONNX Runtime's CUDA execution provider must be in this build (the `onnxruntime` wheel has only the CPU)."""
    available = list(getattr(ort, "get_available_providers", lambda: [])())
    if CUDA_PROVIDER not in available:
        raise DetbenchError(f"--format onnx on the GPU: this ONNX Runtime has no {CUDA_PROVIDER} (it has "
                            f"{', '.join(available) or 'none'}); pip uninstall onnxruntime && pip install -e "
                            f"'.[{FORMATS['onnx'].gpu_extra}]'")


# set while a runtime is imported, so that it writes nothing under the home folder and sends nothing: ONNX Runtime
# (1.32) writes a device id and an event store under ~/.cache/Microsoft/DeveloperTools/.onnxruntime when imported;
# `import openvino` starts OpenVINO's converter's telemetry (a client id and stats under ~/intel, events to Google
# Analytics), which declines in CI, the only switch it reads
QUIET_IMPORT_ENV = {"onnxruntime": {"ORT_DISABLE_TELEMETRY": "1"}, "openvino": {"CI": "true"}}


@contextlib.contextmanager
def quiet_import() -> Iterator[None]:
    """Every QUIET_IMPORT_ENV while the block runs (one package may import another; a value the user set is kept),
    the environment as it was after."""
    wanted = {key: value for env in QUIET_IMPORT_ENV.values() for key, value in env.items()}
    added = {key: value for key, value in wanted.items() if key not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def require(backend: Format) -> ModuleType:
    """The backend's runtime package (after the packages its export needs), or a one-line error naming the extra
    that installs them, imported `quiet_import`."""
    try:
        with quiet_import():
            for name in backend.export_modules:
                importlib.import_module(name)
            return importlib.import_module(backend.module)
    except ImportError as exc:
        extra = f"pip install -e '.[{backend.extra}]'" if backend.extra else f"pip install {backend.module}"
        raise DetbenchError(f"--format {backend.name}: {backend.runtime} or its exporter's packages are not "
                            f"installed (missing: {exc.name or exc}); {extra}") from None
