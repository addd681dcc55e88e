"""Decode the listed images once into a letterboxed uint8 cache and serve batches from it.

Each image is read with OpenCV (BGR), letterboxed to a square `imgsz` the way
Ultralytics' predictor does (aspect kept, centred, padded with 114), converted
to RGB CHW and kept as uint8 on the host. A batch is the next `batch` images,
cycling through the list, moved to the device and scaled to [0, 1] outside
the timed region.

Every image goes through `read_image` before it is decoded (checking the
list, decoding it here, hashing it for the cache, decoding the originals for
--pipeline):

- the file is read with `safe_io`: a FIFO, device, socket or folder (also
  behind a symlink) is refused before it is opened, and so is a file above
  MAX_IMAGE_BYTES; a missing file is counted and named with the others;
- its width and height are read from its header (no pixel data is decoded)
  and an image above `max_pixels` (MAX_IMAGE_PIXELS, raised with
  --max-image-pixels) is refused, naming the image, its size and the limit: a
  30000x30000 PNG of 875 KiB would otherwise take gigabytes to decode. JPEG
  and PNG headers are read by a small parser (PNG: IHDR must be the first
  chunk; JPEG: the first SOFn within MAX_JPEG_SEGMENTS segments), since
  Pillow walks every marker or chunk before them in Python: millions of
  empty ones would take minutes and gigabytes. Other formats are read by
  Pillow. A TIFF whose tiles or strips are larger than its declared size
  (a 1x1 image holding one 16384x16368 tile) is checked by its tile size,
  which is what OpenCV allocates;
- a file whose header Pillow cannot read, or that Pillow reads as a format
  OpenCV does not decode (CV_FORMATS), is counted as not decodable, even
  where OpenCV could decode it (e.g. PFM, Radiance HDR): its size cannot be
  known before decoding, and OpenCV's reduced modes bound memory only for
  JPEG. Convert such images to PNG or JPEG.

The cache is filled in place (no list of arrays and no `np.stack` copy) and
hashed through a memoryview (no `tobytes` copy); the hash is the same as
`sha256(array.tobytes())`.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from detbench.errors import DetbenchError
from detbench.files.safe_io import read_regular_file
from detbench.limits import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS

# Pillow's names of the formats OpenCV decodes, which both tell by the file's first bytes
CV_FORMATS = frozenset({"AVIF", "BMP", "GIF", "JPEG", "JPEG2000", "MPO", "PNG", "PPM", "SUN", "TIFF", "WEBP"})
MAX_JPEG_SEGMENTS = 1_000  # markers before the frame header (a camera JPEG has about 10)
MAX_JPEG_HEADER_BYTES = 16 * 2**20  # bytes before it (EXIF, ICC and XMP segments are 64 KiB at most each)
_IMAGE_FIX = "replace it with a regular image file, or take it out of the val split"
_FORMATS_HINT = "images are decoded only in a format whose size Pillow can read, e.g. JPEG, PNG, BMP, TIFF, WebP"


def letterbox_for(imgsz: int, stride: int, rect: bool):
    """Ultralytics' LetterBox: the minimal rectangle (a multiple of `stride`) with `rect`, else the square."""
    # imported here, not at the top: loads Ultralytics, which only this path needs
    from ultralytics.data.augment import LetterBox

    return LetterBox(new_shape=(imgsz, imgsz), auto=rect, scaleup=True, center=True, stride=stride)


def letterbox(image: np.ndarray, imgsz: int) -> np.ndarray:
    """Resize keeping the aspect ratio, pad to imgsz x imgsz (centred, value 114): BGR HWC in, RGB CHW out."""
    boxed = letterbox_for(imgsz, 32, rect=False)(image=image)  # the stride only matters to a rectangle
    return boxed[:, :, ::-1].transpose(2, 0, 1)


class FilesHash:
    """The hash of a list of files as reports record it (`files_sha256`): sha256 of each file's sha256, in order."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()

    def add(self, data: bytes) -> bytes:
        """Add one file's bytes; returns that file's own sha256 (digest bytes)."""
        digest = hashlib.sha256(data).digest()
        self._digest.update(digest)
        return digest

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def array_sha256(array: np.ndarray) -> str:
    """sha256 of a C-contiguous array's bytes, read in place (equal to sha256(array.tobytes()))."""
    return hashlib.sha256(memoryview(np.ascontiguousarray(array)).cast("B")).hexdigest()


