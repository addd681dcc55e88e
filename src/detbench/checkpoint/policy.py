"""What a checkpoint's pickle may do, judged on the scan before anything is unpickled.

The rules, each aimed at a way to run code or exhaust memory through
`torch.load(weights_only=True)`:

- **Globals**: only those on detbench's allow-list: torch's own tensor types,
  layer classes (`nn.Module` subclasses) of `torch.nn`, Ultralytics and
  detbench's zoo, the loss helpers old checkpoints carry, the `--plugin`
  modules the user names, and a few plain data types.
- **Classes are restored, never called**: an allowed class may appear only as
  the class of a NEWOBJ (`cls.__new__(cls)` plus its saved state). Passed as a
  value to any callable (e.g. `_rebuild_from_type_v2(DetectionModel, ...)`,
  which calls its first argument), or stored as a value, it is refused. A class
  with its own `__new__`, or a `__setstate__` that is not one of the audited
  ones (torch's defaults-filling ones; Ultralytics' `AAttn`, whose numbers must
  be integers), is refused too.
- **Every callable has a schema**: each REDUCE target is one of a fixed set,
  and its arguments must have the shape torch's own pickler writes (a storage,
  integers and tuples of integers for a tensor view, an empty hook dict, plain
  strings for a path). Callables of torch's weights-only list that call what
  they are given, or that checkpoints never need (`_rebuild_wrapper_subclass`,
  `_rebuild_device_tensor_from_numpy`, sparse, nested and quantized rebuilds,
  `Counter`, `bytearray`), are refused. `getattr` is replaced by a version that
  only reads `forward`/`forward_fuse` and calls nothing.
- **Sizes before memory**: every storage's record must exist with exactly
  `numel x itemsize` bytes; every tensor view must lie inside its storage
  (offset + extent) and hold no more elements than it; all views together may
  not exceed the storages (a 2-byte storage viewed as 32768 x 32768 is refused).
"""

from __future__ import annotations

import importlib
import pathlib
import pickle
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch
from torch import nn

from detbench import limits
from detbench.checkpoint.archive import Archive
from detbench.checkpoint.pickle_scan import Node, Scan, expansion

# layer classes (nn.Module subclasses only) from these modules may be restored
SAFE_MODULE_PREFIXES = ("torch.nn.modules", "ultralytics.nn.modules", "ultralytics.nn.tasks", "detbench.zoo")
# classes of any kind from these modules may be restored (loss helpers kept by older checkpoints)
SAFE_CLASS_MODULES = ("ultralytics.utils.loss", "ultralytics.utils.tal")
# names older Ultralytics versions pickled, mapped as Ultralytics' own safe loader maps them
CLASS_ALIASES = {
    "ultralytics.nn.tasks.YOLOv10DetectionModel": "ultralytics.nn.tasks.DetectionModel",
    "ultralytics.nn.modules.block.Silence": "torch.nn.modules.linear.Identity",
    "ultralytics.yolo.utils.IterableSimpleNamespace": "ultralytics.utils.IterableSimpleNamespace",
    "ultralytics.utils.loss.v10DetectLoss": "ultralytics.utils.loss.E2EDetectLoss",
}
# classes whose __setstate__ only fills in defaults (read and audited); others with their own are refused
AUDITED_SETSTATE = frozenset({
    "torch.nn.modules.module.Module", "torch.nn.modules.conv._ConvNd", "torch.nn.modules.upsampling.Upsample",
    "torch.nn.modules.activation.Softmax", "torch.nn.modules.activation.Softmin",
    "torch.nn.modules.activation.LogSoftmax", "torch.nn.modules.activation.MultiheadAttention",
    "torch.nn.modules.pooling.AvgPool3d", "torch.nn.modules.transformer.TransformerEncoderLayer",
    "torch.nn.modules.transformer.TransformerDecoderLayer", "ultralytics.nn.modules.block.AAttn",
})
# state keys an audited __setstate__ computes with: they must hold integers
INTEGER_STATE = {"ultralytics.nn.modules.block.AAttn": ("head_dim", "num_heads")}
FORWARD_NAMES = ("forward", "forward_fuse")
NUMPY_DTYPES = frozenset({"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8"})
TENSOR_REBUILDS = ("torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter")
TENSOR_TYPES = ("torch.Tensor", "torch.nn.parameter.Parameter")


