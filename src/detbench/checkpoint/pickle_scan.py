"""Read a checkpoint's pickle without running it: the object graph it would build, as abstract nodes.

torch's weights-only unpickler accepts a fixed set of opcodes (protocol 2,
no STACK_GLOBAL, no INST/OBJ). `scan_pickle` replays exactly that set on
abstract values: a literal keeps its value, a container keeps its items, a
GLOBAL keeps its name, a REDUCE becomes a call node (what is called, with
what), a NEWOBJ an object node, BINPERSID a storage node. Nothing is
imported or called. The scan is linear in the size of the pickle (MARK uses
a stack of positions, never a search), and bounded: opcodes, nesting, and
the number of objects the graph would expand to when every shared reference
is counted each time it is used (what hashing a nested tuple or walking a
shared module graph costs). `detbench.checkpoint.policy` judges the result.
"""

from __future__ import annotations

import pickletools
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING
from dataclasses import dataclass, field
from typing import Any

from detbench import limits

_LITERALS = {"NONE": None, "NEWFALSE": False, "NEWTRUE": True}
_EMPTY = {"EMPTY_TUPLE": "tuple", "EMPTY_LIST": "list", "EMPTY_DICT": "dict", "EMPTY_SET": "set"}
_TUPLE_SIZES = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}


class ScanError(ValueError):
    """The pickle is malformed, uses what torch's restricted unpickler would not, or exceeds a bound."""


class Node:
    """One value the unpickler would build.

    kind: "leaf" (value: the literal), "tuple" | "list" | "dict" | "set" (items; a dict's are k, v, k, v),
    "global" (value: "module.name"), "call" (items: [callable, args, then items set on the result]),
    "object" (items: [class, args, then BUILD states]), "storage" (items: [persistent id]).
    """

    __slots__ = ("kind", "value", "items", "gets", "builds", "visit", "size", "depth")

    def __init__(self, kind: str, value: Any = None, items: list[Node] | None = None) -> None:
        self.kind = kind
        self.value = value
        self.items = items if items is not None else []
        self.gets = 0  # times it was fetched from the memo (shared)
        self.builds: list[Node] = []  # BUILD states applied to it
        self.visit = 0  # for `expansion`: 0 not seen, 1 on the current path, 2 sized
        self.size = 0
        self.depth = 0

    @property
    def callee(self) -> Node:
        return self.items[0]

    @property
    def args(self) -> Node:
        return self.items[1]

    def __repr__(self) -> str:  # for messages and debugging only
        return f"<{self.kind} {self.value!r}>" if self.kind in {"leaf", "global"} else f"<{self.kind}>"


@dataclass
class Scan:
    """What the pickle would build: its root, and every call, object and storage along the way."""

    root: Node
    globals_named: set[str] = field(default_factory=set)
    calls: list[Node] = field(default_factory=list)
    objects: list[Node] = field(default_factory=list)
    storages: list[Node] = field(default_factory=list)
    containers: list[Node] = field(default_factory=list)
    built: list[Node] = field(default_factory=list)  # nodes a BUILD gave state to


