"""A forward over each backend's own runtime, with its thread pools set from `--threads` and read back.

`--threads T` means the same for every backend: T threads compute one inference, and no other pool runs
beside them. PyTorch and TorchScript: `torch.set_num_threads(T)` (set by the run). ONNX Runtime: intra-op
T, inter-op 1, sequential execution. OpenVINO: INFERENCE_NUM_THREADS T, one stream, the LATENCY hint, and
f32 precision. Each
forward takes the batch as a contiguous fp32 CPU tensor and returns the model's raw output as a tensor; the
tensor <-> numpy views cost no copy.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from detbench.backends.formats import Format, require


@dataclass
class Runtime:
    forward: Callable[[torch.Tensor], torch.Tensor]
    info: dict[str, Any] = field(default_factory=dict)  # the report's settings.backend


def _torchscript(path: Path, threads: int) -> Runtime:
    with warnings.catch_warnings():  # torch's deprecation notice of torch.jit, once per load
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), map_location="cpu").eval()
    return Runtime(lambda x: module(x), {"threads": {"intra_op": torch.get_num_threads(),
                                                    "inter_op": torch.get_num_interop_threads()}})


def _onnx(ort: Any, path: Path, threads: int) -> Runtime:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: x.numpy()})[0])

    return Runtime(forward, {"providers": session.get_providers(), "graph_optimization": "ORT_ENABLE_ALL",
                             "threads": {"intra_op": threads, "inter_op": 1, "execution_mode": "sequential"}})


def _openvino(ov: Any, path: Path, threads: int) -> Runtime:
    core = ov.Core()
    # f32 asked explicitly: on a CPU with bf16 units OpenVINO otherwise computes in bf16, which is not the
    # fp32 the report states
    compiled = core.compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
                                                      "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    output = compiled.output(0)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(request.infer({0: x.numpy()})[output])

    read = {key: str(compiled.get_property(key)) for key in ("INFERENCE_NUM_THREADS", "NUM_STREAMS",
                                                              "PERFORMANCE_HINT", "INFERENCE_PRECISION_HINT")}
    return Runtime(forward, {"device": "CPU", "properties": read,
                             "threads": {"inference_num_threads": int(read["INFERENCE_NUM_THREADS"]),
                                         "streams": int(read["NUM_STREAMS"])}})


def open_runtime(backend: Format, path: Path, threads: int) -> Runtime:
    """The backend's session over the exported model at `path`, ready to time."""
    module = require(backend)
    if backend.name == "torchscript":
        runtime = _torchscript(path, threads)
    elif backend.name == "onnx":
        runtime = _onnx(module, path, threads)
    else:
        runtime = _openvino(module, path, threads)
    runtime.info = {"format": backend.name, "runtime": backend.runtime,
                    "version": getattr(module, "__version__", None) or torch.__version__, **runtime.info}
    return runtime