class Refused(Exception):
    """The checkpoint breaks a rule; the message says which, for the one-line error."""


class NotACheckpoint(Refused):
    """The pickle holds something other than a checkpoint dict; the message names what (e.g. "a Tensor")."""


@dataclass
class Verdict:
    """What torch needs to load the checkpoint, once the scan passed."""

    entries: list[Any]  # for torch.serialization.safe_globals
    storage_bytes: int
    view_bytes: int
    tensors: int


def _restricted_getattr(obj: Any, name: Any) -> Any:
    """`getattr` as checkpoints use it (a saved `Detect.forward`), limited to that; it calls nothing."""
    if name in FORWARD_NAMES:
        if isinstance(obj, type) and issubclass(obj, nn.Module):
            return getattr(obj, name)
        if isinstance(obj, nn.Module):
            return getattr(type(obj), name).__get__(obj)
    raise pickle.UnpicklingError(f"getattr({type(obj).__name__}, {name!r}) is not allowed")


# ---------------------------------------------------------------- globals

@lru_cache(maxsize=1)
def torch_allowed() -> dict[str, Any]:
    # imported here, not at the top: loads torch, which only this path needs
    from torch._weights_only_unpickler import _get_allowed_globals

    return dict(_get_allowed_globals())


def _import(name: str) -> Any:
    module_name, _, attr = name.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError):
        return None


def _in_modules(module_name: str, prefixes: tuple[str, ...]) -> bool:
    return any(module_name == p or module_name.startswith(p + ".") for p in prefixes)


def restorable_class(name: str, plugins: tuple[str, ...]) -> type | None:
    """The class a checkpoint may restore under `name` (NEWOBJ), or None."""
    name = CLASS_ALIASES.get(name, name)
    module_name = name.rpartition(".")[0]
    if _in_modules(module_name, SAFE_CLASS_MODULES):
        obj = _import(name)
        return obj if isinstance(obj, type) and obj.__module__ == module_name else None
    if not _in_modules(module_name, SAFE_MODULE_PREFIXES + plugins):
        return None
    obj = _import(name)
    # defined, not only reachable, in an allowed module: a plugin's layer registered with Ultralytics
    # (`ultralytics.nn.tasks.MyConv`) is allowed only where its plugin is
    return obj if isinstance(obj, type) and issubclass(obj, nn.Module) and \
        _in_modules(obj.__module__, SAFE_MODULE_PREFIXES + plugins) else None


def class_problem(cls: type) -> str | None:
    """Why restoring `cls` could run code beyond filling in its state, or None."""
    if cls.__new__ is not object.__new__:
        return f"{cls.__qualname__} has its own __new__"
    owner = next((k for k in cls.__mro__ if "__setstate__" in vars(k)), None)
    if owner is not None and f"{owner.__module__}.{owner.__qualname__}" not in AUDITED_SETSTATE:
        return f"{cls.__qualname__} has its own __setstate__ (from {owner.__module__}.{owner.__qualname__})"
    return None


PLAIN_CALLABLES = {  # name -> object to allow it under (None: torch allows it already)
    "types.SimpleNamespace": types.SimpleNamespace,
    "numpy.dtype": "numpy.dtype",
    "numpy.core.multiarray.scalar": "numpy scalar",
    "numpy._core.multiarray.scalar": "numpy scalar",
    "pathlib.PosixPath": pathlib.PosixPath,
    "pathlib.WindowsPath": pathlib.PurePosixPath,
    "pathlib._local.PosixPath": pathlib.PosixPath,
    "pathlib._local.WindowsPath": pathlib.PurePosixPath,
    "builtins.getattr": _restricted_getattr,
}


def _plain_callable(name: str) -> Any:
    obj = PLAIN_CALLABLES.get(name)
    if obj in ("numpy.dtype", "numpy scalar"):
        # imported here, not at the top: loads numpy, kept out of light commands
        import numpy as np

        return np.dtype if obj == "numpy.dtype" else type(np.float64(0)).__reduce__(np.float64(0))[0]
    if name in {"ultralytics.utils.IterableSimpleNamespace", "ultralytics.yolo.utils.IterableSimpleNamespace"}:
        # imported here, not at the top: loads Ultralytics, which only this path needs
        from ultralytics.utils import IterableSimpleNamespace

        return IterableSimpleNamespace
    return obj


