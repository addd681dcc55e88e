"""GPU-only code paths, tested on CPU with fakes: NVML readings, precision modes, CUDA graph replay."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from detbench.errors import DetbenchError
from detbench.measure.modes import (
    CudaGraphForward,
    ExecutionMode,
    apply_mode,
    configure_backends,
    make_forward,
    to_layout,
)
from detbench.measure.nvml import GpuMonitor, decode_reasons, energy_per_image, throttled


class FakeNvml:
    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 1, 2, 0

    def __init__(self, energy=(1_000_000, 1_250_000), pids=(4242,)):
        self.energy = list(energy)
        self.pids = pids

    def nvmlInit(self):  # noqa: N802 (NVML's own names)
        pass

    def nvmlDeviceGetHandleByIndex(self, index):  # noqa: N802
        return f"handle{index}"

    def nvmlDeviceGetHandleByPciBusId(self, bus):  # noqa: N802
        return f"bus:{bus}"

    def nvmlSystemGetDriverVersion(self):  # noqa: N802
        return b"580.65"

    def nvmlDeviceGetName(self, handle):  # noqa: N802
        return "NVIDIA H200"

    def nvmlDeviceGetClockInfo(self, handle, kind):  # noqa: N802
        return {1: 1980, 2: 3201}[kind]

    def nvmlDeviceGetTemperature(self, handle, sensor):  # noqa: N802
        return 41

    def nvmlDeviceGetPowerUsage(self, handle):  # noqa: N802
        return 125_500

    def nvmlDeviceGetMemoryInfo(self, handle):  # noqa: N802
        return SimpleNamespace(used=600 * 1024**2)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle):  # noqa: N802
        return 0x1 | 0x4

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):  # noqa: N802
        return self.energy.pop(0)

    def nvmlDeviceGetComputeRunningProcesses(self, handle):  # noqa: N802
        import os

        return [SimpleNamespace(pid=os.getpid()), *(SimpleNamespace(pid=p) for p in self.pids)]


def test_nvml_present_gives_clocks_energy_and_other_processes():
    monitor = GpuMonitor(0, nvml=FakeNvml())
    assert monitor.static_info() == {"nvml": True, "name": "NVIDIA H200", "driver": "580.65"}
    before, after = monitor.snapshot(), monitor.snapshot()
    assert before["sm_clock_MHz"] == 1980 and before["mem_clock_MHz"] == 3201
    assert before["temperature_C"] == 41 and before["power_W"] == 125.5
    assert before["device_used_MB"] == 600
    assert before["throttle_reasons"] == ["GpuIdle", "SwPowerCap"]
    assert throttled(before) == ["SwPowerCap"]
    assert energy_per_image(before, after, images=100) == 2500.0
    assert monitor.other_processes() == [4242]


def test_nvml_absent_gives_nulls_and_a_note_not_a_crash():
    class Broken:
        def nvmlInit(self):  # noqa: N802
            raise OSError("libnvidia-ml.so.1: cannot open shared object file")

    monitor = GpuMonitor(0, nvml=Broken())
    assert not monitor.available
    info = monitor.static_info()
    assert info["nvml"] is False and "libnvidia-ml" in info["note"]
    assert monitor.snapshot() == {} and monitor.other_processes() == []
    assert energy_per_image({}, {}, 10) is None


def test_unsupported_energy_counter_gives_none():
    nvml = FakeNvml()
    nvml.nvmlDeviceGetTotalEnergyConsumption = lambda handle: (_ for _ in ()).throw(RuntimeError("N/A"))
    monitor = GpuMonitor(0, nvml=nvml)
    assert monitor.snapshot()["energy_mJ"] is None
    assert decode_reasons(None) is None


def test_fp16_flag_reaches_model_and_inputs():
    mode = ExecutionMode(half=True)
    model = apply_mode(torch.nn.Conv2d(3, 4, 3), mode)
    assert next(model.parameters()).dtype == torch.float16
    assert mode.input_dtype == torch.float16 and mode.precision == "fp16"
    from detbench.data.inputs import InputCache

    cache = InputCache(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "", "")
    assert cache.batch(0, 1, torch.device("cpu"), mode.input_dtype).dtype == torch.float16


def test_modes_that_need_cuda_are_refused_on_cpu():
    cpu = torch.device("cpu")
    for mode, flag in ((ExecutionMode(half=True), "--half"), (ExecutionMode(cuda_graph=True), "--cuda-graph")):
        with pytest.raises(DetbenchError, match=flag):
            mode.check(cpu)
    with pytest.raises(DetbenchError, match="--half and --amp"):
        ExecutionMode(half=True, amp=True).check(torch.device("cuda:0"))
    ExecutionMode(amp=True, channels_last=True).check(cpu)


def test_channels_last_and_amp_forward_run_on_cpu():
    model = torch.nn.Conv2d(3, 4, 3)
    mode = ExecutionMode(amp=True, channels_last=True)
    forward = make_forward(apply_mode(model, mode), mode, torch.device("cpu"))
    out = forward(to_layout(torch.rand(1, 3, 8, 8), mode))
    assert out.dtype == torch.bfloat16 and mode.precision == "amp"


def test_tf32_is_set_only_when_asked_and_only_on_cuda():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        configure_backends(ExecutionMode(), torch.device("cuda:0"))
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == saved  # torch's own
        configure_backends(ExecutionMode(tf32=False), torch.device("cuda:0"))
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        configure_backends(ExecutionMode(tf32=True), torch.device("cuda:0"))
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    with pytest.raises(DetbenchError, match="--tf32/--no-tf32 needs a CUDA device"):
        ExecutionMode(tf32=False).check(torch.device("cpu"))


def test_channels_last_conversion_is_made_with_the_batch_not_in_the_timed_forward(monkeypatch):
    """The timed callable gets the batch already in channels-last; it converts nothing itself."""
    mode = ExecutionMode(channels_last=True)
    x = to_layout(torch.rand(1, 3, 8, 8), mode)
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert to_layout(x, ExecutionMode()) is x
    seen = []
    forward = make_forward(lambda batch: seen.append(batch), mode, torch.device("cpu"))
    plain = torch.rand(1, 3, 8, 8)
    forward(plain)
    assert seen[0] is plain  # passed as given: no copy inside the timed region


class FakeGraphCuda:
    """Enough of torch.cuda to drive CudaGraphForward's capture/replay protocol on CPU."""

    def __init__(self):
        self.log = []
        fake = self

        class Graph:
            def replay(self):
                fake.log.append("replay")
                fake.replayed()

        class Ctx:
            def __init__(self, tag):
                self.tag = tag

            def __enter__(self):
                fake.log.append(f"enter:{self.tag}")

            def __exit__(self, *exc):
                fake.log.append(f"exit:{self.tag}")

        self.CUDAGraph = Graph
        self.graph = lambda g: Ctx("capture")
        self.stream = lambda s: Ctx("side-stream")
        self.Stream = lambda: SimpleNamespace(wait_stream=lambda other: None)
        self.current_stream = lambda: SimpleNamespace(wait_stream=lambda other: None)
        self.replayed = lambda: None


