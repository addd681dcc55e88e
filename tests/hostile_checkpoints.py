"""Builders of hostile checkpoints for the security tests: each stands for a class of attack.

Payloads only ever make a marker folder, so a test that fails does no harm. Some
pickles are written opcode by opcode, because building the object in Python
would already run the attack (hashing a tuple nested 64 levels deep, say).
"""

from __future__ import annotations

import os
import pickle
import re
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from detbench.errors import DetbenchError
from detbench.models.loading import load_model, precheck_model

PROTO2 = b"\x80\x02"


class Reduce:
    """Unpickling this calls `func(*args)` (one REDUCE)."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class MakeMarker(Reduce):
    """Unpickling this calls os.mkdir(path): stands for any code a checkpoint could run."""

    def __init__(self, path: Path) -> None:
        super().__init__(os.mkdir, str(path))


def save_with(base: Path, path: Path, **extra) -> Path:
    """`base` (a real checkpoint) with extra top-level entries, saved with torch.save."""
    ckpt = torch.load(base, map_location="cpu", weights_only=False)
    ckpt.update(extra)
    torch.save(ckpt, path)
    return path


def save_model_edit(base: Path, path: Path, edit) -> Path:
    """`base` with `edit(model)` applied to its model before saving."""
    ckpt = torch.load(base, map_location="cpu", weights_only=False)
    model = ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"]
    edit(model)
    torch.save(ckpt, path)
    return path


def eval_config(marker: Path) -> dict:
    """A model config that makes Ultralytics eval() a payload, as `DetectionModel(cfg)` does."""
    return {"nc": 1, "activation": f"__import__('os').mkdir({str(marker)!r})",
            "backbone": [[-1, 1, "Conv", [16, 3, 2]]], "head": [[-1, 1, "Conv", [16, 3, 2]]]}


def from_type_payload(marker: Path):
    """The critical hole: `_rebuild_from_type_v2` calls its first argument, here an allowed class."""
    from ultralytics.nn.tasks import DetectionModel

    return Reduce(torch._tensor._rebuild_from_type_v2, DetectionModel, torch.Tensor, (eval_config(marker),), {})


# ---------------------------------------------------------------- raw pickles and archives

def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def text(value: str) -> bytes:
    data = value.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def put(index: int) -> bytes:
    return b"r" + struct.pack("<I", index)


def get(index: int) -> bytes:
    return b"j" + struct.pack("<I", index)


def nested_tuple_key(levels: int = 64) -> bytes:
    """{t: 1} where t = (t', t'), 64 levels: a small pickle whose key takes 2**64 steps to hash."""
    parts = [PROTO2, b"}", b")", put(0)]
    for level in range(1, levels + 1):
        parts += [get(level - 1), b"\x86", put(level)]  # TUPLE2 of the level below (on the stack) and itself again
    parts += [b"K\x01", b"s", b"."]  # BININT1 1, SETITEM, STOP
    return b"".join(parts)


def checkpoint_archive(base: Path, data_pkl: bytes, path: Path, deflate: bool = False,
                       extra: dict[str, bytes] | None = None) -> Path:
    """A torch-style zip: `base`'s small records, with `data_pkl` as the pickle (and `extra` records)."""
    with zipfile.ZipFile(base) as archive:
        prefix = archive.namelist()[0].split("/")[0]
        small = {n: archive.read(n) for n in archive.namelist() if "/data/" not in n and not n.endswith("data.pkl")}
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as archive:
        archive.writestr(f"{prefix}/data.pkl", data_pkl)
        for name, content in {**small, **{f"{prefix}/{k}": v for k, v in (extra or {}).items()}}.items():
            archive.writestr(name, content)
    return path


def mark_list_bomb(base: Path, path: Path, count: int = 4_000_000) -> Path:
    """An 8 KiB deflated pickle of `count` MARKs then `count` LISTs (quadratic for a naive scan)."""
    return checkpoint_archive(base, PROTO2 + b"(" * count + b"l" * count + b".", path, deflate=True)


def inflating_record(base: Path, path: Path, inflated: int = 256 * 2**20) -> Path:
    """`base` plus a deflated record of `inflated` zero bytes: a file of ~1 MB more that inflates by 256 MB."""
    with zipfile.ZipFile(base) as archive:
        entries = [(name, archive.read(name)) for name in archive.namelist()]
    prefix = entries[0][0].split("/")[0]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, compresslevel=1) as writer:
        for name, content in entries:
            writer.writestr(name, content)
        info = zipfile.ZipInfo(f"{prefix}/data/bomb")
        info.compress_type = zipfile.ZIP_DEFLATED
        with writer.open(info, "w", force_zip64=True) as handle:
            for _ in range(inflated >> 20):
                handle.write(bytes(1 << 20))
    return path


