"""Load a model to benchmark: a checkpoint (.pt, safe by default), a model YAML, or a zoo name.

A `.pt` file is a pickle, and a plain `torch.load` runs whatever code it holds.
detbench loads with `weights_only=True` and allows only the classes a YOLO
checkpoint is made of: torch.nn modules, Ultralytics modules, detbench's own
modules and those of `--plugin` modules the user names. Anything else is
refused by name; `--unsafe-load` is the only way to a full pickle load.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import detbench  # noqa: F401  (sets YOLO_OFFLINE before Ultralytics is imported)
from detbench.errors import DetbenchError

SAFE_MODULE_PREFIXES = ("torch.nn.modules", "ultralytics.nn", "detbench.zoo")
SAFE_EXTRA_GLOBALS = {
    "ultralytics.utils.IterableSimpleNamespace",
    "types.SimpleNamespace",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.dtype",
}
_plugin_prefixes: list[str] = []


@dataclass
class LoadedModel:
    model: nn.Module
    kind: str  # "checkpoint" or "yaml"
    path: str
    train_args: dict[str, Any] = field(default_factory=dict)
    unsafe_load: bool = False

    @property
    def stride(self) -> int:
        stride = getattr(self.model, "stride", None)
        return max(int(stride.max()) if isinstance(stride, torch.Tensor) else int(stride or 32), 32)


def register_modules(module: Any) -> list[str]:
    """Make a module's nn.Module classes visible to Ultralytics' YAML parser; return their names."""
    import ultralytics.nn.tasks as tasks

    names = []
    for attr, obj in vars(module).items():
        if isinstance(obj, type) and issubclass(obj, nn.Module) and obj.__module__ == module.__name__:
            setattr(tasks, attr, obj)
            names.append(attr)
    return names


def load_plugin(spec: str) -> list[str]:
    """Import a plugin (a .py path or a dotted module name), register and allow its layers."""
    path = Path(spec)
    if path.suffix == ".py":
        if not path.is_file():
            raise DetbenchError(f"--plugin {spec}: file not found")
        module_name = f"detbench_plugin_{path.stem}"
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        loader_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(spec)
        except ImportError as exc:
            raise DetbenchError(f"--plugin {spec}: cannot import it ({exc}); give a .py path or module name") from exc
    _plugin_prefixes.append(module.__name__)
    return register_modules(module)


def _resolve_safe_global(name: str) -> Any | None:
    """The object for a checkpoint global if detbench allows it, else None."""
    module_name, _, attr = name.rpartition(".")
    prefixes = SAFE_MODULE_PREFIXES + tuple(_plugin_prefixes)
    if name not in SAFE_EXTRA_GLOBALS and not any(
            module_name == p or module_name.startswith(p + ".") for p in prefixes):
        return None
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        return None
    if name in SAFE_EXTRA_GLOBALS or (isinstance(obj, type) and issubclass(obj, nn.Module)):
        return obj
    return None


def _describe_unreadable(path: Path) -> str:
    head = path.read_bytes()[:16]
    if head.startswith(b"\xff\xd8\xff") or head.startswith(b"\x89PNG"):
        return "it is an image, not a checkpoint"
    if zipfile.is_zipfile(path):
        names = zipfile.ZipFile(path).namelist()
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            return "it is a TorchScript archive, not an Ultralytics .pt checkpoint"
        return "the archive is truncated or damaged"
    if b"onnx" in path.read_bytes()[:256].lower() or head[:1] == b"\x08":
        return "it looks like an ONNX model, not an Ultralytics .pt checkpoint"
    return "it is truncated, damaged or not a PyTorch checkpoint"


def load_checkpoint(path: str | Path, unsafe: bool = False) -> dict[str, Any]:
    """torch.load the checkpoint, restricted to allowed classes unless `unsafe`."""
    path = Path(path)
    if not path.is_file():
        raise DetbenchError(f"--weights {path}: file not found; check the path (e.g. results/runs/NAME/seed0/"
                            f"weights/best.pt)")
    if path.stat().st_size == 0:
        raise DetbenchError(f"--weights {path}: the file is empty; re-copy or re-export the checkpoint")
    try:
        if unsafe:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
        else:
            needed = torch.serialization.get_unsafe_globals_in_checkpoint(path)
            resolved = {name: _resolve_safe_global(name) for name in needed}
            refused = sorted(name for name, obj in resolved.items() if obj is None)
            if refused:
                shown = ", ".join(refused[:4]) + (f" (+{len(refused) - 4} more)" if len(refused) > 4 else "")
                raise DetbenchError(
                    f"--weights {path}: refused to load: it needs {shown}, not on detbench's allow-list; pass "
                    f"--plugin MODULE for your own layers, or --unsafe-load if you trust the file (runs its code)")
            with torch.serialization.safe_globals(list(resolved.values())):
                ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except DetbenchError:
        raise
    except Exception as exc:  # torch raises many types for damaged files
        raise DetbenchError(f"--weights {path}: cannot load: {_describe_unreadable(path)}; re-copy or re-export "
                            f"it") from exc
    if not isinstance(ckpt, dict):
        raise DetbenchError(f"--weights {path}: holds a {type(ckpt).__name__}, not an Ultralytics checkpoint dict")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any], path: str | Path) -> nn.Module:
    model = ckpt.get("ema") or ckpt.get("model")
    if not isinstance(model, nn.Module):
        raise DetbenchError(f"--weights {path}: no model inside (keys: {', '.join(map(str, ckpt))[:120]})")
    model = model.float().eval()
    if not hasattr(model, "stride"):
        model.stride = torch.tensor([32.0])
    return model


def build_from_yaml(cfg: str | Path) -> nn.Module:
    """Build an untrained detection model from a YAML path or a YAML shipped with Ultralytics."""
    from ultralytics.nn.tasks import DetectionModel, guess_model_task, yaml_model_load

    try:
        spec = yaml_model_load(cfg)
    except Exception as exc:
        raise DetbenchError(f"--weights {cfg}: not a model YAML that can be read ({exc})") from exc
    if spec.get("scales") and not spec.get("scale"):
        spec["scale"] = next(iter(spec["scales"]))  # a YAML named without a scale letter: its first scale
    task = guess_model_task(spec)
    if task != "detect":
        raise DetbenchError(f"--weights {cfg}: a '{task}' model; detbench benchmarks detection models")
    try:
        model = DetectionModel(spec, verbose=False)
    except Exception as exc:
        raise DetbenchError(f"--weights {cfg}: the YAML does not build a model ({type(exc).__name__}: {exc})") \
            from exc
    return model.float().eval()


def _shipped_yaml_exists(name: str) -> bool:
    from ultralytics.utils.checks import check_yaml

    try:
        check_yaml(name, hard=True)
        return True
    except Exception:
        pass
    try:  # scaled names such as yolov8n.yaml map to yolov8.yaml
        import re

        unscaled = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", Path(name).stem) + Path(name).suffix
        check_yaml(unscaled, hard=True)
        return True
    except Exception:
        return False


def load_model(weights: str, unsafe_load: bool = False, plugins: list[str] | tuple[str, ...] = ()) -> LoadedModel:
    """Resolve --weights to a model: checkpoint file, YAML file, zoo name, or shipped YAML name."""
    from detbench import zoo

    zoo.register()
    for plugin in plugins:
        load_plugin(plugin)
    path = Path(weights)
    suffix = path.suffix.lower()
    if path.is_file() and suffix in {".yaml", ".yml"}:
        return LoadedModel(build_from_yaml(path), "yaml", str(path))
    if path.exists() or suffix == ".pt":
        if suffix != ".pt":
            raise DetbenchError(f"--weights {weights}: expected a .pt checkpoint or a model .yaml, got '{suffix}'")
        ckpt = load_checkpoint(path, unsafe=unsafe_load)
        train_args = ckpt.get("train_args") or {}
        return LoadedModel(model_from_checkpoint(ckpt, path), "checkpoint", str(path),
                           dict(train_args) if isinstance(train_args, dict) else {}, unsafe_load)
    if weights in zoo.MODELS:
        return LoadedModel(build_from_yaml(zoo.yaml_path(weights)), "yaml", weights)
    if suffix in {".yaml", ".yml"} and _shipped_yaml_exists(weights):
        return LoadedModel(build_from_yaml(weights), "yaml", weights)
    raise DetbenchError(f"--weights {weights}: no such file, zoo model ({', '.join(zoo.MODELS)}) or Ultralytics "
                        f"model YAML")


def prepare_for_inference(model: nn.Module) -> nn.Module:
    """Fuse Conv+BN (as Ultralytics does before predicting), eval mode, no gradients."""
    if hasattr(model, "fuse"):
        model = model.fuse(verbose=False)
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def model_name_for(weights: str) -> str:
    """`results/runs/ghost/seed0/weights/best.pt` -> `ghost`; otherwise the file stem."""
    path = Path(weights)
    parts = path.parts
    if len(parts) >= 2 and parts[-2] == "weights":
        run_dir = path.parent.parent
        if run_dir.name.startswith("seed") and run_dir.parent.name:
            return run_dir.parent.name
        if run_dir.name:
            return run_dir.name
    return path.stem