def test_cuda_graph_stages_outside_and_replays_inside():
    cuda = FakeGraphCuda()
    calls = []

    def forward(x):
        calls.append(x.clone())
        return x * 2

    graphed = CudaGraphForward(forward, torch.zeros(2), warmup_runs=2, cuda=cuda)
    assert cuda.log == ["enter:side-stream", "exit:side-stream", "enter:capture", "exit:capture"]
    assert len(calls) == 3  # two warm-up runs and the captured one
    staged = graphed.stage(torch.tensor([1.0, 2.0]))
    assert staged is graphed.static_input and staged.tolist() == [1.0, 2.0]
    graphed(staged)
    assert cuda.log[-1] == "replay"


def test_measure_on_fake_cuda_resets_peak_after_warmup_and_reads_nvml(monkeypatch):
    """The whole CUDA measurement sequence, with torch.cuda and NVML replaced by fakes."""
    import detbench.measure.measure as execution
    from detbench.data.inputs import InputCache
    from detbench.measure.memory import MIB

    log = []
    allocator = {"allocated": 50 * MIB, "peak": 0}

    class Event:
        def __init__(self, enable_timing=False):
            pass

        def record(self):
            log.append("record")

        def elapsed_time(self, other):
            return 2.0

    def reset_peak(device=None):
        log.append("reset-peak")
        allocator["peak"] = allocator["allocated"]

    def forward_spike(x):
        log.append("forward")
        in_warmup = log.count("reset-peak") == 1
        allocator["peak"] = max(allocator["peak"], allocator["allocated"] + (300 if in_warmup else 20) * MIB)

    fakes = {
        "synchronize": lambda device=None: None,
        "reset_peak_memory_stats": reset_peak,
        "max_memory_allocated": lambda device=None: allocator["peak"],
        "memory_allocated": lambda device=None: allocator["allocated"],
        "memory_reserved": lambda device=None: 400 * MIB,
        "Event": Event,
    }
    for name, fake in fakes.items():
        monkeypatch.setattr(torch.cuda, name, fake)
    monkeypatch.setattr(execution, "apply_mode", lambda model, mode: model)
    monkeypatch.setattr(execution, "make_forward", lambda model, mode, device: forward_spike)
    monkeypatch.setattr(execution, "configure_backends", lambda mode, device: None)
    monkeypatch.setattr(execution, "GpuMonitor", lambda index, bus: GpuMonitor(index, nvml=FakeNvml(pids=())))
    monkeypatch.setattr(InputCache, "batch", lambda self, i, b, device, dtype: torch.zeros(1))

    class Model(torch.nn.Module):
        def to(self, device):
            return self

    cache = InputCache(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), "", "")
    result = execution.measure(Model(), cache, 1, torch.device("cuda:0"), ExecutionMode(), warmup=2, iters=4)
    assert log[:4] == ["reset-peak", "forward", "forward", "reset-peak"]  # warm-up peak read, then reset
    assert result.memory["warmup_peak_gpu_mem_MB"] == 350.0  # the autotuning-like spike, reported apart
    assert result.memory["peak_gpu_mem_MB"] == 70.0 and result.memory["allocated_MB"] == 50.0
    assert result.memory["activation_peak_MB"] == 20.0 and result.memory["reserved_MB"] == 400.0
    assert result.timings.latency_ms == [2.0] * 4 and result.timings.timer == "cuda_event"
    assert result.gpu["energy_mJ_per_image"] == 250_000 / 4
    assert result.gpu["name"] == "NVIDIA H200" and result.gpu["before"]["sm_clock_MHz"] == 1980
    assert any("throttled" in w and "SwPowerCap" in w for w in result.warnings)
