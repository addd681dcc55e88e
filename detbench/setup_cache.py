"""Set-up work shared by the processes of one study: FLOPs counts and the decoded input cache.

An ablation benchmarks every model in a fresh process, once per round, on the
same benchmark list; without a cache each process decodes and letterboxes the
same images again, and counts FLOPs (twice: unfused and fused) of a model it
already counted in the previous round. Both results are stored beside the
benchmark list, in `.detbench-cache/`, under keys made of content hashes, so a
stale entry is never used:

- GFLOPs: the checkpoint file's bytes (or the model YAML's text), the model's
  structure (`repr`), imgsz and the torch / Ultralytics / THOP versions;
- decoded inputs: the hash of the listed files' bytes (the report's
  `files_sha256`), imgsz and the OpenCV / Ultralytics versions. A cached array
  is used only if its hash still equals the one stored with it; it is saved
  only up to MAX_INPUT_BYTES.

Deleting the folder is always safe; the report says what came from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from detbench.atomic import write_text_atomic
from detbench.inputs import InputCache, check_host_memory, decode_images

CACHE_DIRNAME = ".detbench-cache"
MAX_INPUT_BYTES = 1 << 30


def cache_dir_for(list_path: str | Path) -> Path:
    return Path(list_path).resolve().parent / CACHE_DIRNAME


def _versions() -> str:
    import cv2
    import ultralytics

    try:
        from importlib.metadata import version

        thop = version("ultralytics-thop")
    except Exception:
        thop = "?"
    return f"torch={torch.__version__};ultralytics={ultralytics.__version__};thop={thop};cv2={cv2.__version__}"


def source_digest(weights: str, loaded_path: str) -> str:
    """sha256 of the checkpoint or YAML file the model came from (its name if there is no such file)."""
    for candidate in (Path(loaded_path), Path(weights)):
        if candidate.is_file():
            digest = hashlib.sha256()
            with candidate.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            return digest.hexdigest()
    return hashlib.sha256(f"name:{weights}".encode()).hexdigest()


def gflops_key(source_sha256: str, model: nn.Module, imgsz: int) -> str:
    text = f"{source_sha256}|{imgsz}|{_versions()}|{repr(model)}"
    return hashlib.sha256(text.encode()).hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def cached_gflops(cache_dir: Path, key: str, count: Callable[[], dict[str, float]]) -> tuple[dict[str, float], bool]:
    """The stored counts for `key`, or `count()` stored for next time; and whether it was a hit."""
    path = cache_dir / "gflops.json"
    entries = _read_json(path)
    hit = entries.get(key)
    if isinstance(hit, dict) and all(isinstance(v, (int, float)) and v > 0 for v in hit.values()) and hit:
        return {k: float(v) for k, v in hit.items()}, True
    counts = count()
    try:
        entries = _read_json(path)  # another process may have added entries meanwhile
        entries[key] = counts
        write_text_atomic(path, json.dumps(entries, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass  # a cache that cannot be written only costs time
    return counts, False


def files_digest(paths: Sequence[str | Path]) -> str | None:
    """The hash decode_images records as files_sha256 (sha256 of each file's sha256); None if a file is unreadable."""
    digest = hashlib.sha256()
    for raw in paths:
        try:
            data = Path(raw).read_bytes()
        except OSError:
            return None
        if not data:
            return None
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()


def cached_inputs(cache_dir: Path, paths: Sequence[str | Path], imgsz: int) -> tuple[InputCache, bool]:
    """Decoded inputs from the cache when the files, imgsz and versions match; else decoded and stored."""
    files_sha256 = files_digest(paths)
    if files_sha256 is None:
        return decode_images(paths, imgsz), False  # it names the unreadable files
    key = hashlib.sha256(f"{files_sha256}|{imgsz}|{_versions()}".encode()).hexdigest()[:32]
    array_path, meta_path = cache_dir / f"inputs-{key}.npy", cache_dir / f"inputs-{key}.json"
    meta = _read_json(meta_path)
    if array_path.is_file() and meta.get("files_sha256") == files_sha256:
        check_host_memory(len(paths), imgsz)
        try:
            stacked = np.load(array_path, allow_pickle=False)
        except (OSError, ValueError):
            stacked = None
        if stacked is not None and hashlib.sha256(stacked.tobytes()).hexdigest() == meta.get("decoded_sha256"):
            return InputCache(torch.from_numpy(stacked), files_sha256, meta["decoded_sha256"]), True
    inputs = decode_images(paths, imgsz)
    array = inputs.images.numpy()
    if array.nbytes <= MAX_INPUT_BYTES and inputs.files_sha256 == files_sha256:
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=cache_dir, prefix=f".{array_path.name}.", suffix=".tmp",
                                             delete=False) as handle:
                np.save(handle, array, allow_pickle=False)
            os.replace(handle.name, array_path)
            write_text_atomic(meta_path, json.dumps({"files_sha256": files_sha256, "imgsz": imgsz,
                                                     "decoded_sha256": inputs.decoded_sha256}) + "\n")
        except OSError:
            pass
    return inputs, False


def fuse_and_count(model: nn.Module, imgsz: int, cache_dir: Path,
                   source_sha256: str) -> tuple[nn.Module, dict[str, float], bool]:
    """Fuse the model for inference; its GFLOPs unfused and fused, counted once per model and imgsz."""
    from detbench import complexity
    from detbench.models import prepare_for_inference

    fused: nn.Module | None = None

    def count() -> dict[str, float]:
        nonlocal fused
        unfused = complexity.ultralytics_gflops(model, imgsz)
        fused = prepare_for_inference(model)
        return {"gflops_unfused": unfused, "gflops": complexity.ultralytics_gflops(fused, imgsz)}

    counts, hit = cached_gflops(cache_dir, gflops_key(source_sha256, model, imgsz), count)
    if fused is None:
        fused = prepare_for_inference(model)
    return fused, counts, hit
