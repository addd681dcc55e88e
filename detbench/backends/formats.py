"""The backends `--format` takes, the extra each needs, and the checks made before anything loads."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
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


FORMATS: dict[str, Format] = {
    "torchscript": Format("torchscript", "TorchScript", "torch", "", "torchscript"),
    "onnx": Format("onnx", "ONNX Runtime", "onnxruntime", "onnx", "onnx", ("onnx", "onnxslim")),
    "openvino": Format("openvino", "OpenVINO", "openvino", "openvino", "openvino"),
}
PYTORCH = "pytorch"
CHOICES = (PYTORCH, *FORMATS)
UNSUPPORTED_MODES = (("half", "--half"), ("amp", "--amp"), ("channels_last", "--channels-last"),
                     ("cuda_graph", "--cuda-graph"), ("rect", "--rect"))


def split_format(raw: str) -> tuple[str, str | None]:
    """`NAME@FORMAT` -> (NAME, FORMAT) when FORMAT names a backend (`--format`'s values); else (raw, None)."""
    entry, at, fmt = raw.rpartition("@")
    return (entry, fmt) if at and entry and fmt in CHOICES else (raw, None)


def check_format(name: str, device_type: str, settings: Mapping[str, Any]) -> Format | None:
    """The backend of `--format NAME` (None for PyTorch eager), its runtime installed; a one-line error for an
    unknown name, a device it does not run on here, a PyTorch-only mode asked with it in `settings` (a run's
    settings by field name), or a missing runtime."""
    if name == PYTORCH:
        return None
    if name not in FORMATS:
        raise DetbenchError(f"--format {name}: not a backend here; choose one of {', '.join(CHOICES)}")
    backend = FORMATS[name]
    if device_type != "cpu":
        raise DetbenchError(f"--format {name}: runs on the CPU in this version; pass --device cpu, or --format "
                            f"pytorch on the GPU")
    for key, flag in UNSUPPORTED_MODES:
        if settings.get(key):
            raise DetbenchError(f"--format {name}: {flag} applies to PyTorch eager only (the exported model is "
                                f"fp32 and takes square inputs); drop {flag} or use --format pytorch")
    require(backend)
    return backend


def require(backend: Format) -> ModuleType:
    """The backend's runtime package (after the packages its export needs), or a one-line error naming the extra
    that installs them."""
    try:
        for name in backend.export_modules:
            importlib.import_module(name)
        return importlib.import_module(backend.module)
    except ImportError as exc:
        extra = f"pip install -e '.[{backend.extra}]'" if backend.extra else f"pip install {backend.module}"
        raise DetbenchError(f"--format {backend.name}: {backend.runtime} or its exporter's packages are not "
                            f"installed (missing: {exc.name or exc}); {extra}") from None
