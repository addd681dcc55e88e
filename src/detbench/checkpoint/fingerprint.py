"""The architecture of a checkpoint, read from its pickle without loading it.

Seeds of one model share its architecture but not its trained values. The
fingerprint is what a state dict's keys and shapes say, plus the class of
every layer: the model's module tree in order, each module's class and each
parameter's and buffer's name and shape. It comes from the archive's
`data.pkl` alone (`checkpoint.archive.read_pickle`: the zip's directory and
the pickle are read, no tensor record) and the pickle replayed on abstract
values (`checkpoint.pickle_scan`, bounded): nothing is unpickled, imported or
run, and torch is not loaded. Values that training sets (weights, `args`,
anchors computed at the validation size) are not part of it.

The checkpoint may be hostile, so the walk is bounded: it follows only dicts
and `collections.OrderedDict` calls (what torch saves a module's state and
tables as; never a `getattr` or any other call), refuses a module that
contains itself, counts every module each time it is reached (a module shared
twice at each of 40 levels is 2**40 modules) against `MAX_MODULES`, hashes a
name longer than `MAX_FINGERPRINT_NAME_CHARS` as its SHA-256 (once, however
often it is reused), and streams at most `MAX_FINGERPRINT_BYTES` into the hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from detbench import limits
from detbench.checkpoint.archive import ArchiveError, read_pickle
from detbench.checkpoint.pickle_scan import Node, ScanError, expansion, scan_pickle
from detbench.errors import DetbenchError
from detbench.files.safe_io import open_regular_file

TENSOR_CALLS = ("torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor")
WRAPPED_TENSOR_CALLS = ("torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state")
ORDERED_DICT = "collections.OrderedDict"
FIX = "replace it with the run's own weights/best.pt or move the seed folder away"


class TooLarge(ValueError):
    """The module tree exceeds a bound of the walk; the message says which."""


@dataclass(frozen=True)
class Fingerprint:
    """A checkpoint's architecture digest, and how many bytes of the file were read for it."""

    digest: str
    bytes_read: int


@dataclass
class Layout:
    """What the fingerprint says of one module, wherever it sits: its class, `name: shape` of each parameter and
    buffer, and its child modules (name, node)."""

    cls: str
    tensors: list[str]
    children: list[tuple[str, Node]]


def _pairs(node: Node | None) -> list[tuple[Node, Node]]:
    """(key, value) of a dict, or of an OrderedDict (a call of `collections.OrderedDict` whose SETITEMS follow its
    callable and arguments); nothing for any other node."""
    if node is None:
        return []
    if node.kind == "dict":
        items = node.items
    elif node.kind == "call" and node.callee.kind == "global" and node.callee.value == ORDERED_DICT:
        items = node.items[2:]
    else:
        return []
    return [(items[k], items[k + 1]) for k in range(0, len(items) - 1, 2)]


