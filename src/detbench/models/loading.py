"""Load a model to benchmark: a checkpoint (.pt, safe by default), a model YAML, or a zoo name.

A `.pt` file is a pickle, and a plain `torch.load` runs whatever code it holds.
detbench reads the file once (a regular file, bounded in size), checks its
zip archive (`detbench.checkpoint.archive`), replays its pickle on abstract
values (`checkpoint.pickle_scan`) and judges what it would build
(`checkpoint.policy`): only allowed classes, restored and never called, only
callables with the argument shapes torch writes, tensor views inside their
storages. Only then does `torch.load(weights_only=True)` run, on exactly the
bytes that were checked, and the model it returns is checked again as a
structure (`checkpoint.structure`).
`--unsafe-load` is the only way to a full pickle load. Loading an untrusted
model for the first time also runs in a bounded child process: see
`detbench.checkpoint.model_check`.
"""

from __future__ import annotations

import ast
import contextlib
import contextvars
import hashlib
import importlib
import importlib.util
import io
import pickle
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from detbench import limits
from detbench.checkpoint.archive import ArchiveError, DamagedArchive, read_archive
from detbench.checkpoint.pickle_scan import ScanError, scan_pickle
from detbench.checkpoint.policy import NotACheckpoint, Refused, judge
from detbench.checkpoint.structure import StructureError, check_model, model_stride
from detbench.errors import DetbenchError, first_line
from detbench.files.safe_io import load_yaml, read_regular_file
from detbench.names import bad_characters

_LEGACY_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"  # torch.save before torch 1.6 (not a zip)
_TORCHSCRIPT = ("it is a TorchScript archive (torch.jit.save), not an Ultralytics .pt checkpoint",
                "pass the training checkpoint (weights/best.pt) or the model .yaml")
_UNSAFE_HINT = "pass --unsafe-load only if you trust the file (runs its code)"
DOWNLOADING_LAYERS = frozenset({"TorchVision"})  # Ultralytics layers that fetch pretrained weights when built
_plugin_prefixes: list[str] = []  # every plugin module this process has imported (it stays imported)
# code other than detbench's that has run in this process: every plugin it began to import (one that failed
# half-way ran too), a checkpoint loaded with --unsafe-load; such code may have changed anything in the process
_foreign_code: list[str] = []
_plugin_modules: dict[Path, Any] = {}  # a .py plugin's module, by resolved path: a file is executed once
# the plugin modules of the load in progress: only these are on the allow-list (an API call's plugin is not
# allowed in the next call, although Python keeps it imported)
_active_plugins: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("detbench_plugins", default=())


@dataclass
class LoadedModel:
    model: nn.Module
    kind: str  # "checkpoint" or "yaml"
    path: str
    train_args: dict[str, Any] = field(default_factory=dict)
    unsafe_load: bool = False
    sha256: str | None = None  # of the checkpoint or YAML file; None for a zoo or shipped name
    notes: list[str] = field(default_factory=list)

    @property
    def stride(self) -> int:
        return model_stride(self.model)


def register_modules(module: Any) -> list[str]:
    """Make a module's nn.Module classes visible to Ultralytics' YAML parser; return their names."""
    # imported here, not at the top: loads Ultralytics, which only this path needs
    import ultralytics.nn.tasks as tasks

    names = []
    for attr, obj in vars(module).items():
        if isinstance(obj, type) and issubclass(obj, nn.Module) and obj.__module__ == module.__name__:
            setattr(tasks, attr, obj)
            names.append(attr)
    return names


def load_plugin(spec: str) -> str:
    """Import a plugin (a .py path or a dotted module name) once per process, register its layers; its module name."""
    path = Path(spec)
    if path.suffix == ".py":
        if not path.is_file():
            raise DetbenchError(f"--plugin {spec}: file not found")
        _ran(f"plugin {path.resolve()}")
        module = _plugin_modules.get(path.resolve()) or _import_plugin_file(spec, path)
        _plugin_modules[path.resolve()] = module
    else:
        _ran(f"plugin {spec}")
        try:
            module = importlib.import_module(spec)
        except ImportError as exc:
            raise DetbenchError(f"--plugin {spec}: cannot import it ({exc}); give a .py path or module name") from exc
        except Exception as exc:
            raise DetbenchError(f"--plugin {spec}: importing it failed ({type(exc).__name__}: "
                                f"{first_line(exc)}); fix the module") from exc
    if module.__name__ not in _plugin_prefixes:
        _plugin_prefixes.append(module.__name__)
    register_modules(module)
    return module.__name__


