"""Load a model to benchmark: a checkpoint (.pt, safe by default), a model YAML, or a zoo name.

A `.pt` file is a pickle, and a plain `torch.load` runs whatever code it holds.
detbench loads with `weights_only=True` and allows only the classes a YOLO
checkpoint is made of: torch.nn modules, Ultralytics modules, detbench's own
modules and those of `--plugin` modules the user names. The pickle is first
read statically (`scan_pickle`): any other global is refused by name, and so is
any call of an allowed class while unpickling (objects are restored with
`__new__` and their state; a constructor could do anything, e.g. load another
file). `--unsafe-load` is the only way to a full pickle load.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import io
import pathlib
import pickle
import pickletools
import re
import sys
import zipfile
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import detbench  # noqa: F401  (sets YOLO_OFFLINE before Ultralytics is imported)
from detbench.errors import DetbenchError

# Classes a checkpoint may name: layers from these modules (nn.Module subclasses only), created the
# way pickle restores an object (`cls.__new__` + its saved state), never by calling them.
SAFE_MODULE_PREFIXES = ("torch.nn.modules", "ultralytics.nn.modules", "ultralytics.nn.tasks", "detbench.zoo")
# Modules whose classes of any kind may be restored that way (loss helpers kept by older checkpoints).
SAFE_CLASS_MODULES = ("ultralytics.utils.loss", "ultralytics.utils.tal")
# Plain data types that may also be called while loading (their constructors only build values).
SAFE_EXTRA_GLOBALS = {
    "ultralytics.utils.IterableSimpleNamespace",
    "types.SimpleNamespace",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.dtype",
    "pathlib.PosixPath",
    "pathlib.WindowsPath",
    "pathlib._local.PosixPath",
    "pathlib._local.WindowsPath",
}
MAX_PICKLE_BYTES = 512 * 2**20  # a YOLO checkpoint's pickle is well under 1 MiB; the tensors live beside it
_LEGACY_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"  # torch.save before torch 1.6 (not a zip)
_TORCHSCRIPT = ("it is a TorchScript archive (torch.jit.save), not an Ultralytics .pt checkpoint",
                "pass the training checkpoint (weights/best.pt) or the model .yaml")
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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def load_plugin(spec: str) -> list[str]:
    """Import a plugin (a .py path or a dotted module name), register and allow its layers."""
    path = Path(spec)
    if path.suffix == ".py":
        if not path.is_file():
            raise DetbenchError(f"--plugin {spec}: file not found")
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
                                f"{_one_line(exc)}); fix the file") from exc
    else:
        try:
            module = importlib.import_module(spec)
        except ImportError as exc:
            raise DetbenchError(f"--plugin {spec}: cannot import it ({exc}); give a .py path or module name") from exc
        except Exception as exc:
            raise DetbenchError(f"--plugin {spec}: importing it failed ({type(exc).__name__}: "
                                f"{_one_line(exc)}); fix the module") from exc
    _plugin_prefixes.append(module.__name__)
    return register_modules(module)


def _restricted_getattr(obj: Any, name: Any) -> Any:
    """`getattr` as Ultralytics checkpoints use it (a saved `Detect.forward`), limited to that."""
    if name in {"forward", "forward_fuse"}:
        if isinstance(obj, type) and issubclass(obj, nn.Module):
            return getattr(obj, name)
        if isinstance(obj, nn.Module):
            return getattr(type(obj), name).__get__(obj)
    raise pickle.UnpicklingError(f"getattr({type(obj).__name__}, {name!r}) is not allowed")


def _resolve_safe_global(name: str) -> Any | None:
    """The object for a checkpoint global if detbench allows it, else None."""
    if name == "builtins.getattr":
        return _restricted_getattr
    if name in {"pathlib.WindowsPath", "pathlib._local.WindowsPath", "pathlib._local.PosixPath"}:
        return pathlib.PurePosixPath if name.endswith("WindowsPath") else pathlib.PosixPath
    module_name, _, attr = name.rpartition(".")
    prefixes = SAFE_MODULE_PREFIXES + SAFE_CLASS_MODULES + tuple(_plugin_prefixes)
    if name not in SAFE_EXTRA_GLOBALS and not any(
            module_name == p or module_name.startswith(p + ".") for p in prefixes):
        return None
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError):
        return None
    if name in SAFE_EXTRA_GLOBALS:
        return obj
    if not isinstance(obj, type):
        return None
    if module_name in SAFE_CLASS_MODULES:
        return obj if obj.__module__ == module_name else None
    return obj if issubclass(obj, nn.Module) else None


@dataclass
class _Global:
    name: str


_MARK = object()
_VALUE = object()  # anything the scan does not need to know


def scan_pickle(data: bytes) -> tuple[set[str], set[str]]:
    """Statically read a pickle: the globals it names, and those it would *call* while loading.

    The stack is simulated opcode by opcode (as `pickletools.dis` does), keeping track of
    which entries are globals, so that a REDUCE (a call) can be traced to what it calls,
    memo look-ups included. Nothing in the pickle is executed. A call whose target is
    not a plain global is reported as `<computed callable>`. Raises ValueError on a
    malformed pickle.
    """
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    named: set[str] = set()
    called: set[str] = set()

    def pop(count: int = 1) -> list[Any]:
        if count > len(stack) or _MARK in stack[len(stack) - count:]:
            raise ValueError("pickle stack underflow")
        items = stack[len(stack) - count:]
        del stack[len(stack) - count:]
        return items

    def pop_to_mark() -> list[Any]:
        if _MARK not in stack:
            raise ValueError("pickle MARK missing")
        index = len(stack) - 1 - stack[::-1].index(_MARK)
        items = stack[index + 1:]
        del stack[index:]
        return items

    def note_call(target: Any) -> None:
        called.add(target.name if isinstance(target, _Global) else "<computed callable>")

    for opcode, arg, _pos in pickletools.genops(data):
        name = opcode.name
        if name in {"GLOBAL", "INST"}:
            module, _, attr = str(arg).partition(" ")
            if (module, attr) in NAME_MAPPING:  # Python 2 names, mapped as torch's unpickler maps them
                module, attr = NAME_MAPPING[(module, attr)]
            elif module in IMPORT_MAPPING:
                module = IMPORT_MAPPING[module]
            named.add(f"{module}.{attr}")
            if name == "INST":  # INST calls the class with the marked items
                pop_to_mark()
                called.add(f"{module}.{attr}")
                stack.append(_VALUE)
            else:
                stack.append(_Global(f"{module}.{attr}"))
        elif name == "STACK_GLOBAL":
            module, attr = pop(2)
            if not isinstance(module, str) or not isinstance(attr, str):
                raise ValueError("STACK_GLOBAL with computed names")
            named.add(f"{module}.{attr}")
            stack.append(_Global(f"{module}.{attr}"))
        elif name == "MARK":
            stack.append(_MARK)
        elif name in {"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"}:
            if not stack or stack[-1] is _MARK:
                raise ValueError("memoizing nothing")
            memo[len(memo) if name == "MEMOIZE" else int(arg)] = stack[-1]
        elif name in {"GET", "BINGET", "LONG_BINGET"}:
            if int(arg) not in memo:
                raise ValueError("memo key missing")
            stack.append(memo[int(arg)])
        elif name == "REDUCE":
            target, _args = pop(2)
            note_call(target)
            stack.append(_VALUE)
        elif name == "OBJ":
            items = pop_to_mark()
            if not items:
                raise ValueError("OBJ without a class")
            note_call(items[0])
            stack.append(_VALUE)
        elif name in {"NEWOBJ", "NEWOBJ_EX"}:  # cls.__new__(cls, ...): no __init__, allowed for known classes
            pop(2 if name == "NEWOBJ" else 3)
            stack.append(_VALUE)
        elif opcode.arg is not None and isinstance(arg, str) and opcode.stack_after == [pickletools.pyunicode]:
            pop(len(opcode.stack_before))
            stack.append(arg)
        elif pickletools.markobject in opcode.stack_before:
            pop_to_mark()
            pop(opcode.stack_before.index(pickletools.markobject))
            stack.extend(_VALUE for _ in opcode.stack_after)
        elif name == "STOP":
            break
        else:
            pop(len(opcode.stack_before))
            stack.extend(_VALUE for _ in opcode.stack_after)
    return named, called


def _describe_unreadable(data: bytes) -> tuple[str, str]:
    """Why bytes that are not a loadable checkpoint fail, and the fix: (reason, fix)."""
    reexport = "re-copy the file or save the checkpoint again"
    head = data[:512]
    if head.startswith((b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")) or head[8:12] == b"WEBP":
        return "it is an image, not a checkpoint", "pass the model's .pt checkpoint"
    if head.startswith(b"PK\x03\x04"):
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            return "the zip archive is truncated or damaged (its end is missing)", reexport
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            return _TORCHSCRIPT
        if not any(n.endswith("data.pkl") for n in names):
            return "it is a zip archive but not a PyTorch checkpoint", "pass the model's .pt checkpoint"
        return "the checkpoint archive is damaged", reexport
    if head.startswith(_LEGACY_MAGIC):
        return ("it is in the legacy (pre-1.6, non-zip) torch.save format, which cannot be checked before "
                "loading", "re-save it with a current torch, or pass --unsafe-load if you trust the file")
    if head[:1] == b"\x08" and (b"onnx" in head.lower() or b"\x12" in head[2:4]):
        return ("it looks like an ONNX model, not an Ultralytics .pt checkpoint",
                "pass the training checkpoint (weights/best.pt) or the model .yaml")
    return "it is truncated, damaged or not a PyTorch checkpoint", reexport


def _unreadable(path: Path, data: bytes) -> DetbenchError:
    reason, fix = _describe_unreadable(data)
    return DetbenchError(f"--weights {path}: cannot load: {reason}; {fix}")


def _allowed_for_weights_only(path: Path, data: bytes) -> list[Any]:
    """Check the checkpoint's pickle and return the extra globals to allow; refuse anything else by name."""
    from torch import serialization
    from torch._weights_only_unpickler import _get_allowed_globals

    try:
        with serialization._open_zipfile_reader(io.BytesIO(data)) as archive:
            if serialization._is_torchscript_zip(archive):
                raise DetbenchError(f"--weights {path}: cannot load: {'; '.join(_TORCHSCRIPT)}")
            if not archive.has_record("data.pkl"):
                raise ValueError("no data.pkl")
            pickled = archive.get_record("data.pkl")
    except DetbenchError:
        raise
    except Exception as exc:
        raise _unreadable(path, data) from exc
    if len(pickled) > MAX_PICKLE_BYTES:
        raise DetbenchError(f"--weights {path}: refused to load: its pickle is {len(pickled) // 2**20} MiB, far "
                            f"beyond any checkpoint's; pass --unsafe-load only if you trust the file")
    try:
        named, called = scan_pickle(pickled)
    except Exception as exc:  # pickletools raises ValueError and others on malformed input
        raise _unreadable(path, data) from exc
    torch_allowed = set(_get_allowed_globals())
    resolved = {name: _resolve_safe_global(name) for name in named - torch_allowed}
    refused = sorted(name for name, obj in resolved.items() if obj is None)
    if refused:
        shown = ", ".join(refused[:4]) + (f" (+{len(refused) - 4} more)" if len(refused) > 4 else "")
        raise DetbenchError(
            f"--weights {path}: refused to load: it needs {shown}, not on detbench's allow-list; pass "
            f"--plugin MODULE for your own layers, or --unsafe-load if you trust the file (runs its code)")
    callable_ok = torch_allowed | SAFE_EXTRA_GLOBALS | {"builtins.getattr"}
    calls = sorted(called - callable_ok)
    if calls:
        shown = ", ".join(calls[:4]) + (f" (+{len(calls) - 4} more)" if len(calls) > 4 else "")
        raise DetbenchError(
            f"--weights {path}: refused to load: unpickling it would call {shown}, which a saved model never "
            f"does; pass --unsafe-load only if you trust the file (runs its code)")
    entries: list[Any] = [(obj, name) for name, obj in resolved.items()]
    if "numpy.dtype" in named:
        import numpy as np

        entries.append(type(np.dtype(np.float64)))  # built while loading, absent from the scan
    return entries


