"""The GPU backends (TensorRT `engine`, ONNX Runtime's CUDA provider), checked on the CPU with fakes of what this
machine cannot have: the TensorRT module, ONNX Runtime's CUDA build, the GPU's name. What is real: the bindings
detbench makes (addresses, stream, dtypes), the engine file's header, the export key and the exporter's
arguments, the parity tolerances, and the fp32 inputs an exported model is given."""

from __future__ import annotations

import contextlib
import json
import types
from enum import Enum
from pathlib import Path

import pytest
import torch

from detbench.backends import deploy as deploy_module
from detbench.backends.export import Artifact, Target, export_key
from detbench.backends.export_child import exporter_overrides
from detbench.backends.formats import FORMATS
from detbench.backends.parity import check_parity
from detbench.backends.runtimes import CudaPlace, _onnx_cuda, _tensorrt, engine_bytes
from detbench.data.inputs import InputCache
from detbench.errors import DetbenchError
from detbench.measure.measure import measure
from detbench.measure.modes import ExecutionMode

CUDA = torch.device("cuda:0")


def _cpu_empty(shape, dtype, device):  # the output buffer the runtime would place on the GPU
    assert device == CUDA
    return torch.zeros(shape, dtype=dtype)


class _Stream:
    def __init__(self, name, handle, events):
        self.name, self.cuda_stream, self.events = name, handle, events

    def wait_stream(self, other):
        self.events.append(f"{self.name} waits for {other.name}")


def _place(events: list[str], handle: int = 1234) -> CudaPlace:
    """The runtime's own stream (handle 1234) and the timer's stream (the legacy default, handle 0)."""
    timer = _Stream("timer", 0, events)
    return CudaPlace(CUDA, _Stream("runtime", handle, events), lambda: timer,
                     lambda: contextlib.nullcontext(events.append("device made current")), _cpu_empty)


def _artifact(name: str, data: bytes) -> Artifact:
    return Artifact(name, {name: data}, "0" * 64, None, True, None)


class _DataType(Enum):
    FLOAT = 0
    HALF = 1


class _Mode(Enum):
    INPUT = 0
    OUTPUT = 1


class _FakeEngine:
    def __init__(self, tensors):
        self.tensors = tensors  # name -> (mode, dtype, shape)
        self.num_io_tensors = len(tensors)
        self.context = _FakeContext()

    def get_tensor_name(self, i):
        return list(self.tensors)[i]

    def get_tensor_mode(self, name):
        return self.tensors[name][0]

    def get_tensor_dtype(self, name):
        return self.tensors[name][1]

    def get_tensor_shape(self, name):
        return self.tensors[name][2]

    def create_execution_context(self):
        return self.context


class _FakeContext:
    def __init__(self):
        self.addresses, self.streams, self.events = {}, [], []

    def set_tensor_address(self, name, address):
        self.addresses[name] = address

    def execute_async_v3(self, stream):
        self.streams.append(stream)
        self.events.append(f"launch on {stream}")
        return True


def _fake_trt(engine, seen):
    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            seen.append(data)
            return engine

    class Logger:
        WARNING = 2

        def __init__(self, level):
            assert level == Logger.WARNING

    return types.SimpleNamespace(Logger=Logger, Runtime=Runtime, TensorIOMode=_Mode, __version__="10.99")


def test_an_ultralytics_engine_file_is_split_into_its_header_and_the_engine_and_anything_else_stays_whole():
    header = json.dumps({"stride": 32, "args": {"quantize": 16}}).encode()
    engine, metadata = engine_bytes(len(header).to_bytes(4, "little", signed=True) + header + b"ENGINE")
    assert engine == b"ENGINE" and metadata["args"] == {"quantize": 16}
    assert engine_bytes(b"\xff\xff\xff\x7fENGINE") == (b"\xff\xff\xff\x7fENGINE", {})  # a length past the end
    assert engine_bytes((3).to_bytes(4, "little") + b"abcENGINE") == ((3).to_bytes(4, "little") + b"abcENGINE", {})


def test_the_engine_runs_on_its_own_stream_ordered_against_the_timers_with_buffers_bound_by_address():
    engine = _FakeEngine({"images": (_Mode.INPUT, _DataType.FLOAT, (2, 3, 64, 64)),  # as Ultralytics' fp16 engines
                          "output0": (_Mode.OUTPUT, _DataType.FLOAT, (2, 84, 84))})
    seen: list[bytes] = []
    header = b'{"args": {"quantize": 16, "nested": {"x": 1}}}'
    artifact = _artifact("model.engine", len(header).to_bytes(4, "little") + header + b"SERIALIZED")
    events: list[str] = []
    engine.context.events = events
    runtime = _tensorrt(_fake_trt(engine, seen), artifact, _place(events))
    assert seen == [b"SERIALIZED"]  # the header is not handed to TensorRT
    assert events == ["device made current"]  # loaded on the run's device, not the current one
    x = torch.rand(2, 3, 64, 64)
    out = runtime.forward(x)
    assert events[1:] == ["runtime waits for timer", "launch on 1234", "timer waits for runtime"]
    context = engine.context
    assert context.addresses["images"] == x.data_ptr()
    assert context.addresses["output0"] == out.data_ptr() and tuple(out.shape) == (2, 84, 84)
    assert runtime.info["input_dtype"] == "float32" and runtime.info["export_args"] == {"quantize": 16}
    assert runtime.forward(torch.rand(2, 3, 64, 64)) is out  # the same buffer every call: read before the next
    with pytest.raises(DetbenchError, match=r"the engine takes \[2, 3, 64, 64\], got \[1, 3, 64, 64\]"):
        runtime.forward(torch.rand(1, 3, 64, 64))


