"""The exported model, made by Ultralytics' own exporter from the model detbench loaded, and cached by content.

The exporter is handed the checkpoint detbench already loaded through its bounded, allow-listed loader (it is
never given the file to unpickle). Its output goes to `.detbench-cache/exports/KEY/` beside the benchmark
list, where KEY hashes the weights' SHA-256, the format, imgsz, batch and the versions of torch, Ultralytics
and the runtime. An export is written to a temporary folder and renamed into place whole, so an interrupted
one is never found; a stored export is used only while the hash of its files equals the one recorded with it.
The cache folder obeys the rules of the input cache (`detbench.data.cache`): never through a symlink.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from detbench.backends.formats import Format
from detbench.data.cache import cache_problem
from detbench.errors import DetbenchError
from detbench.files.safe_io import read_regular_file
from detbench.limits import MAX_SMALL_FILE_BYTES

EXPORTS_DIRNAME = "exports"
STEM = "model"


@dataclass
class Artifact:
    path: Path  # the file (ONNX, TorchScript) or the OpenVINO model's .xml
    sha256: str  # of every file of the export, in name order
    export_s: float | None  # seconds the export took (None when reused)
    reused: bool
    versions: dict[str, str]

    def record(self) -> dict[str, Any]:
        return {"path": str(self.path), "sha256": self.sha256, "export_s": self.export_s, "reused": self.reused,
                "versions": self.versions}


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def versions(backend: Format) -> dict[str, str]:
    import ultralytics

    found = {"torch": torch.__version__, "ultralytics": ultralytics.__version__}
    if backend.module != "torch":
        found[backend.module] = _package_version(backend.module)
    if backend.name == "onnx":
        found["onnx"] = _package_version("onnx")
    return found


def export_key(weights_sha256: str, backend: Format, imgsz: int, batch: int) -> str:
    text = json.dumps([weights_sha256, backend.name, imgsz, batch, versions(backend)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def files_sha256(folder: Path) -> str:
    """Hash of every regular file under `folder` (relative names and bytes, in name order)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _artifact_in(folder: Path, backend: Format) -> Path | None:
    candidates = {"onnx": folder / f"{STEM}.onnx", "torchscript": folder / f"{STEM}.torchscript",
                  "openvino": folder / f"{STEM}_openvino_model" / f"{STEM}.xml"}
    path = candidates[backend.name]
    return path if path.is_file() and not path.is_symlink() else None


def _stored(folder: Path, backend: Format) -> Artifact | None:
    """The export in `folder` if its files still hash to the recorded value; None otherwise."""
    meta_path = folder / "export.json"
    if folder.is_symlink() or not meta_path.is_file() or meta_path.is_symlink():
        return None
    try:
        meta = json.loads(read_regular_file(meta_path, str(meta_path), MAX_SMALL_FILE_BYTES).decode())
    except (DetbenchError, ValueError, UnicodeDecodeError):
        return None
    artifact = _artifact_in(folder / "files", backend)
    if not isinstance(meta, dict) or artifact is None or meta.get("sha256") != files_sha256(folder / "files"):
        return None
    return Artifact(artifact, str(meta["sha256"]), None, True, dict(meta.get("versions") or {}))


def _run_exporter(model: torch.nn.Module, backend: Format, imgsz: int, batch: int, target: Path) -> None:
    """Ultralytics' exporter on a copy of `model`, writing into `target`; a one-line error if it fails."""
    # imported here, not at the top: loads Ultralytics' exporter, which only this path needs
    from ultralytics.engine.exporter import Exporter

    copy = _with_path(model, target / f"{STEM}.pt")
    overrides = {"format": backend.export_format, "imgsz": imgsz, "batch": batch, "device": "cpu", "half": False,
                 "dynamic": False, "simplify": True, "verbose": False}
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            Exporter(overrides=overrides)(model=copy)
    except Exception as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise DetbenchError(f"--format {backend.name}: Ultralytics' export failed ({type(exc).__name__}: "
                            f"{detail}); check that {backend.runtime}'s export packages are installed "
                            f"(pip install -e '.[{backend.extra or 'onnx'}]')") from None


def _with_path(model: torch.nn.Module, pt_path: Path) -> torch.nn.Module:
    """A shallow copy of `model` whose `pt_path` names where the exporter writes (it deep-copies it again)."""
    import copy

    shallow = copy.copy(model)
    shallow.pt_path = str(pt_path)
    return shallow


def _remove_stale(final: Path, backend: Format) -> None:
    """An entry at `final` that does not hold (changed files, a broken record) is removed, so the new export
    takes its place; a symlink there is removed, never followed."""
    if final.is_symlink():
        final.unlink(missing_ok=True)
    elif final.exists() and _stored(final, backend) is None:
        shutil.rmtree(final, ignore_errors=True)


def exported(model: torch.nn.Module, weights_sha256: str, backend: Format, imgsz: int, batch: int,
             cache_root: Path) -> Artifact:
    """The export of `model` for `backend`, from the cache under `cache_root` when it holds it, else made."""
    key = export_key(weights_sha256, backend, imgsz, batch)
    usable = cache_problem(cache_root) is None
    final = cache_root / EXPORTS_DIRNAME / key
    if usable:
        found = _stored(final, backend)
        if found is not None:
            return found
    work_parent = final.parent if usable else Path(tempfile.gettempdir())
    work_parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=work_parent))
    files = work / "files"
    files.mkdir()
    began = time.perf_counter()
    try:
        _run_exporter(model, backend, imgsz, batch, files)
        artifact = _artifact_in(files, backend)
        if artifact is None:
            raise DetbenchError(f"--format {backend.name}: Ultralytics' exporter wrote no {backend.runtime} model")
        digest = files_sha256(files)
        spent = time.perf_counter() - began
        meta = {"sha256": digest, "format": backend.name, "imgsz": imgsz, "batch": batch,
                "weights_sha256": weights_sha256, "versions": versions(backend), "export_s": round(spent, 3)}
        (work / "export.json").write_text(json.dumps(meta, indent=1) + "\n")
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if usable:
        _remove_stale(final, backend)
        try:
            os.rename(work, final)
            work = final
        except OSError:  # another process stored it first: use theirs if it holds, else ours
            found = _stored(final, backend)
            if found is not None:
                shutil.rmtree(work, ignore_errors=True)
                return found
    path = _artifact_in(work / "files", backend)
    return Artifact(path, digest, spent, False, versions(backend))