def _import_plugin_file(spec: str, path: Path) -> Any:
    # under its own name when free, so that a checkpoint's `layers.MyConv` globals resolve to it
    module_name = path.stem if path.stem.isidentifier() and path.stem not in sys.modules \
        else f"detbench_plugin_{path.stem}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise DetbenchError(f"--plugin {spec}: importing it failed ({type(exc).__name__}: "
                            f"{first_line(exc)}); fix the file") from exc
    return module


def _ran(what: str) -> None:
    if what not in _foreign_code:
        _foreign_code.append(what)


def foreign_code_ran() -> tuple[str, ...]:
    """What code other than detbench's has run in this process so far (plugins, --unsafe-load checkpoints): it may
    have changed any layer's behaviour, Ultralytics' own included, or the environment of later child processes."""
    return tuple(_foreign_code)


@contextlib.contextmanager
def plugins_allowed(plugins: list[str] | tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """Import `plugins` (once per process) and put their modules, and only theirs, on the allow-list meanwhile."""
    token = _active_plugins.set(tuple(load_plugin(plugin) for plugin in plugins))
    try:
        yield _active_plugins.get()
    finally:
        _active_plugins.reset(token)


def _describe_unreadable(data: bytes) -> tuple[str, str]:
    """Why bytes that are not a loadable checkpoint fail, and the fix: (reason, fix)."""
    reexport = "re-copy the file or save the checkpoint again"
    head = data[:512]
    if head.startswith((b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")) or head[8:12] == b"WEBP":
        return "it is an image, not a checkpoint", "pass the model's .pt checkpoint"
    if head.startswith(_LEGACY_MAGIC):
        return ("it is in the legacy (pre-1.6, non-zip) torch.save format, which cannot be checked before "
                "loading", "re-save it with a current torch, or pass --unsafe-load if you trust the file")
    if head[:1] == b"\x08" and (b"onnx" in head.lower() or b"\x12" in head[2:4]):
        return ("it looks like an ONNX model, not an Ultralytics .pt checkpoint",
                "pass the training checkpoint (weights/best.pt) or the model .yaml")
    if head.startswith(b"PK\x03\x04"):
        return "the checkpoint archive is truncated or damaged", reexport
    return "it is truncated, damaged or not a PyTorch checkpoint", reexport


def _unreadable(path: Path, data: bytes, reason: str | None = None) -> DetbenchError:
    default, fix = _describe_unreadable(data)
    return DetbenchError(f"--weights {path}: cannot load: {reason or default}; {fix}")


def _refused(path: Path, reason: str, hint: str = _UNSAFE_HINT) -> DetbenchError:
    return DetbenchError(f"--weights {path}: refused to load: {reason}; {hint}")


def _refuse_folder(path: Path, weights: str | Path) -> None:
    if path.is_dir():
        raise DetbenchError(f"--weights {weights}: is a folder; pass the .pt file inside it (e.g. weights/best.pt)")


def _refuse_unloadable(path: Path, data: bytes, unsafe: bool) -> None:
    """An image or ONNX model is never loaded; without `unsafe`, neither is anything but a zip checkpoint (only
    those are checked before a weights_only load)."""
    reason, _fix = _describe_unreadable(data)
    if "image" in reason or "ONNX" in reason or (not unsafe and not data.startswith(b"PK\x03\x04")):
        raise _unreadable(path, data)


def read_checkpoint_bytes(path: str | Path) -> bytes:
    """The checkpoint file's bytes: a regular file of at most MAX_CHECKPOINT_BYTES, not empty."""
    path = Path(path)
    data = read_regular_file(path, f"--weights {path}", limits.MAX_CHECKPOINT_BYTES,
                             "pass the .pt checkpoint file itself (e.g. results/runs/NAME/seed0/weights/best.pt)")
    if not data:
        raise DetbenchError(f"--weights {path}: the file is empty; re-copy the file or save the checkpoint again")
    return data


def _checked_archive(path: Path, data: bytes, plugins: tuple[str, ...]):
    """Archive, pickle scan and policy: (clean archive bytes, allow-list entries); one-line errors."""
    try:
        archive = read_archive(data)
    except DamagedArchive as exc:
        raise _unreadable(path, data, str(exc)) from exc
    except ArchiveError as exc:
        raise _refused(path, str(exc)) from exc
    if "constants.pkl" in archive.sizes or any(n.startswith("code/") for n in archive.sizes):
        raise DetbenchError(f"--weights {path}: cannot load: {'; '.join(_TORCHSCRIPT)}")
    if not archive.pickle:
        raise _unreadable(path, data, "it is a zip archive but not a PyTorch checkpoint (no data.pkl)")
    try:
        verdict = judge(scan_pickle(archive.pickle), archive, plugins)
    except NotACheckpoint as exc:
        raise DetbenchError(f"--weights {path}: holds {exc}, not an Ultralytics checkpoint; pass the training "
                            f"checkpoint (weights/best.pt) or the model .yaml") from exc
    except (ScanError, Refused) as exc:
        hint = _UNSAFE_HINT
        if "allow-list" in str(exc):
            hint = "pass --plugin MODULE for your own layers, or --unsafe-load if you trust the file (runs its code)"
        raise _refused(path, str(exc), hint) from exc
    return archive.clean, verdict.entries


def load_checkpoint_bytes(data: bytes, path: str | Path, unsafe: bool = False) -> dict[str, Any]:
    """torch.load checkpoint bytes, checked and restricted to allowed classes unless `unsafe`."""
    path = Path(path)
    _refuse_unloadable(path, data, unsafe)
    try:
        if unsafe:
            _ran(f"the checkpoint {path} loaded with --unsafe-load")
            ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
        else:
            clean, entries = _checked_archive(path, data, _active_plugins.get())
            with torch.serialization.safe_globals(entries):
                ckpt = torch.load(io.BytesIO(clean), map_location="cpu", weights_only=True)
    except DetbenchError:
        raise
    except pickle.UnpicklingError as exc:
        if unsafe:
            raise _unreadable(path, data) from exc
        found = re.search(r"WeightsUnpickler error:\s*([^\n]+)", str(exc))
        stopped = found.group(1)[:200] if found else first_line(exc)
        raise _refused(path, f"the restricted unpickler stopped it ({stopped})") from exc
    except (MemoryError, RecursionError) as exc:
        raise _refused(path, f"loading it needs more than the memory or recursion available "
                             f"({type(exc).__name__})") from exc
    except Exception as exc:  # torch raises many types for damaged files
        raise _unreadable(path, data) from exc
    if not isinstance(ckpt, dict):
        raise DetbenchError(f"--weights {path}: holds a {type(ckpt).__name__}, not an Ultralytics checkpoint; pass "
                            f"the training checkpoint (weights/best.pt) or the model .yaml")
    return ckpt


def safe_train_args(raw: Any) -> tuple[dict[str, Any], list[str]]:
    """The checkpoint's train_args reduced to plain, bounded values; notes for what was dropped."""
    if not isinstance(raw, dict):
        return {}, ([f"train_args is a {type(raw).__name__}, not a dict: ignored"] if raw is not None else [])
    kept: dict[str, Any] = {}
    dropped = []
    for key, value in list(raw.items())[:1000]:
        if not isinstance(key, str) or len(key) > 100:
            continue
        if isinstance(value, Path):
            value = str(value)
        if value is None or isinstance(value, (bool, int, float)) or (
                isinstance(value, str) and len(value) <= limits.MAX_PATH_CHARS and not bad_characters(value)):
            kept[key] = value
        elif key == "data":
            dropped.append(f"train_args['data'] is a {type(value).__name__}, not a path to a data YAML: ignored")
    return kept, dropped


def model_from_checkpoint(ckpt: dict[str, Any], path: str | Path) -> nn.Module:
    """The checkpoint's model (its EMA when present), checked as a structure, in fp32 eval mode."""
    model = ckpt.get("ema")
    if model is None:
        model = ckpt.get("model")
    if not isinstance(model, nn.Module):
        keys = ", ".join(str(k)[:40] for k in list(ckpt)[:12])
        raise DetbenchError(f"--weights {path}: no model inside (keys: {keys}); pass an Ultralytics checkpoint")
    try:
        check_model(model)
        model_stride(model)
    except StructureError as exc:
        raise _refused(Path(path), str(exc)) from exc
    try:
        model = model.float().eval()
    except (MemoryError, RecursionError, RuntimeError, TypeError, ValueError, AttributeError) as exc:
        raise _refused(Path(path), f"converting its layers to fp32 failed ({type(exc).__name__}: "
                                   f"{first_line(exc)[:120]})") from exc
    if not hasattr(model, "stride"):
        model.stride = torch.tensor([32.0])
    return model


def _literal_activation(act: str) -> bool:
    """`nn.Name(literal args)` or `torch.nn.Name(...)` naming an nn.Module: what Ultralytics documents."""
    try:
        call = ast.parse(act.strip(), mode="eval").body
        if not isinstance(call, ast.Call):
            return False
        parts, node = [], call.func
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name) or [*parts[1:], node.id] not in (["nn"], ["nn", "torch"]):
            return False
        for arg in [*call.args, *(kw.value for kw in call.keywords)]:
            ast.literal_eval(arg)
        layer = getattr(nn, parts[0], None)
        return isinstance(layer, type) and issubclass(layer, nn.Module)
    except (SyntaxError, ValueError, TypeError, IndexError, RecursionError, MemoryError):
        return False


def check_model_spec(spec: Any, cfg: str | Path) -> None:
    """Refuse a model YAML that Ultralytics would `eval` or call into other than layer classes.

    Ultralytics evaluates `activation:` with `eval()` and looks layer names up in its own
    module's globals, which also hold functions (e.g. a full pickle loader); only an
    `nn.Name(literal args)` activation and layer classes are let through.
    """
    # imported here, not at the top: loads Ultralytics, which only this path needs
    import ultralytics.nn.tasks as tasks

    if not isinstance(spec, dict) or not isinstance(spec.get("backbone"), list) or \
            not isinstance(spec.get("head"), list):
        raise DetbenchError(f"--weights {cfg}: not a model YAML (needs 'backbone' and 'head' lists)")
    act = spec.get("activation")
    if act and not (isinstance(act, str) and _literal_activation(act)):
        shown = act[:80] if isinstance(act, str) else f"a {type(act).__name__}"
        raise DetbenchError(f"--weights {cfg}: refused: 'activation: {shown}' is not of the form "
                            f"nn.Name(literal arguments), and Ultralytics would eval() it; fix the YAML")
    for index, layer in enumerate(spec["backbone"] + spec["head"]):
        name = layer[2] if isinstance(layer, list) and len(layer) == 4 else None
        if not isinstance(name, str):
            raise DetbenchError(f"--weights {cfg}: layer {index} is not [from, repeats, module, args]; fix the YAML")
        if name.startswith("nn."):
            obj = getattr(nn, name[3:], None)
        elif name.startswith("torchvision.ops."):
            obj = getattr(importlib.import_module("torchvision.ops"), name[16:], None)
        else:
            obj = vars(tasks).get(name)
        if not (isinstance(obj, type) and issubclass(obj, nn.Module)) or _from_inactive_plugin(obj):
            raise DetbenchError(f"--weights {cfg}: refused: layer {index} names '{name[:80]}', which is not a layer "
                                f"class; pass --plugin MODULE if it is one of yours")
        if name in DOWNLOADING_LAYERS:
            raise DetbenchError(f"--weights {cfg}: refused: layer {index} is {name}, which downloads weights from "
                                f"the network and stores them outside the output folder; use a layer defined in "
                                f"the YAML or a --plugin")


def _from_inactive_plugin(cls: type) -> bool:
    """A layer class registered by a plugin that this load was not given (an earlier API call's)."""
    return cls.__module__ in _plugin_prefixes and cls.__module__ not in _active_plugins.get()


def _read_model_yaml(cfg: str | Path) -> tuple[dict[str, Any], str | None]:
    """The model YAML as a dict, and the file's sha256 (None for a YAML shipped with Ultralytics)."""
    # imported here, not at the top: loads Ultralytics, which only this path needs
    from ultralytics.nn.tasks import guess_model_scale, yaml_model_load

    path = Path(cfg)
    if not path.exists():  # a name such as yolov8n.yaml: Ultralytics' own file
        try:
            return yaml_model_load(cfg), None
        except Exception as exc:
            raise DetbenchError(f"--weights {cfg}: not a model YAML that can be read ({first_line(exc)})") from exc
    data = read_regular_file(path, f"--weights {cfg}", limits.MAX_YAML_BYTES, "pass the model's .yaml file")
    spec = load_yaml(data, f"--weights {cfg}")
    if isinstance(spec, dict):
        spec.setdefault("scale", guess_model_scale(path))
        spec["yaml_file"] = str(path)
    return spec, hashlib.sha256(data).hexdigest()


def build_from_yaml(cfg: str | Path, spec: dict[str, Any] | None = None) -> nn.Module:
    """Build an untrained detection model from a YAML path or a YAML shipped with Ultralytics."""
    # imported here, not at the top: loads Ultralytics, which only this path needs
    from ultralytics.nn.tasks import DetectionModel, guess_model_task

    from detbench.models.ultralytics_env import restricted_building

    if spec is None:
        spec, _digest = _read_model_yaml(cfg)
    check_model_spec(spec, cfg)
    if spec.get("scales") and not spec.get("scale"):
        spec["scale"] = next(iter(spec["scales"]))  # a YAML named without a scale letter: its first scale
    try:
        task = guess_model_task(spec)
    except Exception as exc:
        raise DetbenchError(f"--weights {cfg}: cannot tell the model's task ({type(exc).__name__}); fix the YAML's "
                            f"head") from exc
    if task != "detect":
        raise DetbenchError(f"--weights {cfg}: a '{task}' model; detbench benchmarks detection models")
    try:
        with restricted_building():
            model = DetectionModel(spec, verbose=False)
    except Exception as exc:
        raise DetbenchError(f"--weights {cfg}: the YAML does not build a model ({type(exc).__name__}: "
                            f"{first_line(exc)[:160]})") from exc
    return model.float().eval()


def _shipped_yaml_exists(name: str) -> bool:
    # imported here, not at the top: loads Ultralytics, which only this path needs
    from ultralytics.utils.checks import check_yaml

    try:
        check_yaml(name, hard=True)
        return True
    except Exception:
        pass
    try:  # scaled names such as yolov8n.yaml map to yolov8.yaml
        unscaled = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", Path(name).stem) + Path(name).suffix
        check_yaml(unscaled, hard=True)
        return True
    except Exception:
        return False


def _same_file(path: str | Path, digest: str | None, expected: str | None) -> None:
    if expected is not None and digest != expected:
        raise DetbenchError(f"--weights {path}: the file changed while detbench was checking it; run again once it "
                            f"is complete")


def _load_checkpoint_file(path: Path, unsafe: bool, expected_sha256: str | None) -> LoadedModel:
    data = read_checkpoint_bytes(path)
    digest = hashlib.sha256(data).hexdigest()
    _same_file(path, digest, expected_sha256)
    ckpt = load_checkpoint_bytes(data, path, unsafe=unsafe)
    model = model_from_checkpoint(ckpt, path)
    train_args, notes = safe_train_args(ckpt.get("train_args"))
    return LoadedModel(model, "checkpoint", str(path), train_args, unsafe, digest, notes)


def load_model(weights: str, unsafe_load: bool = False, plugins: list[str] | tuple[str, ...] = (),
               expected_sha256: str | None = None) -> LoadedModel:
    """Resolve --weights to a model: checkpoint file, YAML file, zoo name, or shipped YAML name.

    `expected_sha256`: the file must still hash to this (the bytes that were checked are the bytes loaded).
    """
    # imported here, not at the top: loads torch, NVML, numpy, which only this path needs
    from detbench import zoo

    zoo.register()
    path = Path(weights)
    suffix = path.suffix.lower()
    with plugins_allowed(plugins):
        _refuse_folder(path, weights)
        if path.exists() and suffix in {".yaml", ".yml"}:
            spec, digest = _read_model_yaml(path)
            _same_file(path, digest, expected_sha256)
            return LoadedModel(build_from_yaml(path, spec), "yaml", str(path), sha256=digest)
        if path.exists() or suffix == ".pt":
            if suffix != ".pt":
                raise DetbenchError(not_a_checkpoint(weights, suffix))
            return _load_checkpoint_file(path, unsafe_load, expected_sha256)
        if weights in zoo.MODELS:
            return LoadedModel(build_from_yaml(zoo.yaml_path(weights)), "yaml", weights)
        if suffix in {".yaml", ".yml"} and _shipped_yaml_exists(weights):
            return LoadedModel(build_from_yaml(weights), "yaml", weights)
    raise DetbenchError(f"--weights {weights}: no such file, zoo model ({', '.join(zoo.MODELS)}) or Ultralytics "
                        f"model YAML")


def file_sha256(weights: str) -> str | None:
    """sha256 of the checkpoint or YAML file `weights` names; None for a zoo or shipped name (no such file)."""
    path = Path(weights)
    if not path.exists():
        return None
    limit = limits.MAX_YAML_BYTES if path.suffix.lower() in {".yaml", ".yml"} else limits.MAX_CHECKPOINT_BYTES
    return hashlib.sha256(read_regular_file(path, f"--weights {weights}", limit)).hexdigest()


EXPORTED_SUFFIXES = {".onnx": "onnx", ".torchscript": "torchscript", ".xml": "openvino", ".engine": "engine"}


def not_a_checkpoint(weights: str, suffix: str) -> str:
    """The error for --weights that is neither a checkpoint nor a YAML; an exported model says what to pass."""
    exported = EXPORTED_SUFFIXES.get(suffix.lower())
    if exported:
        return (f"--weights {weights}: an exported model, not a checkpoint; pass the .pt it was exported from with "
                f"--format {exported} (detbench exports it, with the PyTorch model's params and GFLOPs)")
    return f"--weights {weights}: expected a .pt checkpoint or a model .yaml, got '{suffix}'"


def precheck_model(weights: str, plugins: list[str] | tuple[str, ...] = (), unsafe: bool = False) -> str | None:
    """The static checks of a model file, before anything is loaded; its sha256 (None for a name, not a file).

    A checkpoint's archive and pickle, or a model YAML's layers, are judged here in a fraction of a second,
    so a hostile file is refused at once; loading and running it is then left to the bounded child.
    """
    # imported here, not at the top: loads torch, NVML, numpy, which only this path needs
    from detbench import zoo

    zoo.register()
    path = Path(weights)
    with plugins_allowed(plugins) as allowed:
        _refuse_folder(path, weights)
        if not path.exists():
            if path.suffix.lower() == ".pt" or path.is_symlink():  # a mistyped checkpoint path, a dangling link
                read_checkpoint_bytes(path)  # its one-line "file not found", before anything else is said
            return None
        if path.suffix.lower() in {".yaml", ".yml"}:
            spec, digest = _read_model_yaml(path)
            check_model_spec(spec, path)
            return digest
        if path.suffix.lower() != ".pt":
            raise DetbenchError(not_a_checkpoint(weights, path.suffix))
        data = read_checkpoint_bytes(path)
        _refuse_unloadable(path, data, unsafe)
        if not unsafe:
            _checked_archive(path, data, allowed)
        return hashlib.sha256(data).hexdigest()


def effective_imgsz(imgsz: int, stride: int) -> int:
    """Round up to a multiple of the model's largest stride, as Ultralytics' check_imgsz does."""
    return max(stride, -(-imgsz // stride) * stride)


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
        if re.fullmatch(r"seed\d+", run_dir.name) and run_dir.parent.name:
            return run_dir.parent.name
        if run_dir.name:
            return run_dir.name
    return path.stem
