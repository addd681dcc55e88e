"""The exported model, made by Ultralytics' own exporter in a bounded child process, and cached privately.

The export runs in a child process (`backends.export_child`) bounded in time and memory like the model check,
that dies with its parent. The child loads the model the way the run did: the checkpoint file, checked again
against the SHA-256 the run hashed, through detbench's allow-listed loader with the run's plugins (a model built
from a YAML also gets the run's own weights, which are random in every process). The exporter runs with its
working folder in a private folder and is given only the short name `model.pt`, so nothing it derives from a
path can write outside that folder; its HOME is a throwaway folder too.

An exported model is code a runtime will run (a TorchScript file can read and write files), so an export is
trusted only where no one else can have written it:

- exports are cached per user, under `$DETBENCH_CACHE_DIR/exports` (default `~/.cache/detbench/exports`), a
  folder detbench makes with mode 0700 and uses only while it, and every folder and file in an entry, is owned by
  this user, is not a symlink and is writable by no one else, and every file is a regular file; an entry that is
  anything else is not used (the run says so), and the export is made afresh;
- only an export that depends on nothing but the checkpoint's bytes is cached (keyed by its SHA-256, the format,
  imgsz, batch, the device kind and precision, the GPU model for a TensorRT engine, and the versions of detbench,
  torch, Ultralytics and the runtime and export packages). Not cached, and never taken from the cache: a model
  built from a YAML (new random weights in every process), a checkpoint loaded with --unsafe-load, any export
  made after code other than detbench's ran in this process (a plugin, even one whose import failed half-way, or
  a --unsafe-load checkpoint, by this run or an earlier call of the Python API: it can change any layer,
  Ultralytics' own included, or the environment the export's process inherits), and any export made with
  PYTHONPATH set (a sitecustomize.py there runs in the export's process). Those are made in a private temporary
  folder, loaded and deleted, and the report records why (`exported.not_cached`);
- an export's files are read once, bounded in size, as bytes: the recorded hash is of those bytes, and the
  runtime loads those bytes (never the path again), so what was hashed is what runs.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from detbench.backends.export_child import STEM, ExportBounds, ExportSource, Target, run_export
from detbench.backends.formats import Format
from detbench.errors import DetbenchError
from detbench.version import __version__

EXPORTS_DIRNAME = "exports"
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
    process_s: float | None = None  # seconds its bounded process took in all: imports, the model's load, the export
    not_cached: str | None = None  # why it is neither taken from nor stored in the cache (None: it is cached)
    refused_entry: str | None = None  # a cache entry found for it and not used, and why

    @property
    def size_bytes(self) -> int:
        return sum(len(data) for data in self.files.values())

    def record(self) -> dict[str, Any]:
        return {"file": self.name, "sha256": self.sha256, "export_s": self.export_s, "process_s": self.process_s,
                "reused": self.reused, "cached_at": self.cached_at, "not_cached": self.not_cached,
                "refused_cache_entry": self.refused_entry, "versions": self.versions}


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def versions(backend: Format) -> dict[str, str]:
    """The versions an export depends on; a module's own `__version__` first (TensorRT from `tensorrt-cu12` or a
    system package, or `onnxruntime-gpu`, has no distribution of the module's name)."""
    # imported here: Ultralytics only once the process is set up for it (models.ultralytics_env)
    import ultralytics

    found = {"detbench": __version__, "torch": torch.__version__, "ultralytics": ultralytics.__version__}
    for name in (backend.module, *backend.export_modules):
        if name != "torch":
            found[name] = str(getattr(sys.modules.get(name), "__version__", None) or _package_version(name))
    return found


