"""Decode the listed images once into a letterboxed uint8 cache and serve batches from it.

Each image is read with OpenCV (BGR), letterboxed to a square `imgsz` the way
Ultralytics' predictor does (aspect kept, centred, padded with 114), converted
to RGB CHW and kept as uint8 on the host. A batch is the next `batch` images,
cycling through the list, moved to the device and scaled to [0, 1] outside
the timed region.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from detbench.errors import DetbenchError


def letterbox(image: np.ndarray, imgsz: int) -> np.ndarray:
    """Resize keeping the aspect ratio, then pad to imgsz x imgsz (centred, value 114)."""
    from ultralytics.data.augment import LetterBox

    return LetterBox(new_shape=(imgsz, imgsz), auto=False, scaleup=True, center=True)(image=image)


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


def _unreadable_error(missing: list[str], broken: list[str], total: int) -> DetbenchError:
    problems = [f"{len(missing)} missing"] if missing else []
    problems += [f"{len(broken)} not decodable"] if broken else []
    first = (missing + broken)[0]
    return DetbenchError(f"benchmark list: {', '.join(problems)} of {total} images (first: {first}); "
                         f"restore them, or delete the list to draw a new one")


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _decode(data: bytes, flags: int) -> np.ndarray | None:
    """OpenCV's decode, None for anything it cannot decode (it raises for some damaged files)."""
    if not data:
        return None
    try:
        return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error:
        return None


def check_images(paths: Sequence[str | Path]) -> None:
    """Fail, naming the first and counting all, if any image is missing or cannot be decoded.

    Decodes at 1/8 scale: fast enough to run before a new list is written.
    """
    missing, broken = [], []
    for raw in paths:
        data = _read(Path(raw))
        if data is None:
            missing.append(str(raw))
        elif _decode(data, cv2.IMREAD_REDUCED_COLOR_8) is None:
            broken.append(str(raw))
    if missing or broken:
        raise _unreadable_error(missing, broken, len(paths))


def check_host_memory(n_images: int, imgsz: int) -> None:
    """Refuse a cache that cannot fit in the memory available now (it is held for the whole run)."""
    import psutil

    needed = n_images * 3 * imgsz * imgsz
    available = psutil.virtual_memory().available
    if needed > 0.8 * available:
        raise DetbenchError(f"--imgsz {imgsz}: {n_images} letterboxed images need {needed / 2**30:.1f} GiB of host "
                            f"memory, {available / 2**30:.1f} GiB is available; lower --imgsz or --benchmark_size")


def decode_images(paths: Sequence[str | Path], imgsz: int) -> InputCache:
    """Read, letterbox and stack every image; fail naming the unreadable ones."""
    check_host_memory(len(paths), imgsz)
    arrays, missing, broken = [], [], []
    files_hash = hashlib.sha256()
    for raw in paths:
        path = Path(raw)
        data = _read(path)
        if data is None:
            missing.append(str(path))
            continue
        image = _decode(data, cv2.IMREAD_COLOR)
        if image is None:
            broken.append(str(path))
            continue
        files_hash.update(hashlib.sha256(data).digest())
        boxed = letterbox(image, imgsz)
        arrays.append(np.ascontiguousarray(boxed[:, :, ::-1].transpose(2, 0, 1)))
    if missing or broken:
        raise _unreadable_error(missing, broken, len(paths))
    stacked = np.stack(arrays)
    return InputCache(
        images=torch.from_numpy(stacked),
        files_sha256=files_hash.hexdigest(),
        decoded_sha256=hashlib.sha256(stacked.tobytes()).hexdigest(),
    )
