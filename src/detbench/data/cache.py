"""Set-up work shared by the processes of one study: the decoded input cache.

A study benchmarks every model in its own process on the same benchmark list;
without a cache each process decodes and letterboxes the same images again.
The decoded array is stored beside the benchmark list, in `.detbench-cache/`,
under a key made of content hashes, so a stale entry is never used: the hash
of the listed files' bytes (the report's `files_sha256`), imgsz and the
OpenCV / Ultralytics versions. A cached array is used only if its hash still
equals the one stored with it; it is saved only up to MAX_INPUT_BYTES.
(FLOPs are not cached: the bounded check of each model counts them anyway.)

Deleting the folder is always safe; the report says what came from it.

The cache never leads outside the folder that holds the list: if
`.detbench-cache` is a symlink or not a folder, it is not used at all (set-up
work is done again, nothing is stored; `cache_problem` gives the note to
show), and an entry that is a symlink or not a regular file is not read.
Entries are read with `safe_io` (bounded: MAX_SMALL_FILE_BYTES for JSON, the
expected array size for .npy) and written atomically into the folder opened
without following links, so a write replaces a symlinked entry instead of
writing through it.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import warnings
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from detbench.data.inputs import (
    FilesHash,
    InputCache,
    array_sha256,
    check_host_memory,
    decode_images,
    read_image_file,
)
from detbench.data.rect import RectInputCache, decode_rect_images, rect_digest, sizes_hold
from detbench.errors import DetbenchError
from detbench.files.atomic import write_atomic
from detbench.files.safe_io import read_regular_file
from detbench.limits import MAX_IMAGE_PIXELS, MAX_SMALL_FILE_BYTES

CACHE_DIRNAME = ".detbench-cache"
MAX_INPUT_BYTES = 1 << 30
NPY_HEADER_BYTES = 4096  # an .npy header of a 4-d uint8 array is about 128 bytes


def cache_dir_for(list_path: str | Path) -> Path:
    return Path(list_path).resolve().parent / CACHE_DIRNAME


def cache_problem(cache_dir: str | Path) -> str | None:
    """Why the cache folder is not used (a note for the run to show), or None if it is usable or absent."""
    try:
        info = os.lstat(cache_dir)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"set-up cache {cache_dir} not used: cannot look at it ({exc.strerror})"
    if stat.S_ISLNK(info.st_mode):
        return (f"set-up cache {cache_dir} not used: it is a symlink, and detbench never reads or writes the cache "
                f"through one; delete it to let detbench make the folder")
    if not stat.S_ISDIR(info.st_mode):
        return f"set-up cache {cache_dir} not used: it is not a folder; delete it to let detbench make the folder"
    return None


def _cache_ready(cache_dir: Path, create: bool = False) -> bool:
    """Whether `cache_dir` is a real folder (not a symlink), made first (without following a link) if asked."""
    if cache_problem(cache_dir) is not None:
        return False
    if create and not os.path.lexists(cache_dir):
        try:
            cache_dir.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(cache_dir)
        except FileExistsError:
            pass
        except OSError:
            return False
    return os.path.lexists(cache_dir) and cache_problem(cache_dir) is None


def _entry_bytes(cache_dir: Path, name: str, max_bytes: int) -> bytes | None:
    """A cache entry's bytes; None if the folder or the entry is a symlink, not regular, too large or unreadable."""
    path = cache_dir / name
    try:
        regular = _cache_ready(cache_dir) and stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return None
    if not regular:
        return None
    try:
        return read_regular_file(path, f"cache entry {path}", max_bytes)
    except DetbenchError:
        return None


def _write_entry(cache_dir: Path, name: str, fill: Callable[[BinaryIO], object]) -> None:
    """Store an entry atomically, never through a symlinked folder; a cache that cannot be written only costs time."""
    if not _cache_ready(cache_dir, create=True):
        return
    try:
        write_atomic(cache_dir / name, fill, follow_folder_link=False)
    except OSError:
        pass


def _versions() -> str:
    # imported here, not at the top: loads Ultralytics, OpenCV, which only this path needs
    import cv2
    import ultralytics

    try:
        thop = version("ultralytics-thop")
    except Exception:
        thop = "?"
    return f"torch={torch.__version__};ultralytics={ultralytics.__version__};thop={thop};cv2={cv2.__version__}"


def _read_json(cache_dir: Path, name: str) -> dict[str, Any]:
    data = _entry_bytes(cache_dir, name, MAX_SMALL_FILE_BYTES)
    try:
        entries = json.loads(data.decode("utf-8")) if data else {}
    except (ValueError, RecursionError):
        return {}
    return entries if isinstance(entries, dict) else {}


def _write_json(cache_dir: Path, name: str, value: dict[str, Any]) -> None:
    data = (json.dumps(value, indent=1, sort_keys=True) + "\n").encode("utf-8")
    _write_entry(cache_dir, name, lambda handle: handle.write(data))


