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
stays there, so no host<->device copy is timed. Each GPU runtime runs on a stream of its own, ordered
against the stream the timer's CUDA events are recorded on (`CudaPlace`). ONNX Runtime's CUDA provider binds
the input and a preallocated output by address (IO binding), its run not synchronized on the host, its TF32
following the run's. A TensorRT engine (Ultralytics' file: a length-prefixed JSON header, then the serialized
engine) is loaded on the run's device and runs with `execute_async_v3`; TensorRT's builder allows TF32 in an
fp32 engine. TorchScript traced on the GPU runs there.
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


@dataclass
class CudaPlace:
    """Where a GPU runtime runs: its own non-default stream on `device`, ordered against the caller's stream.

    The timer's CUDA events are recorded on the caller's (current) stream. A forward makes the runtime's stream
    wait for the caller's (so the work starts after the start event and the input is ready), launches on the
    runtime's stream, and makes the caller's stream wait for it (so the end event follows the work): the events
    bracket the runtime's work without a host synchronize. TensorRT and ONNX Runtime both want a stream of their
    own; on the legacy default stream (handle 0) TensorRT adds synchronizes and ORT ignores it."""

    device: torch.device
    stream: Any  # torch.cuda.Stream
    current: Callable[[], Any]  # the caller's current stream
    scope: Callable[[], Any]  # a context manager making `device` current
    empty: Empty = torch.empty

    @classmethod
    def on(cls, device: torch.device) -> CudaPlace:
        with torch.cuda.device(device):
            stream = torch.cuda.Stream(device)
        return cls(device, stream, lambda: torch.cuda.current_stream(device), lambda: torch.cuda.device(device))

    @property
    def handle(self) -> int:
        handle = int(self.stream.cuda_stream)
        if handle == 0:
            raise RuntimeError("the runtime's CUDA stream is the legacy default stream")
        return handle

    def run(self, launch: Callable[[int], Any]) -> None:
        caller = self.current()
        self.stream.wait_stream(caller)
        launch(self.handle)
        caller.wait_stream(self.stream)


