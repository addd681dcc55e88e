"""Set-up work shared by the processes of one study: the decoded input cache.

A study benchmarks every model in its own process on the same benchmark list;
without a cache each process decodes and letterboxes the same images again.
The decoded array is stored beside the benchmark list, in `.detbench-cache/`,
under a key made of content hashes, so a stale entry is never used: the hash
of the listed files' bytes (the report's `files_sha256`), imgsz, `--rect`'s
stride and the OpenCV / Ultralytics versions. It is saved only up to
MAX_INPUT_BYTES. (FLOPs are not cached: the bounded check of each model counts
them anyway.)

Whoever can write the folder can also write an entry whose stored hashes
agree with each other, so nothing an entry says is taken on its word: it is
used only where its claims hold for the image files themselves
(`_contradiction`):

- the listed files are read once (their hash, which is the key, and each
  header's width and height, read without decoding); a `--rect` entry's
  original size of every image must be its header's, and its content size
  what LetterBox makes of that (`rect.sizes_hold`): these decide the shapes
  the model is timed on. Where a header and the entry disagree (also an
  image that OpenCV turns by its EXIF orientation), the image is decoded and
  the decoded size decides;
- the first image and SPOT_CHECKS others drawn at random (from the
  operating system's randomness, so no entry can know which) are decoded
  from the bytes that were hashed, and their stored pixels must be exactly
  what decoding and letterboxing them gives;
- the stored array's hash must still equal the one stored with it.

An entry that fails any of these is not used: the inputs are decoded from the
images again, the entry is replaced, and the run gets a note saying why.
Deleting the folder is always safe; the report says what came from it.

The cache never leads outside the folder that holds the list: it goes in the
list's folder as the list's path names it, never resolved (a list file that
is itself a symlink, such as OUT/benchmark_list.txt -> elsewhere, is read,
but the cache stays beside the link, below OUT, not beside its target), and
is made there with `out_tree.folder_below`. If
`.detbench-cache` is a symlink or not a folder, it is not used at all (set-up
work is done again, nothing is stored; `cache_problem` gives the note to
show), and an entry that is a symlink or not a regular file is not read.
Entries are read with `safe_io` (bounded: MAX_SMALL_FILE_BYTES for JSON, the
expected array size for .npy) and written atomically into the folder opened
without following links, so a write replaces a symlinked entry instead of
writing through it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import stat
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np
import torch

from detbench.data.inputs import (
    FilesHash,
    InputCache,
    array_sha256,
    check_host_memory,
    decode_images,
    letterbox,
    may_be_turned,
    read_image,
    read_image_header,
)
from detbench.data.rect import RectInputCache, decode_rect_images, rect_digest, resized_content, sizes_hold
from detbench.errors import DetbenchError
from detbench.files.atomic import write_atomic
from detbench.files.out_tree import folder_below
from detbench.files.safe_io import read_regular_file
from detbench.limits import MAX_IMAGE_PIXELS, MAX_SMALL_FILE_BYTES

CACHE_DIRNAME = ".detbench-cache"
MAX_INPUT_BYTES = 1 << 30
NPY_HEADER_BYTES = 4096  # an .npy header of a 4-d uint8 array is about 128 bytes
SPOT_CHECKS = 8  # images drawn at random, besides the first, whose stored pixels are compared with a fresh decode


def cache_dir_for(list_path: str | Path) -> Path:
    """`.detbench-cache` in the folder of the list's path as given: not resolved, so a list that is a symlink
    keeps its cache beside the link, never beside the link's target."""
    return Path(list_path).parent / CACHE_DIRNAME


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
        try:  # made in the list's folder, following no link there (a link made meanwhile is refused)
            folder_below(cache_dir.parent, cache_dir.name, flag="the benchmark list's folder")
        except DetbenchError:
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
    with contextlib.suppress(OSError):
        write_atomic(cache_dir / name, fill, follow_folder_link=False)


def _versions() -> str:
    # imported here, not at the top: loads Ultralytics, which only this path needs
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


@dataclass(frozen=True)
class ListedFiles:
    """What one read of the listed files says, before anything is decoded: `files_sha256` (the hash
    decode_images records), each file's sha256 and each header's (height, width), None where it cannot be read."""

    files_sha256: str
    digests: tuple[bytes, ...]
    sizes: tuple[tuple[int, int] | None, ...]
    turned: tuple[bool, ...] = ()  # an EXIF orientation may swap the sides: only decoding tells the size


