"""A set-up cache entry is used only where what it says holds for the image files themselves.

Whoever can write `.detbench-cache/` can rewrite an entry and recompute every hash it stores with detbench's own
functions, so the stored values agree with each other. Each test here forges an entry that way; without the
check against the files (header sizes, decoded spot checks) the run would time the forged shapes.
"""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest
from rect_forgery import IMGSZ, STRIDE, entry, forge_original_sizes

from detbench.data import cache as setup_cache
from detbench.data.inputs import array_sha256, decode_images
from detbench.data.rect import RectInputCache, content_size, decode_rect_images, rect_digest


@pytest.fixture(scope="module")
def images(rect_images) -> list[str]:
    return rect_images


def test_forged_rect_sizes_with_a_recomputed_hash_are_not_used_and_the_true_shapes_are_timed(tmp_path, images):
    fresh = decode_rect_images(images, IMGSZ, STRIDE)
    setup_cache.cached_inputs(tmp_path, images, IMGSZ, rect_stride=STRIDE)
    forged_shapes = forge_original_sizes(tmp_path)
    assert forged_shapes != fresh.shape_counts(1)  # the forgery would change what is timed

    notes: list[str] = []
    inputs, reused = setup_cache.cached_inputs(tmp_path, images, IMGSZ, rect_stride=STRIDE, note=notes.append)
    assert not reused and isinstance(inputs, RectInputCache)
    assert inputs.shape_counts(1) == fresh.shape_counts(1) and inputs.shape_counts(3) == fresh.shape_counts(3)
    assert (inputs.files_sha256, inputs.decoded_sha256) == (fresh.files_sha256, fresh.decoded_sha256)
    (note,) = notes
    assert "not used" in note and images[0] in note and "decoding it gives" in note and "\n" not in note
    again, reused = setup_cache.cached_inputs(tmp_path, images, IMGSZ, rect_stride=STRIDE, note=notes.append)
    assert reused and again.shape_counts(1) == fresh.shape_counts(1) and len(notes) == 1  # the entry was replaced


def test_the_header_check_alone_refuses_forged_sizes(tmp_path, images, monkeypatch):
    """With no image decoded at random, the sizes read from every header still catch one forged image."""
    monkeypatch.setattr(setup_cache, "_spot_checks", lambda count: [])
    setup_cache.cached_inputs(tmp_path, images, IMGSZ, rect_stride=STRIDE)
    forge_original_sizes(tmp_path, which=[5])
    notes: list[str] = []
    inputs, reused = setup_cache.cached_inputs(tmp_path, images, IMGSZ, rect_stride=STRIDE, note=notes.append)
    assert not reused and inputs.shape_counts(1) == decode_rect_images(images, IMGSZ, STRIDE).shape_counts(1)
    assert len(notes) == 1 and images[5] in notes[0]


@pytest.mark.parametrize("rect", [False, True])
def test_forged_pixels_with_a_recomputed_hash_are_not_used(tmp_path, images, rect):
    stride = STRIDE if rect else None
    fresh = decode_rect_images(images, IMGSZ, STRIDE) if rect else decode_images(images, IMGSZ)
    setup_cache.cached_inputs(tmp_path, images, IMGSZ, rect_stride=stride)
    meta_path, meta, array = entry(tmp_path)
    forged = np.full_like(array, 114)  # every image replaced by plain padding
    np.save(next(tmp_path.glob("inputs-*.npy")), forged)
    sizes = np.asarray(meta["sizes"], dtype=np.int64) if rect else None
    meta["decoded_sha256"] = rect_digest(forged, sizes) if rect else array_sha256(forged)
    meta_path.write_text(json.dumps(meta))
    notes: list[str] = []
    inputs, reused = setup_cache.cached_inputs(tmp_path, images, IMGSZ, rect_stride=stride, note=notes.append)
    assert not reused and inputs.decoded_sha256 == fresh.decoded_sha256
    assert len(notes) == 1 and "pixels of image" in notes[0]


def test_an_image_turned_by_its_exif_orientation_keeps_its_entry(tmp_path, images):
    """OpenCV turns an image by its EXIF orientation, its header does not: the decoded size decides, and an
    honest entry is reused without a note."""
    from PIL import Image

    turned = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    buffer = io.BytesIO()
    Image.fromarray(cv2.imread(images[0])[:, :, ::-1]).save(buffer, "JPEG", exif=exif.tobytes())
    turned.write_bytes(buffer.getvalue())
    paths = [*images[1:4], str(turned)]
    cache = tmp_path / "cache"
    first, _ = setup_cache.cached_inputs(cache, paths, IMGSZ, rect_stride=STRIDE)
    assert first.sizes[-1, 2:].tolist() == list(cv2.imread(images[0]).shape[1::-1])  # width, height swapped
    notes: list[str] = []
    second, reused = setup_cache.cached_inputs(cache, paths, IMGSZ, rect_stride=STRIDE, note=notes.append)
    assert reused and notes == [] and second.decoded_sha256 == first.decoded_sha256


def test_an_entry_giving_a_turned_image_its_header_size_is_not_used(tmp_path, images, monkeypatch):
    """The header of an image with EXIF orientation 6 gives its sides swapped from what decoding gives: an entry
    that claims the header's size agrees with the header, so only decoding can refute it (random checks off)."""
    from PIL import Image

    monkeypatch.setattr(setup_cache, "SPOT_CHECKS", 0)
    turned = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(cv2.imread(images[0])[:, :, ::-1]).save(buffer, "JPEG", exif=exif.tobytes())
    turned.write_bytes(buffer.getvalue())
    paths = [*images[1:4], str(turned)]
    cache = tmp_path / "cache"
    setup_cache.cached_inputs(cache, paths, IMGSZ, rect_stride=STRIDE)
    meta_path, meta, slots = entry(cache)
    sizes = np.asarray(meta["sizes"], dtype=np.int64)
    height, width = int(sizes[-1, 3]), int(sizes[-1, 2])  # what the header says: the decoded sides swapped
    sizes[-1, 2:] = (height, width)
    sizes[-1, :2] = content_size(height, width, IMGSZ, STRIDE)
    meta.update(sizes=sizes.tolist(), decoded_sha256=rect_digest(slots, sizes))
    meta_path.write_text(json.dumps(meta))
    notes: list[str] = []
    _inputs, reused = setup_cache.cached_inputs(cache, paths, IMGSZ, rect_stride=STRIDE, note=notes.append)
    assert not reused and len(notes) == 1 and "turned.jpg" in notes[0]
