"""Put the model on its device in the requested mode and run the timed loop, with memory and NVML readings.

Order on CUDA: the peak-memory counter is reset before the warm-up, so the
warm-up's peak (cuDNN autotuning workspaces included) is read on its own;
then it is reset again, the NVML snapshot is taken, and the timed loop runs,
so `peak_gpu_mem_MB` is the steady-state peak of the timed loop alone.

In a process that holds several models (`shared_process`: a study's worker), the model's memory is read in a
window of its own right after its warm-up instead (`measure.own_memory`), and its energy per image is null.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from detbench.data.inputs import InputCache
from detbench.data.rect import RectInputCache
from detbench.measure import host_load
from detbench.measure.memory import (
    MIB,
    captured_with_memory,
    current_rss_mib,
    graph_mode_memory,
    lifetime_peak_rss_mib,
    loop_memory,
    memory_report,
    reset_cuda_peak,
    reset_rss_peak,
    weights_mib,
)
from detbench.measure.modes import (
    CudaGraphForward,
    ExecutionMode,
    apply_mode,
    configure_backends,
    make_forward,
    to_layout,
)
from detbench.measure.nvml import GpuMonitor, energy_per_image, throttled
from detbench.measure.own_memory import ENERGY_SCOPE, OwnMemoryWindow, memory_iterations
from detbench.measure.timing import Timings, run_timed_loop


@dataclass
class Measurement:
    timings: Timings
    memory: dict[str, Any]
    gpu: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)
    host_load: dict[str, Any] | None = None
    shape_warmups: int = 0  # --rect: untimed forwards, one per input shape, before the warm-up


def warm_each_shape(forward: Callable[[torch.Tensor], Any], next_input: Callable[[int], torch.Tensor],
                    inputs: InputCache, batch: int, device: torch.device) -> int:
    """With --rect, one untimed forward for each input shape of the list, so that no shape is first seen (and
    its kernels chosen or tuned: oneDNN, cudnn.benchmark) inside the timed loop; the number run."""
    if not isinstance(inputs, RectInputCache):
        return 0
    firsts = inputs.first_of_each_shape(batch)
    with torch.inference_mode():
        for iteration in firsts:
            forward(next_input(iteration))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return len(firsts)


def _pci_bus_id(device: torch.device) -> str | None:
    try:
        props = torch.cuda.get_device_properties(device)
        return f"{props.pci_domain_id:08x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0"
    except Exception:
        return None


def measure(model: nn.Module, inputs: InputCache, batch: int, device: torch.device, mode: ExecutionMode,
            warmup: int, iters: int, loop: Callable[..., Timings] = run_timed_loop, watch_host: bool = True,
            model_rss_mib: float | None = None, forward: Callable[[torch.Tensor], Any] | None = None,
            weights_override_mib: float | None = None, shared_process: bool = False,
            **loop_options: Any) -> Measurement:
    """Run warm-up and timed loop; `loop_options` pass through to the loop (e.g. a stopping rule).

    `watch_host`: read the CPU's load before and after the loop and warn when other programs compete (off in
    a study's worker, whose loop spans the other workers' turns and start-ups). `model_rss_mib`: the resident
    memory loading the model added, for the CPU memory section (`measure.memory`). `forward`: another
    runtime's forward over the same inputs (`detbench.backends`), timed in place of the model's;
    `weights_override_mib` is then the size of that runtime's model, and its inputs are fp32 (an exported
    model's input; a TensorRT engine built with --half converts inside). `shared_process`: the process holds
    other models (a study's worker, whose loop calls `before_warmup` too): the memory section is the model's
    own, read around its warm-up (`measure.own_memory`)."""
    on_cuda = device.type == "cuda"
    own = OwnMemoryWindow(device) if shared_process else None  # before the model is put on the device
    configure_backends(mode, device)
    input_dtype = mode.input_dtype if forward is None else torch.float32
    if forward is None:
        model = apply_mode(model.to(device), mode)
        forward = make_forward(model, mode, device)

    def next_input(i: int) -> torch.Tensor:
        return to_layout(inputs.batch(i, batch, device, input_dtype), mode)

    monitor = GpuMonitor(device.index or 0, _pci_bus_id(device)) if on_cuda else None
    state: dict[str, Any] = {}
    if on_cuda:
        reset_cuda_peak(device)  # so the warm-up's own peak (cuDNN autotuning) can be read apart
    if mode.cuda_graph:
        graphed, state["graph"] = captured_with_memory(
            lambda before: CudaGraphForward(forward, next_input(0), before_capture=before), device)
        forward = graphed

        def next_input(i: int) -> torch.Tensor:  # noqa: F811 (staged copy into the graph's static input)
            return graphed.stage(to_layout(inputs.batch(i, batch, device, mode.input_dtype), mode))

    def after_warmup() -> None:
        if own is not None:  # the model alone, before any turn: its memory window
            own.after_warmup(forward, next_input, memory_iterations(inputs, batch, iters))
            if on_cuda:
                state["before"] = monitor.snapshot()
        elif on_cuda:
            torch.cuda.synchronize(device)
            state["warmup_peak"] = torch.cuda.max_memory_allocated(device) / MIB
            state["baseline"] = reset_cuda_peak(device)
            state["before"] = monitor.snapshot()
        else:  # after the warm-up: one-time set-up (oneDNN, first-use pages) is not the model's
            state.update(lifetime_peak=lifetime_peak_rss_mib(), rss_reset=reset_rss_peak(),
                         rss_before_loop=current_rss_mib())
        if watch_host:
            state["load_before"] = host_load.snapshot()  # last: nothing else runs between it and the loop

    shape_warmups = warm_each_shape(forward, next_input, inputs, batch, device)
    if own is not None:
        loop_options["before_warmup"] = own.before_warmup
    timings = loop(forward, next_input, warmup, iters, device, after_warmup=after_warmup, **loop_options)
    load = None
    if state.get("load_before") is not None:
        # the threads that compute: torch's pool on CPU; on CUDA the one thread that launches kernels
        load = host_load.host_load_section(state["load_before"], host_load.snapshot(),
                                           torch.get_num_threads() if not on_cuda else 1, device_type=device.type)
    busy = host_load.busy_warnings(load) if load else []
    weights = weights_mib(model) if weights_override_mib is None else weights_override_mib
    if own is not None:
        memory = own.memory(model_rss_mib if not on_cuda else None, weights if not on_cuda else None,
                            state.get("graph"))
        if not on_cuda:
            return Measurement(timings, memory, None, busy, load, shape_warmups)
        gpu, warnings = _gpu_readings(monitor, state, memory, len(timings.latency_ms) * batch, shared=True)
        return Measurement(timings, memory, gpu, busy + warnings, load, shape_warmups)
    memory = memory_report(device, state.get("baseline"), lifetime_floor_mib=state.get("lifetime_peak", 0.0))
    memory["warmup_peak_gpu_mem_MB"] = state.get("warmup_peak")
    if state.get("graph"):
        memory = graph_mode_memory(memory, state["graph"])
    if not on_cuda:
        memory.update(loop_memory(state.get("rss_before_loop"), state.get("rss_reset", False), model_rss_mib,
                                  weights))
        return Measurement(timings, memory, None, busy, load, shape_warmups)

    gpu, warnings = _gpu_readings(monitor, state, memory, len(timings.latency_ms) * batch)
    return Measurement(timings, memory, gpu, busy + warnings, load, shape_warmups)


def _gpu_readings(monitor: GpuMonitor, state: dict[str, Any], memory: dict[str, Any], images: int,
                  shared: bool = False) -> tuple[dict[str, Any], list[str]]:
    """The report's `gpu` section (NVML before and after the loop, energy) and its busy/throttled warnings.
    `shared`: the loop spanned other models' turns (a study's worker): no energy per image."""
    after = monitor.snapshot()
    others = monitor.other_processes()
    gpu = {
        **monitor.static_info(),
        "before": state.get("before"),
        "after": after,
        "energy_mJ_per_image": None if shared else energy_per_image(state.get("before") or {}, after, images),
        "energy_scope": ENERGY_SCOPE if shared else "board energy counter over the timed loop's wall time / images",
        "other_processes": others,
    }
    if memory.get("reserved_MB") is not None and after.get("device_used_MB") is not None:
        memory["device_used_MB"] = after["device_used_MB"]
    warnings = []
    if others:
        warnings.append(f"GPU busy: {len(others)} other process(es) use this GPU (pids {others[:5]}); "
                        f"latency may be inflated: benchmark on an idle GPU")
    slow = sorted(set(throttled(state.get("before") or {}) + throttled(after)))
    if slow:
        warnings.append(f"GPU clocks throttled ({', '.join(slow)}): check cooling/power limits or lock clocks")
    return gpu, warnings
