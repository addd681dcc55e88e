"""Set-up reuse across processes: decoded inputs and FLOPs counts, keyed by content, never stale."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import torch

from detbench.data import cache as setup_cache
from detbench.data.benchmark_list import sample_list
from detbench.data.inputs import decode_images
from detbench.data.rect import RectInputCache, decode_rect_images, rect_digest


@pytest.fixture(scope="module")
def paths(dataset) -> list[str]:
    return [str(p) for p in sample_list(dataset, 8, 42).paths]


def test_inputs_are_reused_only_while_files_and_array_are_unchanged(tmp_path, paths):
    fresh = decode_images(paths, 64)
    first, reused = setup_cache.cached_inputs(tmp_path, paths, 64)
    assert not reused and first.decoded_sha256 == fresh.decoded_sha256
    second, reused = setup_cache.cached_inputs(tmp_path, paths, 64)
    assert reused and torch.equal(second.images, fresh.images)
    assert (second.files_sha256, second.decoded_sha256) == (fresh.files_sha256, fresh.decoded_sha256)
    assert not setup_cache.cached_inputs(tmp_path, paths, 96)[1]  # another imgsz: another entry

    for path in tmp_path.glob("inputs-*.npy"):  # one pixel changed in every stored array: none may be used
        data = np.load(path)
        data.flat[0] ^= 1
        np.save(path, data)
    third, reused = setup_cache.cached_inputs(tmp_path, paths, 64)
    assert not reused and third.decoded_sha256 == fresh.decoded_sha256


def test_rect_inputs_are_their_own_entry_and_reused_only_with_their_sizes(tmp_path, paths):
    fresh = decode_rect_images(paths, 64, 32)
    first, reused = setup_cache.cached_inputs(tmp_path, paths, 64, rect_stride=32)
    assert not reused and isinstance(first, RectInputCache) and first.decoded_sha256 == fresh.decoded_sha256
    second, reused = setup_cache.cached_inputs(tmp_path, paths, 64, rect_stride=32)
    assert reused and isinstance(second, RectInputCache) and second.decoded_sha256 == fresh.decoded_sha256
    for i in range(len(paths)):
        assert torch.equal(second.batch(i, 1, torch.device("cpu"), torch.float32),
                           fresh.batch(i, 1, torch.device("cpu"), torch.float32))
    square, reused = setup_cache.cached_inputs(tmp_path, paths, 64)
    assert not reused and not isinstance(square, RectInputCache)  # the square inputs are another entry

    for path in tmp_path.glob("inputs-*.json"):  # a stored size changed: the entry's hash no longer holds
        meta = json.loads(path.read_text())
        if "sizes" in meta:
            meta["sizes"][0][1] -= 1
            path.write_text(json.dumps(meta))
    third, reused = setup_cache.cached_inputs(tmp_path, paths, 64, rect_stride=32)
    assert not reused and third.decoded_sha256 == fresh.decoded_sha256


def test_a_forged_rect_entry_with_a_matching_hash_but_other_shapes_is_not_used(tmp_path, paths):
    """Whoever can write the cache folder can make a consistent hash; the content sizes must still be what
    LetterBox makes of the originals, or the model would be timed on other shapes."""
    first, _ = setup_cache.cached_inputs(tmp_path, paths, 64, rect_stride=32)
    (meta_path,) = tmp_path.glob("inputs-*.json")
    meta = json.loads(meta_path.read_text())
    sizes = np.asarray(meta["sizes"])
    sizes[0, 0] = max(1, sizes[0, 0] // 2)  # a smaller input for the first image
    stored = np.load(next(tmp_path.glob("inputs-*.npy")))
    meta.update(sizes=sizes.tolist(), decoded_sha256=rect_digest(stored, sizes))
    meta_path.write_text(json.dumps(meta))
    again, reused = setup_cache.cached_inputs(tmp_path, paths, 64, rect_stride=32)
    assert not reused and again.decoded_sha256 == first.decoded_sha256


def test_symlinked_cache_folder_is_never_used_or_written_through(tmp_path, paths, yaml_checkpoint):
    outside = tmp_path / "outside"
    outside.mkdir()
    cache = tmp_path / "out" / setup_cache.CACHE_DIRNAME
    cache.parent.mkdir()
    cache.symlink_to(outside, target_is_directory=True)
    assert "is a symlink" in setup_cache.cache_problem(cache)
    fresh = decode_images(paths, 64)
    for _ in range(2):
        inputs, reused = setup_cache.cached_inputs(cache, paths, 64)
        assert not reused and inputs.decoded_sha256 == fresh.decoded_sha256
    assert list(outside.iterdir()) == [] and cache.is_symlink()

    setup_cache.cached_inputs(outside, paths, 64)  # a real cache, then linked: still not read through the link
    assert not setup_cache.cached_inputs(cache, paths, 64)[1]
    not_a_folder = tmp_path / "file-cache"
    not_a_folder.write_text("x")
    assert "not a folder" in setup_cache.cache_problem(not_a_folder)
    assert not setup_cache.cached_inputs(not_a_folder, paths, 64)[1] and not_a_folder.read_text() == "x"
    assert setup_cache.cache_problem(tmp_path / "absent") is None


def test_symlinked_cache_entries_are_not_read_and_are_replaced_not_written_through(tmp_path, paths):
    cache, outside = tmp_path / "cache", tmp_path / "outside"
    cache.mkdir()
    outside.mkdir()
    setup_cache.cached_inputs(cache, paths, 64)
    for entry in list(cache.glob("inputs-*")):  # each stored entry swapped for a link to a copy outside
        copy = outside / entry.name
        copy.write_bytes(entry.read_bytes())
        entry.unlink()
        entry.symlink_to(copy)
    inputs, reused = setup_cache.cached_inputs(cache, paths, 64)
    assert not reused
    assert all(not entry.is_symlink() for entry in cache.glob("inputs-*"))
    assert setup_cache.cached_inputs(cache, paths, 64)[1]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_cache_entries_get_the_mode_open_would_give(tmp_path, paths, umask, mode):
    old = os.umask(umask)
    try:
        setup_cache.cached_inputs(tmp_path / "cache", paths, 64)
    finally:
        os.umask(old)
    entries = sorted((tmp_path / "cache").iterdir())
    assert len(entries) == 2 and {stat.S_IMODE(e.stat().st_mode) for e in entries} == {mode}