# ---------------------------------------------------------------- shapes of values

def _leaf(node: Node, *kinds: type) -> bool:
    return node.kind == "leaf" and isinstance(node.value, kinds) and not (
        bool not in kinds and isinstance(node.value, bool))


def _int(node: Node, minimum: int = 0) -> int | None:
    return node.value if _leaf(node, int) and node.value >= minimum else None


def _items(node: Node, kind: str = "tuple") -> list[Node] | None:
    return node.items if node.kind == kind else None


def _ints(node: Node) -> list[int] | None:
    items = _items(node)
    if items is None or len(items) > limits.MAX_TENSOR_DIMS:
        return None
    values = [_int(item) for item in items]
    return None if any(v is None for v in values) else values  # type: ignore[return-value]


def _global_name(node: Node) -> str | None:
    return node.value if node.kind == "global" else None


def _is_call_of(node: Node, *names: str) -> bool:
    return node.kind == "call" and _global_name(node.callee) in names


def _empty_hooks(node: Node) -> bool:
    """An empty OrderedDict, as torch pickles a tensor without hooks."""
    return _is_call_of(node, "collections.OrderedDict") and node.args.kind == "tuple" and not node.args.items \
        and len(node.items) == 2 and not node.builds


# ---------------------------------------------------------------- the judge

@dataclass
class _Context:
    archive: Archive
    storages: dict[int, tuple[str, int, int]] = field(default_factory=dict)  # id(node) -> key, numel, itemsize
    declared: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> numel, itemsize
    exempt: set[tuple[int, int]] = field(default_factory=set)  # (id(container), index) holding an accepted global
    view_bytes: int = 0
    tensors: int = 0

    def accept(self, container: Node, index: int) -> None:
        """A global the callable's schema expects in this slot (never one fetched from the memo)."""
        if container.gets == 0:
            self.exempt.add((id(container), index))


def _storage_itemsize(name: str | None) -> int | None:
    obj = torch_allowed().get(name or "")
    if isinstance(obj, torch.serialization.StorageType):
        return obj.dtype.itemsize
    return 1 if obj is torch.UntypedStorage else None


def _check_storage(node: Node, ctx: _Context) -> None:
    pid = _items(node.items[0]) or []
    if len(pid) != 5 or not _leaf(pid[0], str) or pid[0].value != "storage":
        raise Refused("it holds a persistent reference that is not a tensor storage")
    itemsize, key, numel = _storage_itemsize(_global_name(pid[1])), pid[2].value, _int(pid[4])
    if itemsize is None or not _leaf(pid[2], str) or not _leaf(pid[3], str) or numel is None:
        raise Refused("a tensor storage is declared with an unknown type, key, device or size")
    ctx.accept(node.items[0], 1)
    if ctx.declared.setdefault(key, (numel, itemsize)) != (numel, itemsize):
        raise Refused(f"tensor storage {key[:40]!r} is declared twice with different types or sizes")
    record = ctx.archive.sizes.get(f"data/{key}")
    if record != numel * itemsize:
        raise Refused(f"tensor storage {key[:40]!r} declares {numel * itemsize:,} bytes but its record holds "
                      f"{'none' if record is None else f'{record:,}'}")
    ctx.storages[id(node)] = (key, numel, itemsize)


def _check_view(args: list[Node], ctx: _Context) -> str | None:
    storage = ctx.storages.get(id(args[0])) if args else None
    if storage is None or len(args) < 4:
        return "a tensor whose storage is not a checked storage record"
    offset, size, stride = _int(args[1]), _ints(args[2]), _ints(args[3])
    if offset is None or size is None or stride is None or len(size) != len(stride):
        return "a tensor view with sizes or strides that are not non-negative integers of one length"
    _key, numel, itemsize = storage
    elements = 1
    for extent in size:
        elements *= extent
    if elements:
        last = offset + sum((extent - 1) * step for extent, step in zip(size, stride, strict=True))
        if last >= numel or elements > numel:
            return (f"a tensor view of {elements:,} elements (last index {last:,}) over a storage of "
                    f"{numel:,}: views may not reach beyond or repeat their storage")
    ctx.view_bytes += elements * itemsize
    ctx.tensors += 1
    return None