@dataclass
class InputCache:
    images: torch.Tensor  # uint8, [N, 3, imgsz, imgsz], RGB
    files_sha256: str  # hash of the raw image files' bytes, in list order
    decoded_sha256: str  # hash of the letterboxed uint8 tensor

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def batch_indices(self, iteration: int, batch: int) -> list[int]:
        start = iteration * batch
        return [(start + offset) % len(self) for offset in range(batch)]

    def batch(self, iteration: int, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The iteration's batch on `device`, as `dtype` in [0, 1]."""
        chunk = self.images[self.batch_indices(iteration, batch)]
        return chunk.to(device, non_blocking=True).to(dtype).div_(255.0)


def read_image_file(path: Path) -> bytes | None:
    """The file's bytes (a regular file of at most MAX_IMAGE_BYTES); None if there is no such file."""
    if not os.path.exists(path):  # a stat: a missing file (or dangling link) is counted, not an error
        return None
    return read_regular_file(path, f"image {path}", MAX_IMAGE_BYTES, _IMAGE_FIX)


class HeaderError(Exception):
    """A header that cannot be read in bounded time: (problem, fix) as the exception's arguments."""


def _png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the IHDR chunk, which must come first (as libpng requires); None otherwise."""
    if data[8:16] != b"\x00\x00\x00\x0dIHDR" or len(data) < 24:
        return None
    width, height = struct.unpack(">II", data[16:24])
    return (width, height) if width > 0 and height > 0 else None


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, int]]:
    """(marker, offset) of each JPEG segment that has a length, up to the scan; stops at anything that is not a
    marker. Raises HeaderError past MAX_JPEG_SEGMENTS segments or MAX_JPEG_HEADER_BYTES bytes."""
    offset, segments = 2, 0
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            return
        marker = data[offset + 1]
        if marker == 0xFF:  # a fill byte
            offset += 1
            continue
        segments += 1
        if segments > MAX_JPEG_SEGMENTS or offset > MAX_JPEG_HEADER_BYTES:
            raise HeaderError(f"more than {MAX_JPEG_SEGMENTS:,} markers or {MAX_JPEG_HEADER_BYTES // 2**20} MiB "
                              f"come before its frame header (SOF)",
                              "re-save it without the extra markers, or take it out of the val split")
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length
            offset += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan
            return
        yield marker, offset
        offset += 2 + struct.unpack(">H", data[offset + 2:offset + 4])[0]


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the first SOFn segment; None if there is none. Raises HeaderError where it lies
    beyond MAX_JPEG_SEGMENTS segments or MAX_JPEG_HEADER_BYTES bytes."""
    for marker, offset in _jpeg_segments(data):
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if offset + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[offset + 5:offset + 9])
            return (width, height) if width > 0 and height > 0 else None
    return None


def may_be_turned(data: bytes) -> bool:
    """Whether decoding may give the image's width and height swapped from its header's: OpenCV turns an image by
    its EXIF orientation (5 to 8 swap the sides). A JPEG's orientation is read; another format that carries EXIF
    at all (PNG's eXIf, WebP's EXIF chunk, TIFF) counts as turned."""
    if data.startswith(b"\xff\xd8\xff"):
        try:
            orientation = _jpeg_orientation(data)
        except HeaderError:  # markers without end past the frame header: decoding decides
            return True
        return orientation is not None and orientation >= 5
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return b"eXIf" in data[:MAX_JPEG_HEADER_BYTES]
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return b"EXIF" in data[:MAX_JPEG_HEADER_BYTES]
    return data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _jpeg_orientation(data: bytes) -> int | None:
    """The EXIF orientation of a JPEG (its first APP1 Exif segment before the scan); None if it has none."""
    for marker, offset in _jpeg_segments(data):
        length = struct.unpack(">H", data[offset + 2:offset + 4])[0]
        payload = data[offset + 4:offset + 2 + length]
        if marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
            return _tiff_orientation(payload[6:])
    return None


