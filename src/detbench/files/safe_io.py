"""Reading files that may be hostile: regular files only, never blocking, never more than a bound.

Every file detbench reads (checkpoints, YAMLs, lists, images, reports, cache
entries) goes through `read_regular_file`. A path that names a device
(`/dev/zero`), a FIFO, a socket or a folder, directly or through a symlink, is
refused before it is opened; the file is then opened non-blocking and checked
again (the same inode, still a regular file), so swapping it for a FIFO in
between cannot make a run hang. At most `max_bytes` are read: a larger file is
refused, not truncated.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from detbench.errors import DetbenchError, first_line

_CHUNK = 1 << 20


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _size_text(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size} bytes"


def _fail(what: str, problem: str, fix: str) -> DetbenchError:
    return DetbenchError(f"{what}: {problem}" + (f"; {fix}" if fix else ""))


def regular_file_status(path: str | Path) -> os.stat_result | None:
    """`os.stat` of a path that is (or links to) a regular file; None for anything else or nothing."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return info if stat.S_ISREG(info.st_mode) else None


@contextmanager
def open_regular_file(path: str | Path, what: str, max_bytes: int, fix: str = "") -> Iterator[tuple[BinaryIO, int]]:
    """(the open file, its size) of a regular file of at most `max_bytes`, for a reader that needs only part of
    it; else a one-line DetbenchError. Checked as `read_regular_file` checks it."""
    try:
        before = os.stat(path)
    except FileNotFoundError as exc:
        raise _fail(what, "file not found", fix) from exc
    except (OSError, ValueError) as exc:
        raise _fail(what, f"cannot read it ({getattr(exc, 'strerror', None) or exc})", fix) from exc
    if not stat.S_ISREG(before.st_mode):
        raise _fail(what, f"is {_kind(before.st_mode)}, not a regular file", fix)
    if before.st_size > max_bytes:
        raise _fail(what, f"is {_size_text(before.st_size)}, above detbench's limit of {_size_text(max_bytes)} for "
                          f"this kind of file", fix)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        problem = "permission denied" if exc.errno in (errno.EACCES, errno.EPERM) else exc.strerror
        raise _fail(what, f"cannot read it ({problem})", fix) from exc
    with os.fdopen(fd, "rb", buffering=0) as handle:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (before.st_dev, before.st_ino):
            raise _fail(what, "changed while it was being opened (no longer the same regular file)", fix)
        yield handle, before.st_size


def read_regular_file(path: str | Path, what: str, max_bytes: int, fix: str = "") -> bytes:
    """The whole content of a regular file of at most `max_bytes`; else a one-line DetbenchError.

    `what` names the file for the message (e.g. "--weights runs/x.pt"), `fix` says what to do.
    """
    with open_regular_file(path, what, max_bytes, fix) as (handle, _size):
        chunks, total = [], 0
        try:
            while True:
                chunk = handle.read(min(_CHUNK, max_bytes + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                if total > max_bytes:
                    raise _fail(what, f"grew above detbench's limit of {_size_text(max_bytes)} while it was read",
                                fix)
        except OSError as exc:
            raise _fail(what, f"cannot read it ({exc.strerror})", fix) from exc
    return b"".join(chunks)


def read_text_file(path: str | Path, what: str, max_bytes: int, fix: str = "") -> str:
    """`read_regular_file` decoded as UTF-8 (a one-line error if it is not)."""
    data = read_regular_file(path, what, max_bytes, fix)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(what, f"is not UTF-8 text (byte {exc.start})", fix) from exc


def json_shape(data: bytes) -> tuple[int, int]:
    """(lists and objects, values) in JSON text, counted outside strings in linear time: escaped backslashes
    dropped, then escaped quotes; what remains between quotes is string text (the odd-numbered pieces of a split
    on '"')."""
    bare = data.replace(b"\\\\", b"").replace(b'\\"', b"").split(b'"')[::2]
    containers = sum(part.count(b"[") + part.count(b"{") for part in bare)
    return containers, containers + sum(part.count(b",") for part in bare)


def read_json_bounded(path: str | Path, what: str, max_bytes: int, max_containers: int, max_values: int,
                      fix: str = "") -> Any:
    """The JSON in a regular file of at most `max_bytes`, `max_containers` lists and objects and `max_values`
    values, checked before it is parsed (a file of a million empty lists would cost gigabytes once parsed); any
    problem is a one-line DetbenchError naming `what`, with `fix`."""
    return parse_json_bounded(read_regular_file(path, what, max_bytes, fix), what, max_containers, max_values, fix)


def parse_json_bounded(data: bytes, what: str, max_containers: int, max_values: int, fix: str = "") -> Any:
    """`read_json_bounded` for bytes already read (bounded): the shape checked, then parsed; else one line."""
    containers, values = json_shape(data)
    if containers > max_containers or values > max_values:
        raise _fail(what, f"holds {containers:,} lists and objects and {values:,} values, more than detbench "
                          f"writes in one ({max_containers:,} and {max_values:,})", fix)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: JSON errors, huge integers
        raise _fail(what, f"not valid JSON ({type(exc).__name__})", fix) from None


MAX_YAML_NODES = 100_000  # a data or model YAML has a few hundred


def _yaml_expansion(value: object, limit: int) -> int:
    """Nodes of a parsed YAML value with every alias counted where it is used (aliases share objects)."""
    sizes: dict[int, int] = {}
    todo: list[tuple[object, bool]] = [(value, False)]
    while todo:
        node, done = todo.pop()
        children = list(node.values()) + list(node.keys()) if isinstance(node, dict) else \
            list(node) if isinstance(node, (list, tuple, set)) else []
        if done:
            sizes[id(node)] = min(1 + sum(sizes.get(id(child), 1) for child in children), limit + 1)
        elif id(node) not in sizes:
            sizes[id(node)] = limit + 1  # a cycle counts as unbounded until sized
            todo.append((node, True))
            todo.extend((child, False) for child in children if isinstance(child, (dict, list, tuple, set)))
    return sizes.get(id(value), 1)


def load_yaml(data: bytes, what: str, fix: str = "fix the file", max_nodes: int = MAX_YAML_NODES) -> object:
    """YAML bytes parsed safely (no tags that build objects) and bounded: aliases may not multiply the document
    beyond `max_nodes` (a 'billion laughs' file is refused before anything walks it)."""
    # imported here, not at the top: loads PyYAML, which only this path needs
    import yaml

    try:
        value = yaml.safe_load(data.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise _fail(what, f"not valid YAML ({first_line(exc, 160)})", fix) from exc
    if _yaml_expansion(value, max_nodes) > max_nodes:
        raise _fail(what, f"its aliases expand it beyond {max_nodes:,} values (a YAML bomb)", fix)
    return value