def read_listed_files(paths: Sequence[str | Path], max_pixels: int = MAX_IMAGE_PIXELS) -> ListedFiles | None:
    """Read every listed file once: its hash and its header's size (no pixels decoded). None if a file is missing
    or empty (decode_images then names it); a file that is not a regular image file, or whose header is above
    `max_pixels`, is refused (DetbenchError), as decoding would refuse it."""
    files_hash, digests, sizes, turned = FilesHash(), [], [], []
    for raw in paths:
        data, size = read_image_header(Path(raw), max_pixels)
        if not data:
            return None
        digests.append(files_hash.add(data))
        sizes.append(None if size is None else (size[1], size[0]))
        turned.append(may_be_turned(data))
    return ListedFiles(files_hash.hexdigest(), tuple(digests), tuple(sizes), tuple(turned))


def _spot_checks(count: int) -> list[int]:
    """The first image and SPOT_CHECKS others, drawn with the operating system's randomness."""
    others = random.SystemRandom().sample(range(1, count), min(SPOT_CHECKS, count - 1)) if count > 1 else []
    return [0, *others] if count else []


def _differs(stacked: np.ndarray, sizes: np.ndarray | None, index: int, path: Path, listed: ListedFiles,
             imgsz: int, rect_stride: int | None, max_pixels: int) -> str | None:
    """How the entry's image `index` differs from the image decoded from the bytes that were hashed; None if not."""
    data, image = read_image(path, cv2.IMREAD_COLOR, max_pixels)
    if data is None or hashlib.sha256(data).digest() != listed.digests[index]:
        return f"image {path} changed while it was checked"
    if image is None:
        return f"image {path} cannot be decoded"
    if sizes is None:
        expected = letterbox(image, imgsz)
        same = np.array_equal(stacked[index], expected)
    else:
        stored = (int(sizes[index, 2]), int(sizes[index, 3]))
        if stored != image.shape[:2]:
            return (f"it says image {path} is {stored[0]}x{stored[1]} pixels (height x width), decoding it gives "
                    f"{image.shape[0]}x{image.shape[1]}")
        expected = resized_content(image, imgsz, rect_stride)[:, :, ::-1]
        height, width = expected.shape[:2]
        same = (height, width) == (int(sizes[index, 0]), int(sizes[index, 1])) and np.array_equal(
            stacked[index, :height, :width], expected)
    return None if same else f"its pixels of image {path} are not what decoding and letterboxing the image gives"


def _contradiction(stacked: np.ndarray, sizes: np.ndarray | None, paths: Sequence[str | Path], listed: ListedFiles,
                   imgsz: int, rect_stride: int | None, max_pixels: int) -> str | None:
    """Where an entry's claims do not hold for the image files (the note to show); None where they hold.

    A `--rect` entry's original sizes are compared with every header; an image whose header disagrees, or that an
    EXIF orientation may turn (OpenCV turns it, its header does not say so), is decoded and the decoded size
    decides. The first
    image and SPOT_CHECKS drawn at random are decoded and their stored pixels compared."""
    disputed: list[int] = []
    if sizes is not None:
        for index, (header, stored) in enumerate(zip(listed.sizes, sizes[:, 2:].tolist(), strict=True)):
            if header is None:
                return f"the size of image {paths[index]} cannot be read from its header"
            if header != tuple(stored) or (listed.turned and listed.turned[index]):
                disputed.append(index)  # a header that disagrees, or one an EXIF orientation may overrule
    checked = dict.fromkeys([*disputed, *_spot_checks(len(paths))])
    for index in checked:
        why = _differs(stacked, sizes, index, Path(paths[index]), listed, imgsz, rect_stride, max_pixels)
        if why:
            return why
    return None


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


