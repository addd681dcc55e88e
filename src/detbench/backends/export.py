"""The exported model, made by Ultralytics' own exporter from the model detbench loaded, and cached privately.

The exporter is handed the checkpoint detbench already loaded through its bounded, allow-listed loader (it is
never given the file to unpickle). An exported model is code a runtime will run (a TorchScript file can read
and write files), so an export is trusted only where no one else can have written it:

- exports are cached per user, under `$DETBENCH_CACHE_DIR/exports` (default `~/.cache/detbench/exports`), a
  folder detbench makes with mode 0700 and uses only while it, and every entry in it, is owned by this user,
  is not a symlink and is writable by no one else; anything else is not used, and the export is made in a
  private temporary folder instead, loaded, and deleted;
- only models read from a checkpoint file are cached (keyed by its SHA-256, the format, imgsz, batch, the
  device kind and precision, the GPU model for a TensorRT engine, the source of the model's own layer classes
  (a plugin's) and the versions of detbench, torch, Ultralytics and the runtime and export packages): a
  model built from a YAML has new random weights in every process, so it is exported each time;
- an export's files are read once, bounded in size, as bytes: the recorded hash is of those bytes, and the
  runtime loads those bytes (never the path again), so what was hashed is what runs; only regular files
  count, and an export with any other entry (a symlink, a FIFO) is not used.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import json
import os
import shutil
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from detbench import __version__
from detbench.backends.formats import Format
from detbench.errors import DetbenchError, first_line
from detbench.files.safe_io import read_regular_file

EXPORTS_DIRNAME = "exports"
STEM = "model"
CACHE_ENV = "DETBENCH_CACHE_DIR"
MIN_EXPORT_BYTES_LIMIT = 64 * 2**20


@dataclass
class Artifact:
    name: str  # the model's file name (the .onnx, .torchscript or .xml)
    files: dict[str, bytes]  # every file of the export, by name relative to the export's folder
    sha256: str  # of those bytes, in name order
    export_s: float | None  # seconds the export took (None when reused)
    reused: bool
    cached_at: str | None  # the private cache folder it is stored in (None: exported for this run only)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        return sum(len(data) for data in self.files.values())

    def record(self) -> dict[str, Any]:
        return {"file": self.name, "sha256": self.sha256, "export_s": self.export_s, "reused": self.reused,
                "cached_at": self.cached_at, "versions": self.versions}


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def versions(backend: Format) -> dict[str, str]:
    """The versions an export depends on; a module's own `__version__` first (TensorRT from `tensorrt-cu12` or a
    system package, or `onnxruntime-gpu`, has no distribution of the module's name)."""
    import ultralytics

    found = {"detbench": __version__, "torch": torch.__version__, "ultralytics": ultralytics.__version__}
    for name in (backend.module, *backend.export_modules):
        if name != "torch":
            found[name] = str(getattr(sys.modules.get(name), "__version__", None) or _package_version(name))
    return found


MAX_SOURCE_BYTES = 32 * 2**20  # of one package's Python files


def _source_files(cls: type) -> list[Path] | None:
    """The Python files of the package (or the module) defining `cls`; None when it has no source file."""
    top = sys.modules.get(cls.__module__.split(".")[0])
    folders = getattr(top, "__path__", None)
    if folders:
        return sorted(path for folder in folders for path in Path(folder).rglob("*.py"))
    try:
        source = inspect.getsourcefile(cls)
    except (OSError, TypeError):
        return None
    return [Path(source)] if source else None