def _tiff_orientation(tiff: bytes) -> int | None:
    """Tag 274 (Orientation) of a TIFF header's first IFD; None if absent or damaged."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return None
    ifd = struct.unpack(order + "I", tiff[4:8])[0]
    if ifd + 2 > len(tiff):
        return None
    count = struct.unpack(order + "H", tiff[ifd:ifd + 2])[0]
    for index in range(min(count, 1000)):
        entry = ifd + 2 + 12 * index
        if entry + 12 > len(tiff):
            return None
        tag, kind = struct.unpack(order + "HH", tiff[entry:entry + 4])
        if tag == 274 and kind == 3:  # SHORT
            return struct.unpack(order + "H", tiff[entry + 8:entry + 10])[0]
    return None


def tiff_tile_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of one tile (or strip) of a TIFF, which OpenCV allocates per decode; None if not a TIFF."""
    if data[:4] not in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return None
    # imported here, not at the top: loads Pillow, which only this path needs
    from PIL import TiffImagePlugin

    try:
        opened = TiffImagePlugin.TiffImageFile(io.BytesIO(data))
        tags, (width, height) = opened.tag_v2, opened.size
        if 322 in tags or 323 in tags:  # TileWidth, TileLength
            return int(tags.get(322, width)), int(tags.get(323, height))
        return int(width), min(int(tags.get(278, height)), int(height))  # RowsPerStrip
    except Exception:  # a damaged header: header_size decides
        return None


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the image's header, read without decoding pixels; None if it cannot.

    JPEG and PNG (told by the leading signature that OpenCV also uses) are read by `_jpeg_size`/`_png_size`,
    which may raise HeaderError. Other formats are read by Pillow:

    its openers are tried in `Image.open`'s order; the first that takes the file decides. Only formats
    that OpenCV recognises by the same leading signature count (CV_FORMATS): a file Pillow takes as another
    format (a polyglot, e.g. an HDR image with a PCD marker) could be decoded by OpenCV at any size. Pillow's
    own decompression-bomb check is not applied: detbench's limit, which may be raised above it, is.
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png_size(data)
    if data.startswith(b"\xff\xd8\xff"):
        return _jpeg_size(data)
    # imported here, not at the top: loads Pillow, which only this path needs
    from PIL import Image

    Image.init()
    stream, prefix = io.BytesIO(data), data[:16]
    for name in Image.ID:
        factory, accept = Image.OPEN[name]
        try:
            accepted = accept(prefix) if accept else True
            if not accepted or isinstance(accepted, str):
                continue
            stream.seek(0)
            opened = factory(stream, "")
        except Exception:  # a damaged header raises anything from SyntaxError to struct.error: not this format
            continue
        width, height = opened.size
        if opened.format in CV_FORMATS and width > 0 and height > 0:
            return int(width), int(height)
        return None
    return None


def check_pixels(path: Path, size: tuple[int, int], max_pixels: int, what: str = "") -> None:
    """Refuse an image (or, with `what`, a part of one) of more than `max_pixels` pixels, before it is decoded."""
    width, height = size
    if width * height > max_pixels:
        raise DetbenchError(f"image {path}: {what}{width}x{height} pixels ({width * height / 1e6:.1f} megapixels) is "
                            f"above the limit of {max_pixels:,} pixels; raise the limit with --max-image-pixels "
                            f"if you trust the image, or take it out of the val split")


def _decode(data: bytes, flags: int) -> np.ndarray | None:
    """OpenCV's decode, None for anything it cannot decode (it raises for some damaged files)."""
    try:
        return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error:
        return None


def read_image_header(path: Path, max_pixels: int) -> tuple[bytes | None, tuple[int, int] | None]:
    """(file bytes, (width, height) from the header): (None, None) if missing, (bytes, None) if unreadable.

    Raises a one-line DetbenchError for a file that is not a regular file, too large, or above `max_pixels`.
    """
    data = read_image_file(path)
    if data is None:
        return None, None
    try:
        size = header_size(data) if data else None
    except HeaderError as exc:
        problem, fix = exc.args
        raise DetbenchError(f"image {path}: {problem}; {fix}") from None
    if size is not None:
        check_pixels(path, size, max_pixels)
        tile = tiff_tile_size(data)
        if tile is not None and tile[0] * tile[1] > size[0] * size[1]:
            check_pixels(path, tile, max_pixels, "a TIFF tile of ")
    return data, size


