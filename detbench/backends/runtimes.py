"""A forward over each backend's own runtime, with its thread pools set from `--threads` and read back.

`--threads T` means the same for every backend: T threads compute one inference, and no other pool runs
beside them. PyTorch and TorchScript: `torch.set_num_threads(T)` (set by the run). ONNX Runtime: intra-op
T, inter-op 1, sequential execution (its threads' spin-wait left on, as PyTorch's OpenMP threads spin, and
recorded). OpenVINO: INFERENCE_NUM_THREADS T, one stream, the LATENCY hint, and f32 precision (its thread
pinning is recorded as it reads back). Each forward takes the batch as a contiguous fp32 CPU tensor and
returns the model's raw output as a tensor; the tensor <-> numpy views cost no copy, and OpenVINO shares its
input and output buffers (the output is read before the next call). Every runtime loads the export's bytes
as read and hashed (`backends.export`), never its path.

On an NVIDIA GPU the batch is already on the device when the clock starts, as for PyTorch, and the output
stays there, so no host<->device copy is timed. ONNX Runtime's CUDA provider binds the input and a
preallocated output by address (IO binding) and runs on the stream the CUDA events are recorded on; its TF32
follows `--tf32`. A TensorRT engine (Ultralytics' file: a length-prefixed JSON header, then the serialized
engine) runs with `execute_async_v3` on that same stream; an fp32 input is cast on the device when the
engine takes fp16. TorchScript traced on the GPU runs there.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from detbench.backends.export import Artifact
from detbench.backends.formats import CUDA_PROVIDER, Format, require, require_cuda_provider
from detbench.errors import DetbenchError

Empty = Callable[..., torch.Tensor]  # torch.empty's signature: an output buffer on the device


@dataclass
class Runtime:
    forward: Callable[[torch.Tensor], torch.Tensor]
    info: dict[str, Any] = field(default_factory=dict)  # the report's settings.backend


def _torchscript(artifact: Artifact, threads: int, device: torch.device) -> Runtime:
    with warnings.catch_warnings():  # torch's deprecation notice of torch.jit, once per load
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(io.BytesIO(artifact.files[artifact.name]), map_location=device).eval()
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


def _static_shape(shape: Any, what: str) -> tuple[int, ...]:
    dims = tuple(shape)
    if not all(isinstance(d, int) and d > 0 for d in dims):
        raise DetbenchError(f"{what}: the exported model's output shape {list(dims)} is not static; it was not "
                            f"exported by detbench (which exports with a fixed batch and imgsz)")
    return dims


def _onnx_cuda(ort: Any, artifact: Artifact, device: torch.device, tf32: bool, stream: int,
               empty: Empty = torch.empty) -> Runtime:
    """ONNX Runtime's CUDA provider on `stream`, the input and output bound by device address."""
    require_cuda_provider(ort)
    index = device.index or 0
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    provider = {"device_id": index, "user_compute_stream": str(stream), "use_tf32": int(tf32),
                "cudnn_conv_algo_search": "EXHAUSTIVE", "do_copy_in_default_stream": True}
    session = ort.InferenceSession(artifact.files[artifact.name], options,
                                   providers=[(CUDA_PROVIDER, provider), "CPUExecutionProvider"])
    if CUDA_PROVIDER not in session.get_providers():  # ORT falls back to the CPU when CUDA's libraries fail
        raise DetbenchError(f"--format onnx: ONNX Runtime could not start its {CUDA_PROVIDER} on {device} (it "
                            f"runs {', '.join(session.get_providers())}); check that onnxruntime-gpu matches this "
                            f"CUDA and cuDNN")
    source, sink = session.get_inputs()[0], session.get_outputs()[0]
    output = empty(_static_shape(sink.shape, "--format onnx"), dtype=torch.float32, device=device)
    binding = session.io_binding()
    binding.bind_output(sink.name, "cuda", index, np.float32, list(output.shape), output.data_ptr())

    def forward(x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        binding.bind_input(source.name, "cuda", index, np.float32, list(x.shape), x.data_ptr())
        session.run_with_iobinding(binding)
        return output

    return Runtime(forward, {"providers": session.get_providers(), "graph_optimization": "ORT_ENABLE_ALL",
                             "device": str(device), "io": "input and output bound on the device (no host copies)",
                             "cuda_provider": {k: v for k, v in provider.items() if k != "user_compute_stream"},
                             "threads": {"host": "ONNX Runtime's defaults (the GPU computes)"}})


TRT_TORCH_DTYPES = {"FLOAT": torch.float32, "HALF": torch.float16, "INT32": torch.int32, "INT8": torch.int8,
                    "BOOL": torch.bool, "INT64": torch.int64, "BF16": torch.bfloat16}


def engine_bytes(data: bytes) -> tuple[bytes, dict[str, Any]]:
    """Ultralytics' .engine file -> (the serialized engine, its metadata). The file starts with a 4-byte
    little-endian length and that many bytes of JSON; a file without that header is the engine alone."""
    if len(data) > 4:
        size = int.from_bytes(data[:4], byteorder="little", signed=True)
        if 0 < size <= len(data) - 4:
            try:
                metadata = json.loads(data[4:4 + size].decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                metadata = None
            if isinstance(metadata, dict):
                return data[4 + size:], metadata
    return data, {}


def _tensorrt(trt: Any, artifact: Artifact, device: torch.device, stream: Callable[[], int],
              empty: Empty = torch.empty) -> Runtime:
    """The engine deserialized from the export's bytes, its outputs preallocated on the device."""
    serialized, metadata = engine_bytes(artifact.files[artifact.name])
    logger = trt.Logger(trt.Logger.WARNING)
    engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
    if engine is None or not hasattr(engine, "num_io_tensors"):
        raise DetbenchError("--format engine: TensorRT could not load the engine (built by another TensorRT or for "
                            "another GPU, or TensorRT older than 8.5); delete the export cache entry and run again")
    context = engine.create_execution_context()
    inputs, outputs = [], []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        dtype = TRT_TORCH_DTYPES.get(getattr(engine.get_tensor_dtype(name), "name", ""), None)
        if dtype is None:
            raise DetbenchError(f"--format engine: tensor {name} has a type detbench does not bind "
                                f"({engine.get_tensor_dtype(name)})")
        shape = _static_shape(engine.get_tensor_shape(name), "--format engine")
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            inputs.append((name, dtype, shape))
        else:
            outputs.append((name, empty(shape, dtype=dtype, device=device)))
    if len(inputs) != 1 or not outputs:
        raise DetbenchError(f"--format engine: expected one input and an output, found {len(inputs)} input(s) and "
                            f"{len(outputs)} output(s)")
    for name, buffer in outputs:
        context.set_tensor_address(name, buffer.data_ptr())
    input_name, input_dtype, input_shape = inputs[0]
    first = outputs[0][1]

    def forward(x: torch.Tensor) -> torch.Tensor:
        x = x.to(input_dtype).contiguous()  # no copy when already so
        if tuple(x.shape) != input_shape:
            raise DetbenchError(f"--format engine: the engine takes {list(input_shape)}, got {list(x.shape)}")
        context.set_tensor_address(input_name, x.data_ptr())
        if not context.execute_async_v3(stream()):
            raise RuntimeError("TensorRT's execute_async_v3 failed")
        return first

    built = metadata.get("args")
    return Runtime(forward, {"device": str(device), "io": "input and outputs bound on the device (no host copies)",
                             "input_dtype": str(input_dtype).replace("torch.", ""),
                             "outputs": {name: list(buffer.shape) for name, buffer in outputs},
                             "export_args": built if isinstance(built, dict) else None,
                             "threads": {"host": "one (the GPU computes)"}})


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


def current_stream(device: torch.device) -> Callable[[], int]:
    """The handle of the CUDA stream the timer's events are recorded on (torch's current stream)."""
    return lambda: torch.cuda.current_stream(device).cuda_stream


def open_runtime(backend: Format, artifact: Artifact, threads: int, device: torch.device | None = None,
                 tf32: bool = False) -> Runtime:
    """The backend's session over the exported model's bytes, ready to time on `device` (default the CPU)."""
    device = device or torch.device("cpu")
    module = require(backend)
    if backend.name == "torchscript":
        runtime = _torchscript(artifact, threads, device)
    elif backend.name == "onnx" and device.type == "cuda":
        runtime = _onnx_cuda(module, artifact, device, tf32, current_stream(device)())
    elif backend.name == "onnx":
        runtime = _onnx(module, artifact, threads)
    elif backend.name == "engine":
        runtime = _tensorrt(module, artifact, device, current_stream(device))
    else:
        runtime = _openvino(module, artifact, threads)
    runtime.info = {"format": backend.name, "runtime": backend.runtime,
                    "version": getattr(module, "__version__", None) or torch.__version__, **runtime.info}
    return runtime