def _load_inputs(cache_dir: Path, key: str, paths: Sequence[str | Path], listed: ListedFiles,
                 shape: tuple[int, int, int, int], rect_stride: int | None = None,
                 max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[InputCache | None, str | None]:
    """The stored entry for `key` if its claims hold for the files (`_contradiction`) and its array has the
    expected shape and hash; else (None, why it is not used), why being None where there is no entry."""
    meta = _read_json(cache_dir, f"inputs-{key}.json")
    if not meta:
        there = _cache_ready(cache_dir) and os.path.lexists(cache_dir / f"inputs-{key}.json")
        return None, "it is not a regular file holding an entry" if there else None
    decoded_sha256 = meta.get("decoded_sha256")
    if meta.get("files_sha256") != listed.files_sha256 or not isinstance(decoded_sha256, str):
        return None, "it is not the entry of these image files"
    sizes = None
    if rect_stride is not None:
        try:
            sizes = np.asarray(meta.get("sizes"), dtype=np.int64)
        except (TypeError, ValueError, OverflowError):
            return None, "its image sizes are not a table of numbers"
        if sizes.shape != (shape[0], 4) or not sizes_hold(sizes, shape[1], rect_stride, max_pixels):
            # each content size must be what LetterBox makes of its original
            return None, "its image sizes are not what LetterBox makes of its original sizes"
    check_host_memory(shape[0], shape[2])
    stacked = _map_entry(cache_dir, f"inputs-{key}.npy", shape)
    if stacked is None:
        return None, "its array is missing, or not the array of these images"
    why = _contradiction(stacked, sizes, paths, listed, shape[2], rect_stride, max_pixels)
    if why:
        return None, why
    found = array_sha256(stacked) if sizes is None else rect_digest(stacked, sizes)
    if found != decoded_sha256:
        return None, "its array no longer has the hash stored with it"
    with warnings.catch_warnings():  # read-only memory: batches are copies, the mapping is never written
        warnings.simplefilter("ignore", UserWarning)
        images = torch.from_numpy(stacked)
    if sizes is None:
        return InputCache(images, listed.files_sha256, decoded_sha256), None
    return RectInputCache(images, listed.files_sha256, decoded_sha256, sizes=sizes, imgsz=shape[1],
                          stride=rect_stride), None


def _print_note(text: str) -> None:
    print(f"  note: {text}", file=sys.stderr)


_IN_PROCESS: dict[tuple[Any, ...], InputCache] | None = None  # a study worker's inputs (`share_in_process`)


def share_in_process() -> None:
    """From now on this process reads each set of inputs once: a study worker holds every model, and each model's
    run asks for the same inputs (the same files, imgsz and --rect stride), which need not be hashed again."""
    global _IN_PROCESS
    _IN_PROCESS = {}


def cached_inputs(cache_dir: Path, paths: Sequence[str | Path], imgsz: int, max_pixels: int = MAX_IMAGE_PIXELS,
                  rect_stride: int | None = None,
                  note: Callable[[str], None] | None = None) -> tuple[InputCache, bool]:
    """Decoded inputs from the cache when the files, imgsz, rect and versions match and the entry's claims hold
    for the image files; else decoded and stored. After `share_in_process`, the inputs this process already read.

    `rect_stride`: the model's stride for `--rect` inputs (`detbench.data.rect`); None for square ones.
    `note`: told (one line) why an entry that was there was not used; None: the line goes to stderr."""
    if _IN_PROCESS is None:
        return _stored_inputs(cache_dir, paths, imgsz, max_pixels, rect_stride, note)
    key = (str(cache_dir), tuple(map(str, paths)), imgsz, max_pixels, rect_stride)
    if key in _IN_PROCESS:
        return _IN_PROCESS[key], True
    inputs, reused = _stored_inputs(cache_dir, paths, imgsz, max_pixels, rect_stride, note)
    _IN_PROCESS[key] = inputs
    return inputs, reused


def _stored_inputs(cache_dir: Path, paths: Sequence[str | Path], imgsz: int, max_pixels: int,
                   rect_stride: int | None, note: Callable[[str], None] | None) -> tuple[InputCache, bool]:
    def decode() -> InputCache:
        if rect_stride is None:
            return decode_images(paths, imgsz, max_pixels)
        return decode_rect_images(paths, imgsz, rect_stride, max_pixels)

    listed = read_listed_files(paths, max_pixels)
    if listed is None:
        return decode(), False  # it names the unreadable files
    files_sha256 = listed.files_sha256
    rect = "" if rect_stride is None else f"|rect{rect_stride}"
    key = hashlib.sha256(f"{files_sha256}|{imgsz}{rect}|{_versions()}".encode()).hexdigest()[:32]
    shape = (len(paths), 3, imgsz, imgsz) if rect_stride is None else (len(paths), imgsz, imgsz, 3)
    stored, why = _load_inputs(cache_dir, key, paths, listed, shape, rect_stride, max_pixels)
    if stored is not None:
        return stored, True
    inputs = decode()
    if why:
        (note or _print_note)(f"set-up cache entry {cache_dir / f'inputs-{key}.json'} not used: {why}; the inputs "
                              f"were decoded from the images again and the entry replaced")
    array = inputs.images.numpy()
    if array.nbytes <= MAX_INPUT_BYTES and inputs.files_sha256 == files_sha256:
        meta: dict[str, Any] = {"files_sha256": files_sha256, "imgsz": imgsz, "decoded_sha256": inputs.decoded_sha256}
        if isinstance(inputs, RectInputCache):
            meta.update(rect_stride=rect_stride, sizes=inputs.sizes.tolist())
        _write_entry(cache_dir, f"inputs-{key}.npy", lambda handle: np.save(handle, array, allow_pickle=False))
        record = (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode("utf-8")
        _write_entry(cache_dir, f"inputs-{key}.json", lambda handle: handle.write(record))
    return inputs, False
