"""Checks of a loaded model's structure, before detbench walks, converts or runs it.

A checkpoint decides what every module's `__dict__` holds. These checks make
sure the model detbench benchmarks is the one its layers describe:

- **A tree of modules**: a module reached through two parents is allowed only
  if it has no children and no weights (Ultralytics shares one SiLU among all
  its Conv layers). A shared module with children makes every recursive walk
  (`model.float()`, `fuse`) exponential; a cycle never ends.
- **No borrowed behaviour**: an instance attribute may not replace a method
  of its class with something callable (a checkpoint could set `forward` to
  another model's forward, and have that model timed under this one's name),
  a bound method must belong to its own module (Ultralytics' fused
  `forward = forward_fuse`), and no layer may hide in `__dict__` outside the
  module tree. Data attributes may shadow class attributes (Ultralytics' `type`).
- **No hooks**: forward and backward hooks run arbitrary callables.
- **Plain tensors**: parameters and buffers are dense CPU tensors of a
  numeric dtype.
"""

from __future__ import annotations

import inspect
import types
from typing import Any

import torch
from torch import nn

from detbench import limits

_MODULE_INTERNALS = frozenset(vars(nn.Module()))
_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
               "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs")
_DTYPES = frozenset({torch.float16, torch.float32, torch.float64, torch.bfloat16, torch.int64, torch.int32,
                     torch.uint8, torch.int8, torch.bool})


class StructureError(ValueError):
    """The model is not a plain tree of layers with plain tensors; the message names the module."""


def _where(path: str) -> str:
    return path or "the model"


def module_tree(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every module with its path, each once; raise StructureError if the graph is not a tree.

    Shared leaves without weights (activations) are allowed and listed once.
    """
    seen: dict[int, str] = {}
    ordered: list[tuple[str, nn.Module]] = []
    todo: list[tuple[str, nn.Module, int]] = [("", model, 0)]
    while todo:
        path, module, depth = todo.pop()
        if not isinstance(module, nn.Module):
            raise StructureError(f"{_where(path)} is a {type(module).__name__}, not a layer")
        modules = vars(module).get("_modules")
        if not isinstance(modules, dict):
            raise StructureError(f"{_where(path)} has no valid submodule table")
        if id(module) in seen:
            if modules or list(module.parameters(recurse=False)) or list(module.buffers(recurse=False)):
                raise StructureError(f"{_where(path)} is also {_where(seen[id(module)])}: a layer with children or "
                                     f"weights shared by two parents (the module graph must be a tree)")
            continue
        seen[id(module)] = path
        ordered.append((path, module))
        if len(seen) > limits.MAX_MODULES or depth > limits.MAX_PICKLE_DEPTH:
            raise StructureError(f"more than {limits.MAX_MODULES:,} modules or nesting deeper than "
                                 f"{limits.MAX_PICKLE_DEPTH}")
        for name, child in modules.items():
            if child is not None:
                todo.append((f"{path}.{name}" if path else str(name), child, depth + 1))
    return ordered


def _is_own_forward(module: nn.Module, value: Any) -> bool:
    cls = type(module)
    return isinstance(value, types.MethodType) and value.__self__ is module and any(
        value.__func__ is getattr(cls, name, None) for name in ("forward", "forward_fuse"))


def _hidden_callable(value: Any, budget: int = 10_000) -> bool:
    """Whether a container attribute holds a layer, function or method anywhere inside (a bounded walk)."""
    todo = [value]
    while todo and budget > 0:
        budget -= 1
        item = todo.pop()
        if isinstance(item, (nn.Module, types.FunctionType, types.MethodType, types.BuiltinFunctionType)):
            return True
        if isinstance(item, dict):
            todo.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            todo.extend(item)
    return budget <= 0


def attribute_problem(module: nn.Module, key: str, value: Any) -> str | None:
    """Why an instance attribute of `module` would change what it computes, or None."""
    state = vars(module)
    if any(key in (state.get(table) or {}) for table in ("_modules", "_parameters", "_buffers")):
        return f"attribute {key!r} hides the registered layer or tensor of that name"
    if isinstance(value, nn.Module):
        return f"holds the layer {key!r} outside the module tree"
    if isinstance(value, (list, tuple, dict, set, frozenset)) and _hidden_callable(value):
        return f"attribute {key!r} holds layers or functions outside the module tree"
    if isinstance(value, types.MethodType) and value.__self__ is not module:
        return f"attribute {key!r} is a method of another object"
    if not callable(value) or isinstance(value, torch.Tensor):
        return None
    if key == "forward" and _is_own_forward(module, value):
        return None
    if inspect.getattr_static(type(module), key, None) is not None:
        return f"attribute {key!r} replaces the {type(module).__name__} method of that name"
    return None


def check_module(path: str, module: nn.Module) -> None:
    state = vars(module)
    for hooks in _HOOK_DICTS:
        if state.get(hooks):
            raise StructureError(f"{_where(path)} carries {hooks} (hooks run arbitrary code)")
    for table in ("_parameters", "_buffers"):
        if not isinstance(state.get(table), dict):
            raise StructureError(f"{_where(path)} has no valid {table} table")
        for name, tensor in state[table].items():
            if tensor is not None and not _plain_tensor(tensor):
                raise StructureError(f"{_where(path)}.{name} is not a dense CPU tensor of a numeric dtype")
    for key, value in state.items():
        if key in _MODULE_INTERNALS:
            continue
        if not isinstance(key, str):
            raise StructureError(f"{_where(path)} has an attribute whose name is not a string")
        problem = attribute_problem(module, key, value)
        if problem:
            raise StructureError(f"{_where(path)} ({type(module).__name__}): {problem}")


def _plain_tensor(tensor: Any) -> bool:
    return type(tensor) in (torch.Tensor, nn.Parameter) and tensor.layout == torch.strided and \
        tensor.device.type == "cpu" and tensor.dtype in _DTYPES


def check_model(model: nn.Module) -> int:
    """Run every check; return the number of modules."""
    tree = module_tree(model)
    for path, module in tree:
        check_module(path, module)
    return len(tree)


def model_stride(model: nn.Module) -> int:
    """The model's largest stride (32 if it names none), checked to be a sane power of two."""
    stride = getattr(model, "stride", None)
    if stride is None:
        return 32
    try:
        values = stride.flatten().tolist() if isinstance(stride, torch.Tensor) else [stride]
        largest = max(float(v) for v in values) if 0 < len(values) <= 16 else 0.0
    except (TypeError, ValueError) as exc:
        raise StructureError("its stride is not a number or a small tensor of numbers") from exc
    if not 1 <= largest <= 256 or largest != int(largest):
        raise StructureError(f"its stride {largest} is not an integer between 1 and 256")
    return max(int(largest), 32)
