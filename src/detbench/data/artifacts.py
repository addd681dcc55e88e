"""Real artefacts for tests and the demo: a synthetic dataset, saved and trained checkpoints."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from detbench.data.synthetic import make_dataset


def save_untrained(model_cfg: str, path: str | Path, data_yaml: str | Path | None = None) -> Path:
    """Build a model from a YAML (a path, zoo name or shipped name) and save it as a real checkpoint.

    With `data_yaml`, the checkpoint carries `train_args['data']` as a trained one would.
    """
    # imported here, not at the top: loads torch, Ultralytics, NVML, numpy, which only this path needs
    import torch
    from ultralytics import YOLO

    from detbench import zoo

    zoo.register()
    source = str(zoo.yaml_path(model_cfg)) if model_cfg in zoo.MODELS else model_cfg
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    YOLO(source).save(path)
    if data_yaml is not None:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        ckpt["train_args"] = {"data": str(Path(data_yaml).resolve()), "model": source, "imgsz": 640}
        torch.save(ckpt, path)
    return path


def train_tiny(model_cfg: str, data_yaml: str | Path, project: str | Path, name: str, epochs: int = 1,
               imgsz: int = 64, seed: int = 0) -> Path:
    """A genuine Ultralytics training run on CPU (deterministic for its `seed`); returns the run folder
    (weights/best.pt, results.csv)."""
    # imported here, not at the top: loads torch, Ultralytics, NVML, numpy, which only this path needs
    from ultralytics import YOLO

    from detbench import zoo

    zoo.register()
    source = str(zoo.yaml_path(model_cfg)) if model_cfg in zoo.MODELS else model_cfg
    with contextlib.redirect_stdout(io.StringIO()):
        YOLO(source).train(data=str(data_yaml), epochs=epochs, imgsz=imgsz, batch=8, workers=0, device="cpu",
                           plots=False, project=str(Path(project).resolve()), name=name, exist_ok=True,
                           verbose=False, amp=False, seed=seed, deterministic=True)
    return Path(project) / name


__all__ = ["make_dataset", "save_untrained", "train_tiny"]