class _Replay:
    """The unpickler's loop over abstract values: one method per family of opcodes."""

    def __init__(self) -> None:
        self.stack: list[Node] = []
        self.marks: list[int] = []
        self.memo: dict[int, Node] = {}
        self.scan = Scan(root=Node("leaf"))

    def floor(self) -> int:
        return self.marks[-1] if self.marks else 0

    def pop(self, count: int = 1) -> list[Node]:
        if len(self.stack) - count < self.floor():
            raise ScanError("stack underflow")
        items = self.stack[len(self.stack) - count:]
        del self.stack[len(self.stack) - count:]
        return items

    def top(self) -> Node:
        if len(self.stack) <= self.floor():
            raise ScanError("stack underflow")
        return self.stack[-1]

    def pop_mark(self) -> list[Node]:
        if not self.marks:
            raise ScanError("MARK missing")
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        return items

    def container(self, kind: str, items: list[Node]) -> Node:
        node = Node(kind, items=items)
        self.scan.containers.append(node)
        return node

    def handlers(self) -> dict[str, Any]:
        """Opcode name -> handler(arg); built once per scan so the loop is a single dict look-up."""
        table: dict[str, Any] = {name: (lambda arg, value=value: self.stack.append(Node("leaf", value)))
                                 for name, value in _LITERALS.items()}
        for name in ("BININT", "BININT1", "BININT2", "LONG1", "BINFLOAT", "BINUNICODE", "SHORT_BINSTRING"):
            table[name] = lambda arg: self.stack.append(Node("leaf", arg))
        for name, kind in _EMPTY.items():
            table[name] = lambda arg, kind=kind: self.stack.append(self.container(kind, []))
        for name, size in _TUPLE_SIZES.items():
            table[name] = lambda arg, size=size: self.stack.append(self.container("tuple", self.pop(size)))
        table.update({
            "TUPLE": lambda arg: self.stack.append(self.container("tuple", self.pop_mark())),
            "MARK": lambda arg: self.marks.append(len(self.stack)),
            "BINPUT": self.put, "LONG_BINPUT": self.put, "BINGET": self.get, "LONG_BINGET": self.get,
            "GLOBAL": lambda arg: self.stack.append(self.global_node(str(arg))),
            "BINPERSID": self.persistent, "REDUCE": self.reduce, "NEWOBJ": self.newobj, "BUILD": self.build,
            "APPEND": lambda arg: self.fill(self.pop(1), "APPEND"),
            "APPENDS": lambda arg: self.fill(self.pop_mark(), "APPENDS"),
            "SETITEM": lambda arg: self.fill(self.pop(2), "SETITEM"),
            "SETITEMS": lambda arg: self.fill(self.pop_mark(), "SETITEMS"),
            "PROTO": lambda arg: None,
        })
        return table

    def put(self, arg: Any) -> None:
        self.memo[int(arg)] = self.top()

    def get(self, arg: Any) -> None:
        node = self.memo.get(int(arg))
        if node is None:
            raise ScanError(f"memo key {arg} missing")
        node.gets += 1
        self.stack.append(node)

    def persistent(self, arg: Any) -> None:
        storage = Node("storage", items=self.pop())
        self.scan.storages.append(storage)
        self.stack.append(storage)

    def global_node(self, text: str) -> Node:
        module, _, attr = text.partition(" ")
        if (module, attr) in NAME_MAPPING:  # Python 2 names, mapped as torch's unpickler maps them
            module, attr = NAME_MAPPING[(module, attr)]
        elif module in IMPORT_MAPPING:
            module = IMPORT_MAPPING[module]
        name = f"{module}.{attr}"
        self.scan.globals_named.add(name)
        if len(self.scan.globals_named) > limits.MAX_PICKLE_GLOBALS:
            raise ScanError(f"it names more than {limits.MAX_PICKLE_GLOBALS:,} distinct globals (YOLOv10: 29)")
        return Node("global", name)

    def reduce(self, arg: Any) -> None:
        callee, args = self.pop(2)
        self.stack.append(self.called("call", callee, args, self.scan.calls))

    def newobj(self, arg: Any) -> None:
        cls, args = self.pop(2)
        self.stack.append(self.called("object", cls, args, self.scan.objects))

    def build(self, arg: Any) -> None:
        (state,) = self.pop()
        target = self.top()
        if not target.builds:
            self.scan.built.append(target)
        target.builds.append(state)

    @staticmethod
    def called(kind: str, callee: Node, args: Node, into: list[Node]) -> Node:
        node = Node(kind, items=[callee, args])
        into.append(node)
        return node

    def fill(self, items: list[Node], opcode: str) -> None:
        target = self.top()
        if opcode.startswith("APPEND"):
            if target.kind != "list":
                raise ScanError(f"{opcode} to a {target.kind}, not a list")
        elif target.kind not in {"dict", "call"} or len(items) % 2:
            raise ScanError(f"{opcode} to a {target.kind}, not a dict")
        target.items.extend(items)


def scan_pickle(data: bytes, max_opcodes: int = limits.MAX_PICKLE_OPCODES) -> Scan:
    """Replay the pickle on abstract values; raise ScanError if torch's restricted unpickler would not accept it."""
    replay = _Replay()
    handlers = replay.handlers()
    count = 0
    try:
        for opcode, arg, _position in pickletools.genops(data):
            count += 1
            if count > max_opcodes:
                raise ScanError(f"more than {max_opcodes:,} pickle opcodes (a YOLO checkpoint has about 60,000)")
            handler = handlers.get(opcode.name)
            if handler is None:
                if opcode.name == "STOP":
                    break
                raise ScanError(f"opcode {opcode.name}, which torch's weights-only loader does not accept")
            handler(arg)
        else:
            raise ScanError("the pickle ends without STOP")
    except ScanError:
        raise
    except Exception as exc:  # pickletools raises ValueError and others on malformed bytes
        raise ScanError(f"malformed pickle ({type(exc).__name__})") from exc
    if len(replay.stack) != 1 or replay.marks:
        raise ScanError("the pickle leaves other than one object behind")
    replay.scan.root = replay.stack[0]
    return replay.scan


def _expanded_children(node: Node) -> list[Node]:
    """What walking a node walks into. A bound method (`getattr(obj, "forward")`, as Ultralytics' fused
    `forward = forward_fuse` is saved) refers to its object without containing it: not followed."""
    if node.kind == "call" and node.items[0].kind == "global" and node.items[0].value == "builtins.getattr":
        return []
    return node.items + node.builds if node.builds else node.items


def expansion(root: Node, max_objects: int = limits.MAX_EXPANDED_OBJECTS,
              max_depth: int = limits.MAX_PICKLE_DEPTH) -> tuple[int, int]:
    """(objects, depth) of the graph under `root` with every shared reference counted where it is used.

    Linear in the graph's size (each node is sized once). Raises ScanError for a cycle, for more than
    `max_objects` (e.g. a tuple nested 64 levels deep, each level holding the one below twice: 2**64
    objects to hash) or for nesting deeper than `max_depth`.
    """
    todo: list[Node] = [root]
    while todo:
        node = todo[-1]
        if node.visit == 2:
            todo.pop()
            continue
        kids = _expanded_children(node)
        if node.visit == 0:
            node.visit = 1
            for child in kids:
                if child.visit == 1:
                    raise ScanError("an object that contains itself (a reference cycle)")
                if child.visit == 0:
                    todo.append(child)
            continue
        todo.pop()
        node.visit = 2
        node.size = min(1 + sum(child.size for child in kids), max_objects + 1)
        node.depth = 1 + max((child.depth for child in kids), default=0)
        if node.depth > max_depth:
            raise ScanError(f"objects nested more than {max_depth} levels deep")
    if root.size > max_objects:
        raise ScanError(f"its objects expand to more than {max_objects:,} when shared references are followed "
                        f"(nested sharing, as in a hash or recursion bomb)")
    return root.size, root.depth
