"""A forged --rect set-up cache entry, made as an attacker would: shared by the in-process and the CLI tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from detbench.data.rect import RectInputCache, content_size, rect_digest, sizes_hold
from detbench.data.synthetic import make_dataset
from detbench.limits import MAX_IMAGE_PIXELS

IMGSZ, STRIDE = 128, 32  # 240x320 -> 96x128, 320x240 -> 128x96, 256x256 -> 128x128: true rectangles


@pytest.fixture(scope="module")
def rect_images(tmp_path_factory) -> list[str]:
    """8 synthetic JPEGs of the four sizes make_dataset draws."""
    root = tmp_path_factory.mktemp("rect-images")
    make_dataset(root, n_train=0, n_val=8, seed=3)
    return sorted(str(p) for p in (root / "images" / "val").glob("*.jpg"))


def entry(cache: Path) -> tuple[Path, dict, np.ndarray]:
    (meta_path,) = cache.glob("inputs-*.json")
    (array_path,) = cache.glob("inputs-*.npy")
    return meta_path, json.loads(meta_path.read_text()), np.load(array_path)


def forge_original_sizes(cache: Path, which: list[int] | None = None) -> dict[str, int]:
    """What an attacker does: each chosen image's original height rewritten to a tenth of its width, its content
    size made what LetterBox makes of that, and the entry's hash recomputed with detbench's own function. Returns
    the shapes (batch 1) that a run trusting the entry would time."""
    meta_path, meta, slots = entry(cache)
    sizes = np.asarray(meta["sizes"], dtype=np.int64)
    for index in which if which is not None else range(len(sizes)):
        width = int(sizes[index, 3])
        sizes[index, 2] = max(1, width // 10)
        sizes[index, :2] = content_size(int(sizes[index, 2]), width, IMGSZ, STRIDE)
    assert sizes_hold(sizes, IMGSZ, STRIDE, MAX_IMAGE_PIXELS)  # every check that compares stored values passes
    meta.update(sizes=sizes.tolist(), decoded_sha256=rect_digest(slots, sizes))
    meta_path.write_text(json.dumps(meta))
    trusted = RectInputCache(images=torch.from_numpy(slots), files_sha256=meta["files_sha256"],
                             decoded_sha256=meta["decoded_sha256"], sizes=sizes, imgsz=IMGSZ, stride=STRIDE)
    return trusted.shape_counts(1)