def _tensor_schema(call: Node, ctx: _Context) -> str | None:
    args = _items(call.args)
    if args is None or len(args) not in (4, 6, 7):
        return "a tensor rebuilt from other than (storage, offset, size, stride, ...)"
    if len(args) >= 6 and not (_leaf(args[4], bool) and _empty_hooks(args[5])):
        return "a tensor with backward hooks"
    if len(args) == 7 and not (args[6].kind == "leaf" and args[6].value is None
                               or args[6].kind == "dict" and not args[6].items):
        return "a tensor with extra metadata"
    return _check_view(args, ctx)


def _parameter_schema(call: Node, ctx: _Context) -> str | None:
    args = _items(call.args)
    if args is None or len(args) != 3 or not _is_call_of(args[0], *TENSOR_REBUILDS[:1]) \
            or not _leaf(args[1], bool) or not _empty_hooks(args[2]):
        return "a parameter rebuilt from other than (tensor, requires_grad, no hooks)"
    return None


def _from_type_schema(call: Node, ctx: _Context) -> str | None:
    args = _items(call.args)
    if args is None or len(args) != 4 or args[2].kind != "tuple":
        return "other than (function, type, arguments, state)"
    if _global_name(args[0]) not in TENSOR_REBUILDS:
        return (f"{_global_name(args[0]) or 'a computed value'} as the function it calls (only tensor rebuild "
                f"functions may be called there)")
    if _global_name(args[1]) not in TENSOR_TYPES:
        return f"{_global_name(args[1]) or 'a computed value'} as the tensor type"
    state = args[3]
    if not (state.kind == "leaf" and state.value is None or state.kind == "dict" and all(
            item.kind == "leaf" for item in state.items)):
        return "a state that is not plain data"
    ctx.accept(call.args, 0)
    ctx.accept(call.args, 1)
    inner = Node("call", items=[args[0], args[2]])
    return SCHEMAS[args[0].value](inner, ctx)


def _literal_args(*shapes: tuple[type, ...], optional: int = 0) -> Callable[[Node, _Context], str | None]:
    """A schema for callables that take only literals of the given types (the last `optional` may be left out)."""
    def schema(call: Node, ctx: _Context) -> str | None:
        args = _items(call.args)
        if args is None or not len(shapes) - optional <= len(args) <= len(shapes) or not all(
                _leaf(arg, *kinds) for arg, kinds in zip(args, shapes, strict=False)):
            return "arguments that are not plain literals of the expected types"
        return None
    return schema


def _no_args(call: Node, ctx: _Context) -> str | None:
    return None if call.args.kind == "tuple" and not call.args.items else "arguments where none are expected"


def _set_schema(call: Node, ctx: _Context) -> str | None:
    args = _items(call.args)
    if args == [] or args is not None and len(args) == 1 and args[0].kind == "list" and all(
            _leaf(item, str, int, float) for item in args[0].items):
        return None
    return "a set of other than plain literals"


def _size_schema(call: Node, ctx: _Context) -> str | None:
    args = _items(call.args)
    return None if args is not None and len(args) == 1 and _ints(args[0]) is not None else "a size of non-integers"


def _encode_schema(call: Node, ctx: _Context) -> str | None:
    args = _items(call.args)
    ok = args is not None and len(args) == 2 and _leaf(args[0], str) and _leaf(args[1], str) \
        and args[1].value in {"latin1", "latin-1"}
    return None if ok else "an encoding other than latin1 of a string"


def _dtype_schema(call: Node, ctx: _Context) -> str | None:
    args = _items(call.args)
    ok = args is not None and len(args) == 3 and _leaf(args[0], str) and \
        args[0].value.lstrip("<>|=") in NUMPY_DTYPES and _leaf(args[1], bool) and _leaf(args[2], bool)
    return None if ok else "a numpy dtype other than a plain numeric one"


def _scalar_schema(call: Node, ctx: _Context) -> str | None:
    args = _items(call.args)
    ok = args is not None and len(args) == 2 and _is_call_of(args[0], "numpy.dtype") and (
        _leaf(args[1], bytes, str) and len(args[1].value) <= 16 or _is_call_of(args[1], "_codecs.encode"))
    return None if ok else "a numpy scalar built from other than a dtype and a few bytes"


