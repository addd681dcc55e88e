"""Sweep files for the sweep tests (local and Ray): a tiny study per cell, one worker, a fixed number of rounds."""

from __future__ import annotations

import json
from pathlib import Path

TINY = {"warmup": 2, "iters": 20, "workers_per_model": 1, "until_decided": False, "benchmark_size": 20}


def write_spec(folder: Path, data: Path | None = None, models=("baseline", "p2"), axes=None, settings=None,
               **extra) -> Path:
    spec = {"models": list(models), "axes": axes or {"imgsz": [64]}, "settings": {**TINY, **(settings or {})},
            **({"data": str(data)} if data else {}), **extra}
    path = folder / "sweep.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    return path