class _Walk:
    """Streams the module tree's lines into SHA-256, bounded in modules, name length and bytes."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.hashed = 0
        self.modules = 0
        self.tokens: dict[int, str] = {}  # id(node) -> its text, each node's made once however often it is reused
        self.layouts: dict[int, Layout] = {}
        self.on_path: set[int] = set()

    def token(self, node: Node) -> str:
        """A key's or class's text: short as it is, long as its SHA-256 (a 1 MiB name reused 2,000 times is
        hashed once)."""
        found = self.tokens.get(id(node))
        if found is None:
            found = str(node.value if node.kind in {"leaf", "global"} else None)
            if len(found) > limits.MAX_FINGERPRINT_NAME_CHARS:
                digest = hashlib.sha256(found.encode("utf-8", "surrogatepass")).hexdigest()
                found = f"{found[:64]}…#{digest}"
            self.tokens[id(node)] = found
        return found

    def shape(self, node: Node, depth: int = 0) -> str:
        """A tensor's shape as `AxBxC` ('None' for an empty slot; '?' for what this reader does not follow)."""
        if node.kind == "leaf" and node.value is None:
            return "None"
        if node.kind != "call" or node.callee.kind != "global" or node.args.kind != "tuple" or not node.args.items:
            return "?"
        args = node.args.items
        if node.callee.value in WRAPPED_TENSOR_CALLS and depth < 2:
            return self.shape(args[0], depth + 1)
        if node.callee.value in TENSOR_CALLS and len(args) > 2 and args[2].kind == "tuple":
            dims = args[2].items
            if len(dims) <= limits.MAX_TENSOR_DIMS and all(d.kind == "leaf" and type(d.value) is int for d in dims):
                return "x".join(str(d.value) for d in dims)
        return "?"

    def line(self, text: str) -> None:
        data = (("\n" if self.hashed else "") + text).encode("utf-8", "surrogatepass")
        self.hashed += len(data)
        if self.hashed > limits.MAX_FINGERPRINT_BYTES:
            raise TooLarge(f"its layer tree describes more than {limits.MAX_FINGERPRINT_BYTES // 2**20} MiB of "
                           "names and shapes (YOLOv8x: 48 KB)")
        self.hash.update(data)

    def layout(self, module: Node) -> Layout:
        """A module's class, its parameters' and buffers' lines and its child modules, read once per module node
        (a module reached many times is not read again)."""
        found = self.layouts.get(id(module))
        if found is None:
            cls = self.token(module.items[0]) if module.items and module.items[0].kind == "global" else "?"
            state = {self.token(key): value for key, value in _pairs(module.builds[0] if module.builds else None)}
            tensors = [f"{self.token(name)}: {self.shape(tensor)}" for table in ("_parameters", "_buffers")
                       for name, tensor in _pairs(state.get(table))]
            children = [(self.token(name), child) for name, child in _pairs(state.get("_modules"))
                        if child.kind == "object"]
            found = self.layouts[id(module)] = Layout(cls, tensors, children)
        return found

    def module(self, module: Node, path: str) -> None:
        if id(module) in self.on_path:
            raise TooLarge("a module contains itself (a reference cycle)")
        self.modules += 1
        if self.modules > limits.MAX_MODULES:
            raise TooLarge(f"its layer tree holds more than {limits.MAX_MODULES:,} modules when shared ones are "
                           "counted where they are used (YOLOv8x: 461)")
        layout = self.layout(module)
        self.line(f"{path or '<root>'}: {layout.cls}")
        for tensor in layout.tensors:
            self.line(f"{path}.{tensor}")
        self.on_path.add(id(module))
        for name, child in layout.children:
            self.module(child, f"{path}.{name}" if path else name)
        self.on_path.discard(id(module))


class _CountingReader:
    """A seekable binary file that counts the bytes read through it (the zip's directory and data.pkl)."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.bytes_read += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.handle.seek(offset, whence)

    def tell(self) -> int:
        return self.handle.tell()

    def seekable(self) -> bool:
        return True


def _model(root: Node) -> Node | None:
    entries = {key.value: value for key, value in _pairs(root) if key.kind == "leaf" and isinstance(key.value, str)}
    return next((entries[key] for key in ("model", "ema") if key in entries and entries[key].kind == "object"), None)


def fingerprint(path: str | Path) -> Fingerprint:
    """SHA-256 of the checkpoint's layer tree (classes, parameter and buffer shapes), with the bytes read for it;
    a one-line DetbenchError naming the file when it cannot be read as a checkpoint or exceeds a bound."""
    with open_regular_file(path, str(path), limits.MAX_CHECKPOINT_BYTES, FIX) as (handle, size):
        reader = _CountingReader(handle)
        try:
            pickled = read_pickle(reader, size)  # type: ignore[arg-type]  # read, seek and tell are what zipfile uses
        except ArchiveError as exc:
            raise DetbenchError(f"{path}: cannot read its architecture ({exc}); {FIX}") from exc
    walk = _Walk()
    try:
        scan = scan_pickle(pickled)
        expansion(scan.root)
        model = _model(scan.root)
        if model is None:
            raise DetbenchError(f"{path}: holds no model to read the architecture of; {FIX}")
        walk.module(model, "")
    except (ScanError, TooLarge) as exc:
        raise DetbenchError(f"{path}: cannot read its architecture ({exc}); {FIX}") from exc
    except (RecursionError, MemoryError) as exc:
        raise DetbenchError(f"{path}: cannot read its architecture (its layer tree is too deep or too large: "
                            f"{type(exc).__name__}); {FIX}") from None
    return Fingerprint(walk.hash.hexdigest(), reader.bytes_read)


def architecture(path: str | Path) -> str:
    """SHA-256 of the checkpoint's layer tree (`fingerprint`'s digest)."""
    return fingerprint(path).digest
