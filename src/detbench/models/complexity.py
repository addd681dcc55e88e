"""Parameter and FLOP counts.

`gflops` follows Ultralytics: THOP multiply-accumulates x 2, profiled on a
stride-sized proxy image and scaled to the run's image size, on the fused
model (as Ultralytics prints for a model ready to predict). The unfused count
is reported beside it. The tests check the count against torch's own
FlopCounterMode (dispatcher-level, 2 x MAC) on a real imgsz input.
"""

from __future__ import annotations

import copy

from torch import nn

from detbench.errors import DetbenchError


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


