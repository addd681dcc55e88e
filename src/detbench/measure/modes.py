"""Execution modes: precision (fp32, fp16, AMP), channels-last, cuDNN autotuning and CUDA graphs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from detbench.errors import DetbenchError


@dataclass(frozen=True)
class ExecutionMode:
    half: bool = False
    amp: bool = False
    channels_last: bool = False
    cudnn_benchmark: bool = True
    cuda_graph: bool = False
    tf32: bool | None = None  # None: torch's defaults (TF32 convolutions on, matmuls off)

    @property
    def precision(self) -> str:
        return "fp16" if self.half else ("amp" if self.amp else "fp32")

    @property
    def input_dtype(self) -> torch.dtype:
        return torch.float16 if self.half else torch.float32

    def check(self, device: torch.device) -> None:
        """Refuse combinations that cannot run here, naming the flag."""
        if self.half and self.amp:
            raise DetbenchError("--half and --amp exclude each other: --half runs the whole model in fp16, "
                                "--amp autocasts an fp32 model; pick one")
        if device.type != "cuda":
            for flag, on in (("--half", self.half), ("--cuda-graph", self.cuda_graph),
                             ("--tf32/--no-tf32", self.tf32 is not None)):
                if on:
                    raise DetbenchError(f"{flag} needs a CUDA device (got {device}); drop it or use --device 0")

def configure_backends(mode: ExecutionMode, device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = mode.cudnn_benchmark
        if mode.tf32 is not None:
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = mode.tf32


def apply_mode(model: nn.Module, mode: ExecutionMode) -> nn.Module:
    """Cast the model as the mode asks (inputs are cast to `mode.input_dtype` by the input cache)."""
    if mode.half:
        model = model.half()
    if mode.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def autocast_context(mode: ExecutionMode, device: torch.device) -> contextlib.AbstractContextManager:
    if not mode.amp:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


def to_layout(x: torch.Tensor, mode: ExecutionMode) -> torch.Tensor:
    """The input in the mode's memory format: done while the batch is prepared, outside the timed region."""
    return x.contiguous(memory_format=torch.channels_last) if mode.channels_last else x


def make_forward(model: nn.Module, mode: ExecutionMode, device: torch.device) -> Callable[[torch.Tensor], Any]:
    """The callable the timed loop runs: the model under autocast (if any). Inputs come in the mode's layout
    already (`to_layout`), so a channels-last copy is not timed as the model's."""

    def forward(x: torch.Tensor) -> Any:
        with autocast_context(mode, device):
            return model(x)

    return forward


class CudaGraphForward:
    """Capture the forward once on a static input, then replay it.

    `stage(x)` copies the next batch into the static input outside the timed
    region; calling the object replays the captured graph, so the timed region
    holds the replay alone.
    """

    def __init__(self, forward: Callable[[torch.Tensor], Any], example: torch.Tensor, warmup_runs: int = 3,
                 cuda: Any = torch.cuda, before_capture: Callable[[], None] | None = None) -> None:
        self.static_input = example.clone()
        stream = cuda.Stream()
        stream.wait_stream(cuda.current_stream())
        with cuda.stream(stream), torch.inference_mode():
            for _ in range(warmup_runs):  # side-stream warm-up, as capture requires
                forward(self.static_input)
        cuda.current_stream().wait_stream(stream)
        if before_capture is not None:  # e.g. reset the peak counter: the capture alone is measured
            before_capture()
        self.graph = cuda.CUDAGraph()
        with cuda.graph(self.graph), torch.inference_mode():
            self.static_output = forward(self.static_input)

    def stage(self, x: torch.Tensor) -> torch.Tensor:
        self.static_input.copy_(x)
        return self.static_input

    def __call__(self, _: torch.Tensor) -> Any:
        self.graph.replay()
        return self.static_output