def load_checkpoint(path: str | Path, unsafe: bool = False) -> dict[str, Any]:
    """torch.load the checkpoint, restricted to allowed classes unless `unsafe`.

    The file is read once; the bytes that are checked are the bytes that are loaded.
    """
    path = Path(path)
    if path.is_dir():
        raise DetbenchError(f"--weights {path}: is a folder; pass the .pt file inside it (e.g. weights/best.pt)")
    if path.exists() and not path.is_file():
        raise DetbenchError(f"--weights {path}: not a regular file (a device or pipe); pass the .pt file itself")
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise DetbenchError(f"--weights {path}: file not found; check the path (e.g. results/runs/NAME/seed0/"
                            f"weights/best.pt)") from exc
    except OSError as exc:
        raise DetbenchError(f"--weights {path}: cannot read it ({exc.strerror}); check its permissions") from exc
    if not data:
        raise DetbenchError(f"--weights {path}: the file is empty; re-copy the file or save the checkpoint again")
    reason, _fix = _describe_unreadable(data)
    if "TorchScript" in reason or "image" in reason or "ONNX" in reason:
        raise _unreadable(path, data)  # not a checkpoint at all, whatever the flags
    if not data.startswith(b"PK\x03\x04") and not unsafe:
        raise _unreadable(path, data)  # weights_only loading is checked on zip checkpoints only
    try:
        if unsafe:
            ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
        else:
            entries = _allowed_for_weights_only(path, data)
            with torch.serialization.safe_globals(entries):
                ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except DetbenchError:
        raise
    except pickle.UnpicklingError as exc:
        if unsafe:
            raise _unreadable(path, data) from exc
        found = re.search(r"WeightsUnpickler error:\s*([^\n]+)", str(exc))
        raise DetbenchError(f"--weights {path}: refused to load: the restricted unpickler stopped it "
                            f"({found.group(1)[:200] if found else _one_line(exc)}); pass --unsafe-load only if you "
                            f"trust the file (runs its code)") from exc
    except Exception as exc:  # torch raises many types for damaged files
        raise _unreadable(path, data) from exc
    if not isinstance(ckpt, dict):
        raise DetbenchError(f"--weights {path}: holds a {type(ckpt).__name__}, not an Ultralytics checkpoint; pass "
                            f"the training checkpoint (weights/best.pt) or the model .yaml")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any], path: str | Path) -> nn.Module:
    model = ckpt.get("ema") or ckpt.get("model")
    if not isinstance(model, nn.Module):
        raise DetbenchError(f"--weights {path}: no model inside (keys: {', '.join(map(str, ckpt))[:120]})")
    model = model.float().eval()
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
    import ultralytics.nn.tasks as tasks

    if not isinstance(spec, dict) or not isinstance(spec.get("backbone"), list) or \
            not isinstance(spec.get("head"), list):
        raise DetbenchError(f"--weights {cfg}: not a model YAML (needs 'backbone' and 'head' lists)")
    act = spec.get("activation")
    if act and not (isinstance(act, str) and _literal_activation(act)):
        raise DetbenchError(f"--weights {cfg}: refused: 'activation: {str(act)[:80]}' is not of the form "
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
        if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
            raise DetbenchError(f"--weights {cfg}: refused: layer {index} names '{name[:80]}', which is not a layer "
                                f"class; pass --plugin MODULE if it is one of yours")


def build_from_yaml(cfg: str | Path) -> nn.Module:
    """Build an untrained detection model from a YAML path or a YAML shipped with Ultralytics."""
    from ultralytics.nn.tasks import DetectionModel, guess_model_task, yaml_model_load

    try:
        spec = yaml_model_load(cfg)
    except Exception as exc:
        raise DetbenchError(f"--weights {cfg}: not a model YAML that can be read ({exc})") from exc
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