def files_digest(paths: Sequence[str | Path]) -> str | None:
    """The hash decode_images records as files_sha256 (sha256 of each file's sha256); None if a file is missing
    or empty (decode_images then names it). A file that is not a regular image file is refused (DetbenchError)."""
    digest = FilesHash()
    for raw in paths:
        data = read_image_file(Path(raw))
        if not data:
            return None
        digest.add(data)
    return digest.hexdigest()


def _map_entry(cache_dir: Path, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """A stored uint8 .npy of exactly `shape`, memory-mapped read-only (the processes of a study share its pages);
    None if the folder or the entry is a symlink, not a regular file, or not that array."""
    path = cache_dir / name
    if not _cache_ready(cache_dir):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        try:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                return None
            major, _ = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            stored_shape, fortran, dtype = read_header(handle, max_header_size=NPY_HEADER_BYTES)
            offset = handle.tell()
        except (OSError, ValueError):
            return None
        if (stored_shape != shape or fortran or dtype != np.uint8 or offset > NPY_HEADER_BYTES
                or info.st_size != offset + int(np.prod(shape))):
            return None
        return np.memmap(handle, dtype=np.uint8, mode="r", offset=offset, shape=shape)


def _load_inputs(cache_dir: Path, key: str, files_sha256: str, shape: tuple[int, int, int, int],
                 rect_stride: int | None = None, max_pixels: int = MAX_IMAGE_PIXELS) -> InputCache | None:
    """The stored array for `key` if it has the expected shape and hash; None otherwise."""
    meta = _read_json(cache_dir, f"inputs-{key}.json")
    decoded_sha256 = meta.get("decoded_sha256")
    if meta.get("files_sha256") != files_sha256 or not isinstance(decoded_sha256, str):
        return None
    sizes = None
    if rect_stride is not None:
        try:
            sizes = np.asarray(meta.get("sizes"), dtype=np.int64)
        except (TypeError, ValueError, OverflowError):
            return None
        if sizes.shape != (shape[0], 4) or not sizes_hold(sizes, shape[1], rect_stride, max_pixels):
            return None  # each content size must be what LetterBox makes of its original
    check_host_memory(shape[0], shape[2])
    stacked = _map_entry(cache_dir, f"inputs-{key}.npy", shape)
    if stacked is None:
        return None
    found = array_sha256(stacked) if sizes is None else rect_digest(stacked, sizes)
    if found != decoded_sha256:
        return None
    with warnings.catch_warnings():  # read-only memory: batches are copies, the mapping is never written
        warnings.simplefilter("ignore", UserWarning)
        images = torch.from_numpy(stacked)
    if sizes is None:
        return InputCache(images, files_sha256, decoded_sha256)
    return RectInputCache(images, files_sha256, decoded_sha256, sizes=sizes, imgsz=shape[1], stride=rect_stride)


def cached_inputs(cache_dir: Path, paths: Sequence[str | Path], imgsz: int, max_pixels: int = MAX_IMAGE_PIXELS,
                  rect_stride: int | None = None) -> tuple[InputCache, bool]:
    """Decoded inputs from the cache when the files, imgsz, rect and versions match; else decoded and stored.

    `rect_stride`: the model's stride for `--rect` inputs (`detbench.data.rect`); None for square ones."""
    def decode() -> InputCache:
        if rect_stride is None:
            return decode_images(paths, imgsz, max_pixels)
        return decode_rect_images(paths, imgsz, rect_stride, max_pixels)

    files_sha256 = files_digest(paths)
    if files_sha256 is None:
        return decode(), False  # it names the unreadable files
    rect = "" if rect_stride is None else f"|rect{rect_stride}"
    key = hashlib.sha256(f"{files_sha256}|{imgsz}{rect}|{_versions()}".encode()).hexdigest()[:32]
    shape = (len(paths), 3, imgsz, imgsz) if rect_stride is None else (len(paths), imgsz, imgsz, 3)
    stored = _load_inputs(cache_dir, key, files_sha256, shape, rect_stride, max_pixels)
    if stored is not None:
        return stored, True
    inputs = decode()
    array = inputs.images.numpy()
    if array.nbytes <= MAX_INPUT_BYTES and inputs.files_sha256 == files_sha256:
        meta: dict[str, Any] = {"files_sha256": files_sha256, "imgsz": imgsz, "decoded_sha256": inputs.decoded_sha256}
        if isinstance(inputs, RectInputCache):
            meta.update(rect_stride=rect_stride, sizes=inputs.sizes.tolist())
        _write_entry(cache_dir, f"inputs-{key}.npy", lambda handle: np.save(handle, array, allow_pickle=False))
        _write_json(cache_dir, f"inputs-{key}.json", meta)
    return inputs, False
