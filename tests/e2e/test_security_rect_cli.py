"""A --rect run through the CLI with a forged set-up cache entry times the true shapes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from detbench.data import cache as setup_cache
from detbench.data.rect import RectInputCache, content_size, rect_digest, sizes_hold
from detbench.data.synthetic import make_dataset
from detbench.limits import MAX_IMAGE_PIXELS

IMGSZ, STRIDE = 128, 32  # 240x320 -> 96x128, 320x240 -> 128x96, 256x256 -> 128x128: true rectangles


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[str]:
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


@pytest.mark.slow
def test_cli_rect_run_with_a_forged_entry_times_the_true_shapes_and_says_so(cli, tmp_path, yaml_checkpoint):
    data = make_dataset(tmp_path / "data", n_train=0, n_val=6, seed=4)
    quick = ["bench", "--weights", str(yaml_checkpoint), "--device", "cpu", "--imgsz", str(IMGSZ), "--warmup", "1",
             "--iters", "3", "--threads", "1", "--data", str(data), "--rect"]
    first = cli(*quick, "--name", "a", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    forge_original_sizes(tmp_path / "results" / "bench" / setup_cache.CACHE_DIRNAME)
    second = cli(*quick, "--name", "b", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    a, b = (json.loads((tmp_path / f"results/bench/{name}.json").read_text()) for name in "ab")
    assert b["setup_cache"]["inputs_reused"] is False
    assert b["inputs"]["shapes"] == a["inputs"]["shapes"] and b["inputs"] == a["inputs"]
    assert "set-up cache entry" in second.stdout + second.stderr and "not used" in second.stdout + second.stderr
