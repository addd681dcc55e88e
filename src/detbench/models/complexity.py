"""Parameter and FLOP counts.

`gflops` follows Ultralytics: THOP multiply-accumulates x 2, profiled on a
stride-sized proxy image and scaled to the run's image size, on the fused
model (as Ultralytics prints for a model ready to predict). The unfused count
is reported beside it. The tests check the count against torch's own
FlopCounterMode (dispatcher-level, 2 x MAC) on a real imgsz input.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from torch import nn

from detbench.errors import DetbenchError
from detbench.models.loading import effective_imgsz, prepare_for_inference


@dataclass
class Counts:
    """A model's size at the run's image size: params and GFLOPs before and after fusing."""

    params: int
    params_fused: int
    gflops: float
    gflops_unfused: float
    stride: int
    imgsz: int  # as run: the requested size rounded up to the stride


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def ultralytics_gflops(model: nn.Module, imgsz: int) -> float:
    """GFLOPs at imgsz x imgsz by Ultralytics' own method; a zero count is an error."""
    # imported here, not at the top: loads Ultralytics, which only this path needs
    from ultralytics.utils.torch_utils import get_flops

    gflops = float(get_flops(copy.deepcopy(model), imgsz))
    if not gflops > 0:
        raise DetbenchError(f"FLOPs counting failed for this model at imgsz {imgsz} (Ultralytics returned "
                            f"{gflops}); the model may contain layers THOP cannot trace")
    return gflops


def fuse_and_count(loaded: Any, requested_imgsz: int) -> tuple[nn.Module, Counts]:
    """The fused model of a `LoadedModel`, and its counts (params and GFLOPs unfused, then fused) at the run's
    image size."""
    imgsz = effective_imgsz(requested_imgsz, loaded.stride)
    params = count_params(loaded.model)
    gflops_unfused = ultralytics_gflops(loaded.model, imgsz)
    fused = prepare_for_inference(loaded.model)
    return fused, Counts(params=params, params_fused=count_params(fused), gflops=ultralytics_gflops(fused, imgsz),
                         gflops_unfused=gflops_unfused, stride=loaded.stride, imgsz=imgsz)