def upsampling_bomb(model: nn.Module, scale: int = 128) -> None:
    """Wrap layer 9 (SPPF) as SPPF -> Upsample x scale -> MaxPool / scale: same shapes, huge activations."""
    layer = model.model[9]
    bomb = nn.Sequential(layer, nn.Upsample(scale_factor=scale), nn.MaxPool2d(scale, scale))
    bomb.f, bomb.i, bomb.type, bomb.np = layer.f, layer.i, layer.type, layer.np
    model.model[9] = bomb


def shared_module_dag(levels: int = 48) -> nn.Module:
    """A module graph where each level holds the one below twice: 2**48 paths for a recursive walk."""
    module: nn.Module = nn.Identity()
    for _ in range(levels):
        module = nn.Sequential(module, module)
    return module


def list_dag(levels: int = 133) -> list:
    """A list of two references to a list of two references ...: 2**133 (about 10**40) items if expanded."""
    value: list = [1]
    for _ in range(levels):
        value = [value, value]
    return value


def strided_view() -> torch.Tensor:
    """A 2-byte storage viewed as 32768 x 32768: 2 GB of fp16 (8 GB after .float()) from nothing."""
    return torch.zeros(1, dtype=torch.float16).as_strided((32768, 32768), (0, 0))


def pickled(obj) -> bytes:
    return pickle.dumps(obj, protocol=2)


def refused(weights: Path, pattern: str, plugins: tuple[str, ...] = ()) -> str:
    """In-process: the static checks refuse it, and so does a full (checked) load."""
    with pytest.raises(DetbenchError) as first:
        precheck_model(str(weights), plugins)
    with pytest.raises(DetbenchError) as second:
        load_model(str(weights), plugins=list(plugins))
    for info in (first, second):
        assert "\n" not in str(info.value) and re.search(pattern, str(info.value)), str(info.value)
    return str(first.value)


# ---------------------------------------------------------------- seeds' checkpoints, fingerprinted without loading

def layer(state: bytes = b"", cls: tuple[str, str] = ("torch.nn.modules.conv", "Conv2d")) -> bytes:
    """A module restored as NEWOBJ, then BUILD with `state` (the pickled state dict) when given."""
    return glob(*cls) + b")" + b"\x81" + (state + b"b" if state else b"")


def state_dict(*items: bytes) -> bytes:
    """A plain dict of `items` (pickled key, value, key, value, ...), as torch saves a module's __dict__."""
    return b"}" + (b"(" + b"".join(items) + b"u" if items else b"")


def getattr_call() -> bytes:
    """A `builtins.getattr()` call node: items set on it (SETITEMS) are what a walk that follows calls reads."""
    return glob("builtins", "getattr") + b")" + b"R"


def cyclic_layer(hidden: bool) -> bytes:
    """A module whose state lists the module itself among its children: in a plain dict, or in the items of a
    getattr call (`hidden`)."""
    holder = getattr_call() if hidden else b"}"
    return (PROTO2 + b"}" + text("model") + layer() + put(1) + holder + b"(" + text("_modules") + b"}" + text("a")
            + get(1) + b"s" + b"u" + b"b" + b"s" + b".")


def layer_dag(levels: int, hidden: bool) -> bytes:
    """Module k's children a and b are both module k-1, `levels` deep: 2**levels modules for a walk that does not
    count shared ones, from a pickle of 100 bytes a level. `hidden`: each state is a getattr call's items."""
    def level(k: int) -> bytes:
        if k == 0:
            return layer() + put(1000)
        holder = getattr_call() if hidden else b"}"
        return (layer() + holder + b"(" + text("_modules") + b"}" + text("a") + level(k - 1) + b"s" + text("b")
                + get(1000 + k - 1) + b"s" + b"u" + b"b" + put(1000 + k))
    return PROTO2 + b"}" + text("model") + level(levels) + b"s" + b"."


def reused_names(name: str, count: int) -> bytes:
    """One module whose `count` parameters are all named by one string, pickled once and reused by reference."""
    params = text(name) + put(1) + b"N" + b"s" + b"(" + (get(1) + b"N") * (count - 1) + b"u"
    return (PROTO2 + b"}" + text("model") + layer(state_dict(text("_parameters"), b"}" + params)) + b"s" + b".")


def seed_checkpoint(data_pkl: bytes, path: Path, records: dict[str, bytes] | None = None) -> Path:
    """A torch-style stored zip of `data_pkl` (and tensor `records`), as a seed's weights/best.pt."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/version", "3\n")
        for name, content in (records or {}).items():
            archive.writestr(f"archive/data/{name}", content)
    return path
