"""Parse and check the --device flag."""

from __future__ import annotations

import re

import torch

from detbench.errors import DetbenchError


def resolve_device(spec: str | None) -> torch.device:
    """Map `cpu`, `0`, `cuda`, `cuda:N` or None (auto) to a torch.device that exists here."""
    if spec is None or str(spec).strip() == "":
        return torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")
    text = str(spec).strip().lower()
    if text == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"(?:cuda:?)?(\d+)|cuda", text)
    if not match:
        raise DetbenchError(f"--device {spec!r} is not understood: use cpu, 0, 1, … or cuda:N")
    index = int(match.group(1) or 0)
    if not torch.cuda.is_available():
        raise DetbenchError(f"--device {spec} asks for a CUDA GPU, but none is available here: use --device cpu")
    count = torch.cuda.device_count()
    if index >= count:
        raise DetbenchError(f"--device {spec}: there is no CUDA device {index} (found {count}); use 0..{count - 1}")
    return torch.device(f"cuda:{index}")
