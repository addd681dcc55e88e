"""The architecture of a checkpoint, read from its pickle without loading it.

Seeds of one model share its architecture but not its trained values. The
fingerprint is what a state dict's keys and shapes say, plus the class of
every layer: the model's module tree in order, each module's class and each
parameter's and buffer's name and shape. It comes from the checked archive
(`checkpoint.archive`) and the pickle replayed on abstract values
(`checkpoint.pickle_scan`, bounded): nothing is unpickled, imported or run, and
torch is not loaded. Values that training sets (weights, `args`, anchors
computed at the validation size) are not part of it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from detbench import limits
from detbench.checkpoint.archive import ArchiveError, read_archive
from detbench.checkpoint.pickle_scan import Node, ScanError, expansion, scan_pickle
from detbench.errors import DetbenchError
from detbench.files.safe_io import read_regular_file

TENSOR_CALLS = ("torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor")
WRAPPED_TENSOR_CALLS = ("torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state")


def _pairs(node: Node | None) -> list[tuple[object, Node]]:
    """(key, value) of a dict, or of an OrderedDict (a call whose SETITEMS follow its callable and arguments)."""
    if node is None or node.kind not in {"dict", "call"}:
        return []
    items = node.items if node.kind == "dict" else node.items[2:]
    return [(items[k].value, items[k + 1]) for k in range(0, len(items) - 1, 2)]


def _shape(node: Node) -> str:
    """A tensor's shape as `AxBxC` ('None' for an empty slot; '?' for what this reader does not follow)."""
    if node.kind == "leaf" and node.value is None:
        return "None"
    if node.kind != "call" or node.callee.kind != "global" or node.args.kind != "tuple" or not node.args.items:
        return "?"
    args = node.args.items
    if node.callee.value in WRAPPED_TENSOR_CALLS:
        return _shape(args[0])
    if node.callee.value in TENSOR_CALLS and len(args) > 2 and args[2].kind == "tuple":
        return "x".join(str(item.value) for item in args[2].items)
    return "?"


def _describe(module: Node, path: str, lines: list[str]) -> None:
    cls = module.items[0].value if module.items and module.items[0].kind == "global" else "?"
    lines.append(f"{path or '<root>'}: {cls}")
    state = dict(_pairs(module.builds[0] if module.builds else None))
    for table in ("_parameters", "_buffers"):
        lines += [f"{path}.{name}: {_shape(tensor)}" for name, tensor in _pairs(state.get(table))]
    for name, child in _pairs(state.get("_modules")):
        if child.kind == "object":
            _describe(child, f"{path}.{name}" if path else str(name), lines)


def architecture(path: str | Path) -> str:
    """SHA-256 of the checkpoint's layer tree (classes, parameter and buffer shapes); a one-line DetbenchError
    naming the file when it cannot be read as a checkpoint."""
    fix = "replace it with the run's own weights/best.pt or move the seed folder away"
    data = read_regular_file(path, str(path), limits.MAX_CHECKPOINT_BYTES, fix)
    try:
        scan = scan_pickle(read_archive(data).pickle)
        expansion(scan.root)
    except (ArchiveError, ScanError) as exc:
        raise DetbenchError(f"{path}: cannot read its architecture ({exc}); {fix}") from exc
    entries = dict(_pairs(scan.root))
    model = next((entries[key] for key in ("model", "ema") if key in entries and entries[key].kind == "object"), None)
    if model is None:
        raise DetbenchError(f"{path}: holds no model to read the architecture of; {fix}")
    lines: list[str] = []
    _describe(model, "", lines)
    return hashlib.sha256("\n".join(lines).encode("utf-8", "surrogatepass")).hexdigest()