def _path_schema(call: Node, ctx: _Context) -> str | None:
    args = _items(call.args)
    ok = args is not None and 1 <= len(args) <= 256 and all(_leaf(arg, str) for arg in args)
    return None if ok else "a path built from other than strings"


def _getattr_schema(call: Node, ctx: _Context) -> str | None:
    args = _items(call.args)
    if args is None or len(args) != 2 or not _leaf(args[1], str) or args[1].value not in FORWARD_NAMES:
        return "getattr of other than forward/forward_fuse"
    if args[0].kind == "object":
        return None
    if args[0].kind == "global":
        ctx.accept(call.args, 0)
        return None
    return "getattr of other than a layer or layer class"


SCHEMAS: dict[str, Callable[[Node, _Context], str | None]] = {
    "torch._utils._rebuild_tensor_v2": _tensor_schema,
    "torch._utils._rebuild_tensor": _tensor_schema,
    "torch._utils._rebuild_parameter": _parameter_schema,
    "torch._tensor._rebuild_from_type_v2": _from_type_schema,
    "collections.OrderedDict": _no_args,
    "builtins.set": _set_schema,
    "torch.Size": _size_schema,
    "torch.device": _literal_args((str,), (int,), optional=1),
    "builtins.complex": _literal_args((int, float), (int, float), optional=1),
    "_codecs.encode": _encode_schema,
    "numpy.dtype": _dtype_schema,
    "numpy.core.multiarray.scalar": _scalar_schema,
    "numpy._core.multiarray.scalar": _scalar_schema,
    "types.SimpleNamespace": _no_args,
    "ultralytics.utils.IterableSimpleNamespace": _no_args,
    "ultralytics.yolo.utils.IterableSimpleNamespace": _no_args,
    "pathlib.PosixPath": _path_schema,
    "pathlib.WindowsPath": _path_schema,
    "pathlib._local.PosixPath": _path_schema,
    "pathlib._local.WindowsPath": _path_schema,
    "builtins.getattr": _getattr_schema,
}
# BUILD state each kind of call result may receive
BUILD_STATES = {"types.SimpleNamespace": "dict", "ultralytics.utils.IterableSimpleNamespace": "dict",
                "ultralytics.yolo.utils.IterableSimpleNamespace": "dict", "numpy.dtype": "tuple"}


def _shown(names: list[str]) -> str:
    return ", ".join(names[:4]) + (f" (+{len(names) - 4} more)" if len(names) > 4 else "")


def _allow_entries(scan: Scan, plugins: tuple[str, ...]) -> list[Any]:
    """The (object, name) pairs torch must allow beyond its own list; refuse names not on detbench's."""
    entries: list[Any] = []
    refused, bad_classes = [], []
    for name in sorted(scan.globals_named):
        if name in torch_allowed():
            continue
        cls = restorable_class(name, plugins)
        obj = cls if cls is not None else _plain_callable(name)
        if obj is None:
            refused.append(name)
        elif cls is not None and class_problem(cls):
            bad_classes.append(class_problem(cls))
        else:
            entries.append((obj, name))
    if refused:
        raise Refused(f"it needs {_shown(refused)}, not on detbench's allow-list")
    if bad_classes:
        raise Refused(f"restoring it would run code: {bad_classes[0]}")
    if "numpy.dtype" in scan.globals_named:
        # imported here, not at the top: loads numpy, kept out of light commands
        import numpy as np

        entries += sorted({type(np.dtype(code)) for code in NUMPY_DTYPES}, key=str)  # dtype classes BUILD needs
    return entries


def _check_objects(scan: Scan, plugins: tuple[str, ...]) -> None:
    for node in scan.objects:
        name = _global_name(node.callee)
        if name is None or restorable_class(name, plugins) is None:
            raise Refused(f"it creates an object of {name or 'a computed class'}, which is not a restorable layer")
        if node.args.kind != "tuple" or node.args.items:
            raise Refused(f"it creates {name} with constructor arguments (__new__ with arguments)")


