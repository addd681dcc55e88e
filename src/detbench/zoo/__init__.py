"""The six models of the ablation study, as YAMLs Ultralytics can build.

`baseline` is YOLOv8n; `ghost` and `p2` follow Ultralytics' yolov8-ghost and
yolov8-p2; `eca` adds Efficient Channel Attention after the three backbone
outputs the neck reads (P3, P4 and P5 after SPPF), where re-weighting channels
changes every feature the detector sees at the cost of a few parameters;
`ghost_eca` and `ghost_eca_p2` combine them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MODELS = ("baseline", "ghost", "eca", "p2", "ghost_eca", "ghost_eca_p2")
ZOO_DIR = Path(__file__).parent


def yaml_path(name: str) -> Path:
    return ZOO_DIR / f"{name}.yaml"


def register() -> None:
    """Make ECA known to Ultralytics' YAML parser (it resolves layer names in its own globals)."""
    # imported here, not at the top: loads Ultralytics, which only this path needs
    import ultralytics.nn.tasks as tasks

    from detbench.zoo.eca import ECA

    tasks.ECA = ECA


def __getattr__(name: str) -> Any:
    """`zoo.ECA` on first use: the names and YAMLs of the zoo (what `compare` orders rows by) load no torch."""
    if name == "ECA":
        from detbench.zoo.eca import ECA  # here, not at the top: it imports torch, which `compare` never needs

        return ECA
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ECA", "MODELS", "register", "yaml_path"]