def export_key(weights_sha256: str, backend: Format, target: Target, found_versions: dict[str, str]) -> str:
    text = json.dumps([weights_sha256, backend.name, target.imgsz, target.batch, target.device != "cpu",
                       target.half, target.device_name, found_versions], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def user_cache_root() -> Path:
    """$DETBENCH_CACHE_DIR/exports (`~` expanded, made absolute: never the working folder by accident), or
    ~/.cache/detbench/exports."""
    chosen = os.environ.get(CACHE_ENV)
    root = Path(chosen).expanduser().absolute() if chosen else Path.home() / ".cache" / "detbench"
    return root / EXPORTS_DIRNAME


def private_cache(root: Path) -> Path | None:
    """`root`, made 0700 if missing; None when it cannot be made or is not private: a real folder of this user's
    that no one else may write (so no one else can have put files in it)."""
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(root, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        _checked_folder(str(root), root.name)
    except (OSError, Unusable):
        return None
    return root


def _artifact_name(backend: Format) -> str:
    return {"onnx": f"{STEM}.onnx", "torchscript": f"{STEM}.torchscript", "engine": f"{STEM}.engine",
            "openvino": f"{STEM}_openvino_model/{STEM}.xml"}[backend.name]


class Unusable(Exception):
    """An export folder or cache entry that is not used; the message says why."""


def _owned_privately(info: os.stat_result, name: str) -> None:
    if info.st_uid != os.getuid():
        raise Unusable(f"{name} is owned by another user (uid {info.st_uid})")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise Unusable(f"{name} is writable by group or others (mode {stat.S_IMODE(info.st_mode):o})")


def _checked_folder(path: str, name: str) -> None:
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise Unusable(f"{name} is {'a symlink' if stat.S_ISLNK(info.st_mode) else 'not a folder'}")
    _owned_privately(info, name)


def _read_checked_file(path: str, name: str, max_bytes: int) -> bytes:
    """The bytes of a regular file of this user's that no one else may write, read once through one descriptor
    (looked at with lstat first: a device is never opened)."""
    if not stat.S_ISREG(os.lstat(path).st_mode):
        raise Unusable(f"{name} is {'a symlink' if os.path.islink(path) else 'not a regular file'}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Unusable(f"{name} is a symlink") from None
        raise Unusable(f"{name} cannot be opened as a file ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise Unusable(f"{name} is not a regular file")
        _owned_privately(info, name)
        if info.st_size > max_bytes:
            raise Unusable(f"its files pass {max_bytes / 2**20:.0f} MiB")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise Unusable(f"its files pass {max_bytes / 2**20:.0f} MiB")
    return data


MAX_TREE_ENTRIES = 10_000  # files and folders of one entry (an OpenVINO export: 3 files)
MAX_TREE_DEPTH = 8


def read_tree(folder: Path, max_bytes: int) -> dict[str, bytes]:
    """Every file under `folder` as bytes, by name relative to it, read once. Raises Unusable unless every folder
    (`folder` too) and every file is this user's, writable by no one else, and not a symlink, every file is a
    regular file, every name is text, and all of them together hold at most MAX_TREE_ENTRIES entries,
    MAX_TREE_DEPTH levels and `max_bytes` bytes. Walked without recursion."""
    files: dict[str, bytes] = {}
    total, seen = 0, 0
    try:
        _checked_folder(str(folder), folder.name)
        pending = [("", 0)]
        while pending:
            relative, depth = pending.pop()
            with os.scandir(os.path.join(folder, relative)) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
            seen += len(entries)
            if seen > MAX_TREE_ENTRIES:
                raise Unusable(f"it holds more than {MAX_TREE_ENTRIES:,} files and folders")
            for entry in entries:
                name = os.path.join(relative, entry.name)
                name.encode("utf-8")  # a name that is not text (undecodable bytes) is refused here
                if entry.is_dir(follow_symlinks=False):
                    if depth + 1 > MAX_TREE_DEPTH:
                        raise Unusable(f"its folders are nested more than {MAX_TREE_DEPTH} deep")
                    _checked_folder(entry.path, name)
                    pending.append((name, depth + 1))
                else:
                    data = _read_checked_file(entry.path, name, max_bytes - total)
                    total += len(data)
                    files[name] = data
    except OSError as exc:
        raise Unusable(f"reading it failed ({exc.strerror or exc})") from None
    except UnicodeError:
        raise Unusable("it holds a file name that is not text") from None
    return files


def read_export(folder: Path, backend: Format, max_bytes: int) -> dict[str, bytes]:
    """The export's files under `folder` (see `read_tree`); Unusable also when the model's file is missing."""
    files = read_tree(folder, max_bytes)
    if _artifact_name(backend) not in files:
        raise Unusable(f"it holds no {_artifact_name(backend)}")
    return files


def files_sha256(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


META = "export.json"
MAX_META_BYTES = 2**20
FILES = "files"


def _stored(entry: Path, backend: Format, max_bytes: int) -> Artifact | None:
    """The export in the cache entry; None when there is none. Raises Unusable when the entry, or anything in it,
    fails the checks of `read_tree`, holds anything but its record and its files, or its files do not hash to
    the recorded value."""
    if not os.path.lexists(entry):
        return None
    tree = read_tree(entry, max_bytes + MAX_META_BYTES)
    prefix = FILES + os.sep
    strays = sorted(name for name in tree if name != META and not name.startswith(prefix))
    if strays:
        raise Unusable(f"it holds {strays[0]}, which no export writes")
    try:
        meta = json.loads(tree.get(META, b"").decode())
    except (ValueError, UnicodeDecodeError, RecursionError):
        meta = None
    if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str):
        raise Unusable(f"its {META} is missing or not a record")
    files = {name[len(prefix):]: data for name, data in tree.items() if name.startswith(prefix)}
    if _artifact_name(backend) not in files or meta["sha256"] != files_sha256(files):
        raise Unusable(f"its files do not hash to the sha256 in its {META}")
    recorded = meta.get("versions")
    return Artifact(_artifact_name(backend), files, meta["sha256"], None, True, str(entry),
                    {str(k): str(v) for k, v in recorded.items()} if isinstance(recorded, dict) else {})


def export_limit(model: torch.nn.Module) -> int:
    """The most bytes an export of `model` may take: a few times its fp32 weights."""
    weights = sum(t.numel() * 4 for t in [*model.parameters(), *model.buffers()])
    return max(MIN_EXPORT_BYTES_LIMIT, 4 * weights)


def foreign_code(source: ExportSource) -> list[str]:
    """Code other than detbench's that ran in this process (by this run, or by an earlier call of the Python API:
    a module stays imported), and the plugins the run's child will import."""
    from detbench.models.loading import foreign_code_ran  # imported here: loads Ultralytics' model code

    return list(dict.fromkeys([*foreign_code_ran(), *(f"plugin {plugin}" for plugin in source.plugins)]))


def not_cached_because(source: ExportSource) -> str | None:
    """Why an export of `source` made in this process must be neither taken from nor stored in the cache; None
    when it depends on the checkpoint's bytes alone."""
    if source.kind != "checkpoint" or not source.sha256:
        return "the model was built from a YAML, with new random weights in every process"
    if source.unsafe_load:
        return "the checkpoint was loaded with --unsafe-load, which runs its code"
    ran = foreign_code(source)
    if ran:
        return (f"code other than detbench's ran in this process ({'; '.join(ran)[:300]}), and it, or a module it "
                f"imports, can change any layer")
    if os.environ.get("PYTHONPATH"):
        return ("PYTHONPATH is set, and code in its folders (a sitecustomize.py, say) runs in the export's process "
                "too")
    return None


def exported(source: ExportSource, reference: torch.nn.Module, backend: Format, target: Target,
             cache_root: Path | None = None, bounds: ExportBounds | None = None, threads: int = 1) -> Artifact:
    """The export of the model `source` names, for `backend` and `target`: from the private cache under
    `cache_root` (default `user_cache_root()`) when it may be cached and the cache holds it, else made in a
    bounded child process (and stored there when it may be cached). `reference`: the model as this run holds it
    (a model built from a YAML is exported with its weights); `threads`: the exporter's CPU threads."""
    limit = export_limit(reference)
    found_versions = versions(backend)
    why, cache, entry, refused = not_cached_because(source), None, None, None
    if why is None:
        root = cache_root or user_cache_root()
        cache = private_cache(root)
        if cache is None:
            why = f"the export cache {root} is not a folder of this user's that only it may write"
        else:
            entry = cache / export_key(str(source.sha256), backend, target, found_versions)
            try:
                found = _stored(entry, backend, limit)
            except Unusable as exc:
                found, refused = None, f"{entry}: {exc}"
            if found is not None:
                return found
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=cache))  # 0700, in the cache or the system's temp
    try:
        os.mkdir(work / FILES, 0o700)
        spent, process = run_export(source, reference, backend, target, work / FILES, bounds or ExportBounds(),
                                    threads)
        if backend.name == "engine":  # the exporter leaves its intermediate ONNX beside the engine
            _keep_only(work / FILES, _artifact_name(backend))
        try:
            files = read_export(work / FILES, backend, limit)
        except Unusable as exc:
            raise DetbenchError(f"--format {backend.name}: Ultralytics' exporter wrote no usable {backend.runtime} "
                                f"model ({exc}); nothing was kept") from None
        artifact = Artifact(_artifact_name(backend), files, files_sha256(files), spent, False, None, found_versions,
                            round(process, 3), why, refused)
        if entry is not None:
            _store(work, entry, artifact, {"format": backend.name, **asdict(target), "weights_sha256": source.sha256})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return artifact


def _store(work: Path, entry: Path, artifact: Artifact, made_for: dict[str, Any]) -> None:
    """Write the entry's record (mode 0600, whatever the umask) and move the export into the cache."""
    meta = {"sha256": artifact.sha256, **made_for, "versions": artifact.versions,
            "export_s": round(artifact.export_s or 0.0, 3)}
    fd = os.open(work / META, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(meta, indent=1) + "\n")
    _replace_entry(work, entry)
    if work.exists():
        artifact.not_cached = f"storing it in {entry.parent} failed (another run stored it first, or no space)"
    else:
        artifact.cached_at = str(entry)


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