def _check_calls(scan: Scan, ctx: _Context) -> None:
    for node in scan.calls:
        name = _global_name(node.callee)
        schema = SCHEMAS.get(name or "")
        if schema is None:
            raise Refused(f"unpickling it would call {name or 'a computed callable'}, which a saved model never "
                          f"needs")
        if node.args.kind != "tuple":
            raise Refused(f"it calls {name} with arguments that are not a tuple")
        problem = schema(node, ctx)
        if problem:
            raise Refused(f"it calls {name} with {problem}")
        if len(node.items) > 2 and name != "collections.OrderedDict":
            raise Refused(f"it adds items to the result of {name}")


def _check_builds(scan: Scan, plugins: tuple[str, ...]) -> None:
    for node in scan.built:
        name = _global_name(node.callee) if node.kind in {"object", "call"} else None
        wanted = "dict" if node.kind == "object" else BUILD_STATES.get(name or "")
        if wanted is None:
            raise Refused(f"it sets the state of a {name or node.kind}, which only layers and namespaces have")
        for state in node.builds:
            if state.kind != wanted or wanted == "dict" and not all(
                    _leaf(key, str) for key in state.items[0::2]):
                raise Refused(f"it gives {name} a state that is not a {wanted} of named values")
            if wanted == "tuple" and not _canonical_dtype_state(state):
                raise Refused(f"it gives {name} a state other than a plain numeric dtype's")
            for key in INTEGER_STATE.get(CLASS_ALIASES.get(name, name), ()):
                values = [v for k, v in zip(state.items[0::2], state.items[1::2], strict=True) if k.value == key]
                if any(_int(value, minimum=-(2**63)) is None for value in values):
                    raise Refused(f"it gives {name} a non-integer {key!r}, which its __setstate__ computes with")


def _canonical_dtype_state(state: Node) -> bool:
    """numpy's state of a plain numeric dtype: (3, byte order, None, None, None, -1, -1, 0); no other flags."""
    values = [item.value if item.kind == "leaf" else item for item in state.items]
    return len(values) == 8 and values[0] == 3 and values[1] in ("<", ">", "|", "=") and values[2:5] == [None] * 3 \
        and values[5:] == [-1, -1, 0]


def _check_values(scan: Scan, ctx: _Context) -> None:
    """A global stored as a value: only dtypes, or what a callable's schema accepted in that slot."""
    holders = scan.containers + [node for node in scan.calls if len(node.items) > 2]
    for holder in holders:
        items = holder.items if holder.kind != "call" else holder.items[2:]
        offset = 0 if holder.kind != "call" else 2
        for index, item in enumerate(items, start=offset):
            name = _global_name(item)
            if name is None or (id(holder), index) in ctx.exempt:
                continue
            if not isinstance(torch_allowed().get(name), torch.dtype):
                raise Refused(f"it passes {name} as a value (to a callable or into an object); a class may only "
                              f"be restored, never handed to code that could call it")


def _describe(node: Node) -> str:
    """What a pickle's top-level object is, in words: "a Tensor", "a list", "a ultralytics....DetectionModel"."""
    name = _global_name(node.callee) if node.kind in {"call", "object"} else None
    if name in (*TENSOR_REBUILDS, "torch._tensor._rebuild_from_type_v2"):
        return "a Tensor"
    return f"a {name}" if name else f"a {node.kind if node.kind != 'leaf' else type(node.value).__name__}"


def judge(scan: Scan, archive: Archive, plugins: tuple[str, ...] = ()) -> Verdict:
    """Apply every rule to a scan; return what torch needs to load it, or raise Refused."""
    if scan.root.kind != "dict":
        raise NotACheckpoint(_describe(scan.root))
    entries = _allow_entries(scan, plugins)
    ctx = _Context(archive=archive)
    for storage in scan.storages:
        _check_storage(storage, ctx)
    _check_objects(scan, plugins)
    _check_calls(scan, ctx)
    _check_builds(scan, plugins)
    _check_values(scan, ctx)
    storage_bytes = sum(numel * itemsize for numel, itemsize in ctx.declared.values())
    if ctx.view_bytes > storage_bytes + limits.MiB:
        raise Refused(f"its tensors view {ctx.view_bytes / 2**20:,.0f} MiB of {storage_bytes / 2**20:,.0f} MiB of "
                      f"storage (views repeating one storage would each be copied)")
    expansion(scan.root)  # refuses a cycle, a nesting too deep or a graph that expands past the bound
    return Verdict(entries=entries, storage_bytes=storage_bytes, view_bytes=ctx.view_bytes, tensors=ctx.tensors)