def read_image(path: Path, flags: int, max_pixels: int) -> tuple[bytes | None, np.ndarray | None]:
    """(file bytes, decoded image): (None, None) if missing, (bytes, None) if not decodable.

    The size is checked from the header (`read_image_header`) before OpenCV decodes anything.
    """
    data, size = read_image_header(path, max_pixels)
    if data is None or size is None:
        return data, None
    return data, _decode(data, flags)


def check_images(paths: Sequence[str | Path], max_pixels: int = MAX_IMAGE_PIXELS) -> None:
    """Fail, naming the first and counting all, if any image is missing or cannot be decoded.

    Decodes at 1/8 scale: fast enough to run before a new list is written.
    """
    decode_each(paths, lambda index, image: None, max_pixels, cv2.IMREAD_REDUCED_COLOR_8)


def check_host_memory(n_images: int, imgsz: int, original_pixels: int = 0) -> None:
    """Refuse to hold what cannot fit in the memory available now (it is held for the whole run).

    That is the letterboxed cache (`n_images` of 3 x imgsz x imgsz bytes) and, with --pipeline, the decoded
    originals (3 bytes for each of their `original_pixels`).
    """
    # imported here, not at the top: loads psutil, which only this path needs
    import psutil

    needed = n_images * 3 * imgsz * imgsz + 3 * original_pixels
    available = psutil.virtual_memory().available
    if needed <= 0.8 * available:  # what fits in 80 % of the memory available now
        return
    available /= 2**30
    if original_pixels:
        raise DetbenchError(f"--pipeline: the decoded original images need {needed / 2**30:.1f} GiB of host "
                            f"memory, {available:.1f} GiB is available; lower --benchmark_size or drop --pipeline")
    raise DetbenchError(f"--imgsz {imgsz}: {n_images} letterboxed images need {needed / 2**30:.1f} GiB of host "
                        f"memory, {available:.1f} GiB is available; lower --imgsz or --benchmark_size")


def decode_each(paths: Sequence[str | Path], store: Callable[[int, np.ndarray], None],
                max_pixels: int = MAX_IMAGE_PIXELS, flags: int = cv2.IMREAD_COLOR) -> str:
    """Decode every listed image and hand it (index, BGR uint8) to `store`; the files' hash (`files_sha256`).
    Fails naming the unreadable ones."""
    missing, broken = [], []
    files_hash = FilesHash()
    for index, raw in enumerate(paths):
        data, image = read_image(Path(raw), flags, max_pixels)
        if data is None:
            missing.append(str(raw))
        elif image is None:
            broken.append(str(raw))
        else:
            files_hash.add(data)
            store(index, image)
    if missing or broken:
        problems = [f"{len(missing)} missing"] if missing else []
        problems += [f"{len(broken)} not decodable"] if broken else []
        hint = f"; {_FORMATS_HINT}" if broken else ""
        raise DetbenchError(f"benchmark list: {', '.join(problems)} of {len(paths)} images (first: "
                            f"{(missing + broken)[0]}{hint}); restore them, or delete the list to draw a new one")
    return files_hash.hexdigest()


def decode_images(paths: Sequence[str | Path], imgsz: int, max_pixels: int = MAX_IMAGE_PIXELS) -> InputCache:
    """Read, letterbox and stack every image; fail naming the unreadable ones."""
    check_host_memory(len(paths), imgsz)
    stacked = np.empty((len(paths), 3, imgsz, imgsz), dtype=np.uint8)

    def store(index: int, image: np.ndarray) -> None:
        stacked[index] = letterbox(image, imgsz)

    files_sha256 = decode_each(paths, store, max_pixels)
    return InputCache(images=torch.from_numpy(stacked), files_sha256=files_sha256,
                      decoded_sha256=array_sha256(stacked))
