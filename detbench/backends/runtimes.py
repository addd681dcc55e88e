"""A forward over each backend's own runtime, with its thread pools set from `--threads` and read back.

`--threads T` means the same for every backend: T threads compute one inference, and no other pool runs
beside them. PyTorch and TorchScript: `torch.set_num_threads(T)` (set by the run). ONNX Runtime: intra-op
T, inter-op 1, sequential execution (its threads' spin-wait left on, as PyTorch's OpenMP threads spin, and
recorded). OpenVINO: INFERENCE_NUM_THREADS T, one stream, the LATENCY hint, and f32 precision (its thread
pinning is recorded as it reads back). Each forward takes the batch as a contiguous fp32 CPU tensor and
returns the model's raw output as a tensor; the tensor <-> numpy views cost no copy, and OpenVINO shares its
input and output buffers (the output is read before the next call). Every runtime loads the export's bytes
as read and hashed (`backends.export`), never its path.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from detbench.backends.export import Artifact
from detbench.backends.formats import Format, require


@dataclass
class Runtime:
    forward: Callable[[torch.Tensor], torch.Tensor]
    info: dict[str, Any] = field(default_factory=dict)  # the report's settings.backend


def _torchscript(artifact: Artifact, threads: int) -> Runtime:
    with warnings.catch_warnings():  # torch's deprecation notice of torch.jit, once per load
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(io.BytesIO(artifact.files[artifact.name]), map_location="cpu").eval()
    return Runtime(lambda x: module(x), {"threads": {"intra_op": torch.get_num_threads(),
                                                    "inter_op": torch.get_num_interop_threads()}})


def _onnx(ort: Any, artifact: Artifact, threads: int) -> Runtime:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    session = ort.InferenceSession(artifact.files[artifact.name], options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: x.numpy()})[0])

    return Runtime(forward, {"providers": session.get_providers(), "graph_optimization": "ORT_ENABLE_ALL",
                             "threads": {"intra_op": threads, "inter_op": 1, "execution_mode": "sequential",
                                         "allow_spinning": True}})


def _openvino(ov: Any, artifact: Artifact, threads: int) -> Runtime:
    core = ov.Core()
    weights_name = artifact.name[:-len(".xml")] + ".bin"
    weights = np.frombuffer(artifact.files.get(weights_name, b""), dtype=np.uint8)
    model = core.read_model(model=artifact.files[artifact.name].decode("utf-8"), weights=ov.Tensor(weights))
    # f32 asked explicitly: on a CPU with bf16 units OpenVINO otherwise computes in bf16, which is not the
    # fp32 the report states
    compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
                                                 "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    output = compiled.output(0)

    def forward(x: torch.Tensor) -> torch.Tensor:
        result = request.infer({0: x.numpy()}, share_inputs=True, share_outputs=True)
        return torch.from_numpy(result[output])

    read = {key: str(compiled.get_property(key)) for key in ("INFERENCE_NUM_THREADS", "NUM_STREAMS",
                                                              "PERFORMANCE_HINT", "INFERENCE_PRECISION_HINT",
                                                              "ENABLE_CPU_PINNING", "ENABLE_HYPER_THREADING")}
    return Runtime(forward, {"device": "CPU", "properties": read,
                             "threads": {"inference_num_threads": int(read["INFERENCE_NUM_THREADS"]),
                                         "streams": int(read["NUM_STREAMS"])}})


def open_runtime(backend: Format, artifact: Artifact, threads: int) -> Runtime:
    """The backend's session over the exported model's bytes, ready to time."""
    module = require(backend)
    if backend.name == "torchscript":
        runtime = _torchscript(artifact, threads)
    elif backend.name == "onnx":
        runtime = _onnx(module, artifact, threads)
    else:
        runtime = _openvino(module, artifact, threads)
    runtime.info = {"format": backend.name, "runtime": backend.runtime,
                    "version": getattr(module, "__version__", None) or torch.__version__, **runtime.info}
    return runtime