def layers_code_sha256(model: torch.nn.Module) -> str | None:
    """The source of the packages defining the model's own layer classes (a plugin's, detbench's zoo's; not
    torch's or Ultralytics', whose versions are in the key): a plugin edited under the same checkpoint must not
    reuse an old export. None (the export is then not cached) when a class has no source file or a package's
    files pass MAX_SOURCE_BYTES."""
    digest = hashlib.sha256()
    classes = sorted({type(m) for m in model.modules()}, key=lambda c: f"{c.__module__}.{c.__qualname__}")
    hashed: set[Path] = set()
    for cls in classes:
        if cls.__module__.split(".")[0] in {"torch", "ultralytics"}:
            continue
        digest.update(f"{cls.__module__}.{cls.__qualname__}\0".encode())
        files = _source_files(cls)
        if files is None:
            return None
        total = 0
        for path in files:
            if path in hashed:
                continue
            hashed.add(path)
            try:
                data = read_regular_file(path, str(path), MAX_SOURCE_BYTES - total)
            except DetbenchError:
                return None
            total += len(data)
            digest.update(str(path).encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


@dataclass(frozen=True)
class Target:
    """What an export is made for, besides the model and the format."""
    imgsz: int
    batch: int
    device: str = "cpu"  # where the exporter runs: "cpu", or a CUDA index (a TensorRT engine, a TorchScript trace)
    half: bool = False  # an fp16 TensorRT engine
    device_name: str | None = None  # the GPU a TensorRT engine is built for (an engine runs on that model only)


def export_key(weights_sha256: str, backend: Format, target: Target, found_versions: dict[str, str],
               code_sha256: str) -> str:
    text = json.dumps([weights_sha256, backend.name, target.imgsz, target.batch, target.device != "cpu",
                       target.half, target.device_name, found_versions, code_sha256], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def user_cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "detbench") / EXPORTS_DIRNAME


def _private(path: Path) -> bool:
    """A real folder of this user's that no one else may write (so no one else can have put files in it)."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
            and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def private_cache(root: Path) -> Path | None:
    """`root`, made 0700 if missing; None when it cannot be made or is not private."""
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(root, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    return root if _private(root) else None


def _artifact_name(backend: Format) -> str:
    return {"onnx": f"{STEM}.onnx", "torchscript": f"{STEM}.torchscript", "engine": f"{STEM}.engine",
            "openvino": f"{STEM}_openvino_model/{STEM}.xml"}[backend.name]


def read_export(folder: Path, backend: Format, max_bytes: int) -> dict[str, bytes] | None:
    """Every file under `folder` as bytes, read once; None when an entry is not a regular file or a folder (a
    symlink, a FIFO), a folder is not private, the total passes `max_bytes`, or the model's file is missing."""
    files: dict[str, bytes] = {}
    total = 0
    for directory, subdirs, names in os.walk(folder, followlinks=False):
        if not _private(Path(directory)):
            return None
        for name in sorted(subdirs):
            if os.path.islink(os.path.join(directory, name)):
                return None
        for name in sorted(names):
            path = os.path.join(directory, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                return None
            with os.fdopen(fd, "rb") as handle:
                info = os.fstat(handle.fileno())
                if not stat.S_ISREG(info.st_mode) or total + info.st_size > max_bytes:
                    return None
                data = handle.read(max_bytes - total + 1)
            total += len(data)
            if total > max_bytes:
                return None
            files[os.path.relpath(path, folder)] = data
    return files if _artifact_name(backend) in files else None


def files_sha256(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


def _stored(entry: Path, backend: Format, max_bytes: int) -> Artifact | None:
    """The export in the cache entry if the entry is private and its files hash to the recorded value."""
    if not _private(entry):
        return None
    try:
        meta_path = entry / "export.json"
        fd = os.open(meta_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return None
            meta = json.loads(handle.read(2**20).decode())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    files = read_export(entry / "files", backend, max_bytes)
    if not isinstance(meta, dict) or files is None or meta.get("sha256") != files_sha256(files):
        return None
    recorded = meta.get("versions")
    return Artifact(_artifact_name(backend), files, str(meta["sha256"]), None, True, str(entry),
                    {str(k): str(v) for k, v in recorded.items()} if isinstance(recorded, dict) else {})


def _with_path(model: torch.nn.Module, pt_path: Path) -> torch.nn.Module:
    """A shallow copy of `model` whose `pt_path` names where the exporter writes (it deep-copies it again), with
    the task and class names the exporter reads (a model built from a YAML has none)."""
    import copy

    shallow = copy.copy(model)
    shallow.pt_path = str(pt_path)
    if not getattr(shallow, "task", None):
        shallow.task = "detect"
    if not isinstance(getattr(shallow, "names", None), dict):
        shallow.names = {i: str(i) for i in range(int(getattr(shallow, "nc", 80)))}
    return shallow


def exporter_overrides(backend: Format, target: Target) -> dict[str, Any]:
    """Ultralytics' exporter's arguments: a static shape, simplified, on the target's device."""
    return {"format": backend.export_format, "imgsz": target.imgsz, "batch": target.batch, "device": target.device,
            "quantize": 16 if target.half else None, "dynamic": False, "simplify": True, "verbose": False}


def _run_exporter(model: torch.nn.Module, backend: Format, target: Target, folder: Path) -> None:
    """Ultralytics' exporter on a copy of `model`, writing into `folder`; a one-line error if it fails. Its
    output is swallowed, and torch's thread settings, which it changes, are restored."""
    # imported here, not at the top: loads Ultralytics' exporter, which only this path needs
    from ultralytics.engine.exporter import Exporter

    overrides = exporter_overrides(backend, target)
    threads, interop = torch.get_num_threads(), torch.get_num_interop_threads()
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            Exporter(overrides=overrides)(model=_with_path(model, folder / f"{STEM}.pt"))
    except ImportError as exc:
        raise DetbenchError(f"--format {backend.name}: Ultralytics' export needs {exc.name or exc}; "
                            f"pip install -e '.[{backend.extra or 'onnx'}]'") from None
    except Exception as exc:
        detail = first_line(exc)
        raise DetbenchError(f"--format {backend.name}: Ultralytics' export failed ({type(exc).__name__}: "
                            f"{detail}); nothing was written") from None
    finally:
        torch.set_num_threads(threads)
        with contextlib.suppress(RuntimeError):  # settable only before any inter-op work has started
            torch.set_num_interop_threads(interop)


def export_limit(model: torch.nn.Module) -> int:
    """The most bytes an export of `model` may take: a few times its fp32 weights."""
    weights = sum(t.numel() * 4 for t in [*model.parameters(), *model.buffers()])
    return max(MIN_EXPORT_BYTES_LIMIT, 4 * weights)


def exported(model: torch.nn.Module, weights_sha256: str | None, backend: Format, imgsz: int, batch: int,
             cache_root: Path | None = None, target: Target | None = None) -> Artifact:
    """The export of `model` for `backend`: from the private cache under `cache_root` (default
    `user_cache_root()`) when `weights_sha256` is known and the cache holds it, else made (and stored there).
    `target`: the device and precision to export for (default: fp32 on the CPU at `imgsz` and `batch`)."""
    target = target or Target(imgsz, batch)
    limit = export_limit(model)
    cache = private_cache(cache_root or user_cache_root()) if weights_sha256 else None
    found_versions = versions(backend)
    entry = None
    code = layers_code_sha256(model) if cache is not None and weights_sha256 else None
    if cache is not None and weights_sha256 and code is not None:
        entry = cache / export_key(weights_sha256, backend, target, found_versions, code)
        found = _stored(entry, backend, limit)
        if found is not None:
            return found
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=cache))  # 0700, in the cache or the system's temp
    try:
        os.mkdir(work / "files", 0o700)
        began = time.perf_counter()
        _run_exporter(model, backend, target, work / "files")
        spent = time.perf_counter() - began
        if backend.name == "engine":  # the exporter leaves its intermediate ONNX beside the engine
            _keep_only(work / "files", _artifact_name(backend))
        files = read_export(work / "files", backend, limit)
        if files is None:
            raise DetbenchError(f"--format {backend.name}: Ultralytics' exporter wrote no {backend.runtime} model "
                                f"(or one above {limit / 2**20:.0f} MiB)")
        artifact = Artifact(_artifact_name(backend), files, files_sha256(files), spent, False, None, found_versions)
        if entry is not None:
            meta = {"sha256": artifact.sha256, "format": backend.name, "imgsz": target.imgsz, "batch": target.batch,
                    "device": target.device, "half": target.half, "device_name": target.device_name,
                    "weights_sha256": weights_sha256, "versions": artifact.versions, "export_s": round(spent, 3)}
            (work / "export.json").write_text(json.dumps(meta, indent=1) + "\n")
            _replace_entry(work, entry)
            if not work.exists():
                artifact.cached_at = str(entry)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return artifact


def _keep_only(folder: Path, name: str) -> None:
    for path in folder.iterdir():
        if path.name != name:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def _replace_entry(work: Path, entry: Path) -> None:
    """Move the finished export into place; an entry there that did not hold is removed first (never followed)."""
    try:
        if os.path.islink(entry):
            os.unlink(entry)
        elif entry.exists():
            shutil.rmtree(entry, ignore_errors=True)
        os.rename(work, entry)
    except OSError:  # another process stored it first, or the cache is not writable: this run keeps its bytes
        pass