def test_an_fp16_engine_input_is_cast_on_the_device_and_the_default_stream_is_never_used():
    engine = _FakeEngine({"images": (_Mode.INPUT, _DataType.HALF, (1, 3, 64, 64)),
                          "output0": (_Mode.OUTPUT, _DataType.FLOAT, (1, 84, 84))})
    runtime = _tensorrt(_fake_trt(engine, []), _artifact("model.engine", b"E"), _place([]))
    runtime.forward(torch.rand(1, 3, 64, 64))
    assert runtime.info["input_dtype"] == "float16"
    broken = _tensorrt(_fake_trt(_FakeEngine(engine.tensors), []), _artifact("model.engine", b"E"), _place([], 0))
    with pytest.raises(RuntimeError, match="legacy default stream"):
        broken.forward(torch.rand(1, 3, 64, 64))


def test_an_engine_header_that_is_hostile_is_treated_as_no_header():
    deep = b"[" * 100_000 + b"]" * 100_000
    data = len(deep).to_bytes(4, "little") + deep + b"ENGINE"
    assert engine_bytes(data) == (data, {})  # too deeply nested to parse: no header
    huge = (2**21).to_bytes(4, "little") + b"{}" + b"x" * 2**21
    assert engine_bytes(huge)[1] == {}


def test_an_engine_that_does_not_load_or_has_a_dynamic_shape_is_a_one_line_error():
    with pytest.raises(DetbenchError, match="TensorRT could not load the engine"):
        _tensorrt(_fake_trt(None, []), _artifact("model.engine", b"x"), _place([]))
    dynamic = _FakeEngine({"images": (_Mode.INPUT, _DataType.FLOAT, (-1, 3, 64, 64)),
                           "output0": (_Mode.OUTPUT, _DataType.FLOAT, (-1, 84, 84))})
    with pytest.raises(DetbenchError, match="is not static"):
        _tensorrt(_fake_trt(dynamic, []), _artifact("model.engine", b"x"), _place([]))


class _FakeBinding:
    def __init__(self):
        self.inputs, self.outputs = [], []

    def bind_input(self, name, device_type, device_id, element_type, shape, buffer_ptr):
        self.inputs.append((name, device_type, device_id, shape, buffer_ptr))

    def bind_output(self, name, device_type, device_id, element_type, shape, buffer_ptr):
        self.outputs.append((name, device_type, device_id, shape, buffer_ptr))