def _onnx_cuda(ort: Any, artifact: Artifact, place: CudaPlace, tf32: bool) -> Runtime:
    """ONNX Runtime's CUDA provider on the place's stream, the input and output bound by device address, the
    run not synchronized on the host (the caller's stream waits for it instead)."""
    require_cuda_provider(ort)
    device = place.device
    index = device.index or 0
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    provider = {"device_id": index, "user_compute_stream": str(place.handle), "use_tf32": int(tf32),
                "cudnn_conv_algo_search": "EXHAUSTIVE"}
    with place.scope():
        session = ort.InferenceSession(artifact.files[artifact.name], options,
                                       providers=[(CUDA_PROVIDER, provider), "CPUExecutionProvider"])
    if CUDA_PROVIDER not in session.get_providers():  # ORT falls back to the CPU when CUDA's libraries fail
        raise DetbenchError(f"--format onnx: ONNX Runtime could not start its {CUDA_PROVIDER} on {device} (it "
                            f"runs {', '.join(session.get_providers())}); check that onnxruntime-gpu matches this "
                            f"CUDA and cuDNN")
    run_options = ort.RunOptions()
    run_options.add_run_config_entry("disable_synchronize_execution_providers", "1")
    source, sink = session.get_inputs()[0], session.get_outputs()[0]
    output = place.empty(_static_shape(sink.shape, "--format onnx"), dtype=torch.float32, device=device)
    binding = session.io_binding()
    binding.bind_output(sink.name, "cuda", index, np.float32, list(output.shape), output.data_ptr())

    def forward(x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        binding.bind_input(source.name, "cuda", index, np.float32, list(x.shape), x.data_ptr())
        place.run(lambda handle: session.run_with_iobinding(binding, run_options))
        return output

    return Runtime(forward, {"providers": session.get_providers(), "graph_optimization": "ORT_ENABLE_ALL",
                             "device": str(device), "io": "input and output bound on the device (no host copies)",
                             "stream": "its own, ordered against the timer's; no host synchronize per run",
                             "cuda_provider": {k: v for k, v in provider.items() if k != "user_compute_stream"},
                             "threads": {"host": "ONNX Runtime's defaults (the GPU computes)"}})


TRT_TORCH_DTYPES = {"FLOAT": torch.float32, "HALF": torch.float16, "INT32": torch.int32, "INT8": torch.int8,
                    "BOOL": torch.bool, "INT64": torch.int64, "BF16": torch.bfloat16}
MAX_ENGINE_HEADER_BYTES = 2**20


def engine_bytes(data: bytes) -> tuple[bytes, dict[str, Any]]:
    """Ultralytics' .engine file -> (the serialized engine, its metadata). The file starts with a 4-byte
    little-endian length and that many bytes of JSON (at most 1 MiB read); a file without that header is the
    engine alone. Only the metadata's scalar `args` are kept."""
    if len(data) > 4:
        size = int.from_bytes(data[:4], byteorder="little", signed=True)
        if 0 < size <= min(len(data) - 4, MAX_ENGINE_HEADER_BYTES):
            try:
                metadata = json.loads(data[4:4 + size].decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                metadata = None
            if isinstance(metadata, dict):
                args = metadata.get("args")
                scalars = {str(k)[:64]: v for k, v in args.items() if isinstance(v, (str, int, float, bool))
                           or v is None} if isinstance(args, dict) else {}
                return data[4 + size:], {"args": dict(list(scalars.items())[:64])}
    return data, {}


def _tensorrt(trt: Any, artifact: Artifact, place: CudaPlace) -> Runtime:
    """The engine deserialized from the export's bytes on the place's device, its outputs preallocated there."""
    serialized, metadata = engine_bytes(artifact.files[artifact.name])
    device = place.device
    with place.scope():
        logger = trt.Logger(trt.Logger.WARNING)
        engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
        if engine is None or not hasattr(engine, "num_io_tensors"):
            where = f" ({artifact.cached_at})" if artifact.cached_at else ""
            raise DetbenchError(f"--format engine: TensorRT could not load the engine (built by another TensorRT or "
                                f"for another GPU, or TensorRT older than 8.5); delete its export cache entry{where} "
                                f"and run again")
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
                outputs.append((name, place.empty(shape, dtype=dtype, device=device)))
    if len(inputs) != 1 or not outputs:
        raise DetbenchError(f"--format engine: expected one input and an output, found {len(inputs)} input(s) and "
                            f"{len(outputs)} output(s)")
    for name, buffer in outputs:
        context.set_tensor_address(name, buffer.data_ptr())
    input_name, input_dtype, input_shape = inputs[0]
    first = outputs[0][1]

    def launch(handle: int) -> None:
        if not context.execute_async_v3(handle):
            raise RuntimeError("TensorRT's execute_async_v3 failed")

    def forward(x: torch.Tensor) -> torch.Tensor:
        x = x.to(input_dtype).contiguous()  # no copy when already so (Ultralytics' engines take fp32)
        if tuple(x.shape) != input_shape:
            raise DetbenchError(f"--format engine: the engine takes {list(input_shape)}, got {list(x.shape)}")
        context.set_tensor_address(input_name, x.data_ptr())
        place.run(launch)
        return first

    return Runtime(forward, {"device": str(device), "io": "input and outputs bound on the device (no host copies)",
                             "stream": "its own, ordered against the timer's",
                             "input_dtype": str(input_dtype).replace("torch.", ""),
                             "outputs": {name: list(buffer.shape) for name, buffer in outputs},
                             "export_args": metadata.get("args"),
                             "tf32": "allowed (TensorRT's builder default; the exporter does not clear it)",
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


def open_runtime(backend: Format, artifact: Artifact, threads: int, device: torch.device | None = None,
                 tf32: bool = False) -> Runtime:
    """The backend's session over the exported model's bytes, ready to time on `device` (default the CPU)."""
    device = device or torch.device("cpu")
    module = require(backend)
    if backend.name == "torchscript":
        runtime = _torchscript(artifact, threads, device)
    elif backend.name == "onnx" and device.type == "cuda":
        runtime = _onnx_cuda(module, artifact, CudaPlace.on(device), tf32)
    elif backend.name == "onnx":
        runtime = _onnx(module, artifact, threads)
    elif backend.name == "engine":
        runtime = _tensorrt(module, artifact, CudaPlace.on(device))
    else:
        runtime = _openvino(module, artifact, threads)
    runtime.info = {"format": backend.name, "runtime": backend.runtime,
                    "version": getattr(module, "__version__", None) or torch.__version__, **runtime.info}
    return runtime