def _fake_ort(cuda_starts: bool = True):
    made = {}

    class Session:
        def __init__(self, data, options, providers):
            made.update(data=data, options=options, providers=providers, runs=0)
            self.binding = _FakeBinding()
            made["binding"] = self.binding

        def get_providers(self):
            return ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda_starts else ["CPUExecutionProvider"]

        def get_inputs(self):
            return [types.SimpleNamespace(name="images", shape=[1, 3, 64, 64])]

        def get_outputs(self):
            return [types.SimpleNamespace(name="output0", shape=[1, 84, 84])]

        def io_binding(self):
            return self.binding

        def run_with_iobinding(self, binding, run_options=None):
            made["runs"] += 1
            made["run_options"] = run_options.entries
            made["events"].append("ORT run")

    class RunOptions:
        def __init__(self):
            self.entries = {}

        def add_run_config_entry(self, key, value):
            self.entries[key] = value

    made["events"] = []
    ort = types.SimpleNamespace(
        RunOptions=RunOptions, SessionOptions=lambda: types.SimpleNamespace(graph_optimization_level=None),
        GraphOptimizationLevel=types.SimpleNamespace(ORT_ENABLE_ALL="all"), InferenceSession=Session,
        get_available_providers=lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    return ort, made


def test_ort_cuda_binds_on_the_device_runs_on_its_own_stream_unsynchronized_with_the_runs_tf32():
    ort, made = _fake_ort()
    events = made["events"]
    runtime = _onnx_cuda(ort, _artifact("model.onnx", b"ONNX"), _place(events), tf32=False)
    x = torch.rand(1, 3, 64, 64)
    out = runtime.forward(x)
    provider, options = made["providers"][0]
    assert provider == "CUDAExecutionProvider" and options["user_compute_stream"] == "1234"
    assert options["use_tf32"] == 0 and options["device_id"] == 0
    assert made["run_options"] == {"disable_synchronize_execution_providers": "1"}
    assert events == ["device made current", "runtime waits for timer", "ORT run", "timer waits for runtime"]
    binding = made["binding"]
    assert binding.inputs == [("images", "cuda", 0, [1, 3, 64, 64], x.data_ptr())]
    assert binding.outputs == [("output0", "cuda", 0, [1, 84, 84], out.data_ptr())]
    assert made["runs"] == 1 and made["data"] == b"ONNX"
    assert "no host copies" in runtime.info["io"]


def test_ort_falling_back_to_the_cpu_on_a_gpu_run_is_refused():
    ort, _ = _fake_ort(cuda_starts=False)
    with pytest.raises(DetbenchError, match="could not start its CUDAExecutionProvider on cuda:0"):
        _onnx_cuda(ort, _artifact("model.onnx", b"ONNX"), _place([]), tf32=True)


def test_the_parity_bounds_follow_what_the_backend_computes_in():
    from detbench.backends.deploy import parity_precision

    fp32 = Target(640, 1)
    assert parity_precision(FORMATS["engine"], Target(640, 1, "0", True), False, CUDA) == ("fp16", "reduced")
    assert parity_precision(FORMATS["engine"], Target(640, 1, "0"), False, CUDA)[1] == "reduced"  # TensorRT's TF32
    assert parity_precision(FORMATS["onnx"], fp32, True, CUDA) == ("fp32", "reduced")
    assert parity_precision(FORMATS["onnx"], fp32, False, CUDA) == ("fp32", "fp32")
    assert parity_precision(FORMATS["onnx"], fp32, True, torch.device("cpu")) == ("fp32", "fp32")


def test_an_engine_is_built_on_its_gpu_in_fp16_and_keyed_by_that_gpu_while_onnx_exports_on_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    engine = deploy_module.export_target(FORMATS["engine"], 640, 1, CUDA, half=True)
    assert engine == Target(640, 1, "0", True, "NVIDIA H200 (sm_90)")
    assert exporter_overrides(FORMATS["engine"], engine)["quantize"] == 16
    assert exporter_overrides(FORMATS["engine"], engine)["device"] == "0"
    assert deploy_module.export_target(FORMATS["onnx"], 640, 1, CUDA, half=False) == Target(640, 1)
    assert deploy_module.export_target(FORMATS["torchscript"], 640, 1, CUDA, half=False).device == "0"
    versions = {"torch": "x"}
    others = (Target(640, 1, "0", False, "NVIDIA H200 (sm_90)"), Target(640, 1, "0", True, "NVIDIA A100 (sm_80)"))
    keys = {export_key("a" * 64, FORMATS["engine"], target, versions) for target in (engine, *others)}
    assert len(keys) == 3  # precision and GPU model each change the key


def test_reduced_precision_parity_accepts_fp16_rounding_that_fp32_parity_flags():
    torch.manual_seed(0)
    preds = torch.cat([torch.rand(1, 4, 50) * 640, torch.rand(1, 80, 50)], dim=1)
    rounded = preds.half().float()  # what fp16 does to the outputs
    assert not check_parity(lambda x: preds, lambda x: rounded, [torch.zeros(1)], 640, 80)["within_tolerance"]
    reduced = check_parity(lambda x: preds, lambda x: rounded, [torch.zeros(1)], 640, 80, "reduced")
    assert reduced["within_tolerance"] and reduced["tolerance"]["precision"] == "reduced"


def test_an_exported_model_is_given_fp32_inputs_even_when_the_run_is_half():
    images = torch.randint(0, 255, (4, 3, 32, 32), dtype=torch.uint8)
    inputs = InputCache(images, "f" * 64, "d" * 64)
    dtypes = []

    def forward(x):
        dtypes.append(x.dtype)
        return x

    measure(torch.nn.Identity(), inputs, 1, torch.device("cpu"), ExecutionMode(half=True), 1, 3,
            watch_host=False, forward=forward)
    assert dtypes and set(dtypes) == {torch.float32}


def test_gpu_check_skips_a_gpu_backend_whose_package_is_missing_and_says_which():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", Path(__file__).resolve().parents[3] / "benchmarks"
                                                  / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)

    missing = gpu_check._gpu_backend_missing("onnx")  # this machine's ONNX Runtime is the CPU build
    assert missing and "onnx-gpu" in missing
    checks = gpu_check._gpu_backend_checks({}, {"v8n-b1-ort-cuda": missing, "v8n-b1-trt-fp16": "x"}, has_gpu=True)
    assert [passed for _, passed in checks] == [None, None]
    assert [passed for _, passed in gpu_check._gpu_backend_checks({"v8n-b1-trt-fp16": None}, {}, True)][0] is False
