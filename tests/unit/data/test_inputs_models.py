"""Decoded inputs, model loading and complexity on real images and checkpoints."""

from __future__ import annotations

import pytest
import torch

from detbench.data.benchmark_list import sample_list
from detbench.data.inputs import decode_images
from detbench.errors import DetbenchError
from detbench.models import complexity
from detbench.models.loading import load_model, model_name_for, prepare_for_inference


def test_images_are_letterboxed_once_and_batches_cycle(dataset):
    paths = sample_list(dataset, 5, 42).paths
    cache = decode_images(paths, 64)
    assert cache.images.shape == (5, 3, 64, 64) and cache.images.dtype == torch.uint8
    assert cache.batch_indices(2, 3) == [1, 2, 3]  # (6, 7, 8) mod 5
    batch = cache.batch(0, 2, torch.device("cpu"), torch.float32)
    assert batch.shape == (2, 3, 64, 64) and 0.0 <= batch.min() and batch.max() <= 1.0
    assert decode_images(paths, 64).decoded_sha256 == cache.decoded_sha256
    assert decode_images(paths[::-1], 64).decoded_sha256 != cache.decoded_sha256
    assert decode_images(paths, 96).files_sha256 == cache.files_sha256


def test_decoded_cache_is_bit_identical_to_stacking_each_letterboxed_image(dataset):
    import hashlib

    import cv2
    import numpy as np

    from detbench.data.inputs import array_sha256, letterbox

    paths = sample_list(dataset, 6, 42).paths
    cache = decode_images(paths, 96)
    stacked = np.stack([np.ascontiguousarray(letterbox(cv2.imread(p), 96)) for p in paths])
    assert np.array_equal(cache.images.numpy(), stacked)
    assert cache.decoded_sha256 == hashlib.sha256(stacked.tobytes()).hexdigest() == array_sha256(stacked)
    assert cache.images.numpy().flags.c_contiguous and cache.images.numpy().flags.writeable


def test_missing_and_undecodable_images_are_named(tmp_path, dataset):
    paths = sample_list(dataset, 3, 42).paths
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(DetbenchError, match=r"1 missing, 1 not decodable of 5 images"):
        decode_images([*paths, str(tmp_path / "gone.jpg"), str(broken)], 64)


@pytest.mark.parametrize("weights, name", [
    ("results/runs/ghost/seed0/weights/best.pt", "ghost"),
    ("runs/eca/weights/last.pt", "eca"),
    ("models/yolov8n.pt", "yolov8n"),
    ("yolov8n.yaml", "yolov8n"),
])
def test_model_name_is_the_run_folder(weights, name):
    assert model_name_for(weights) == name


def torch_gflops(model: torch.nn.Module, imgsz: int) -> float | None:
    """GFLOPs by torch.utils.flop_counter on one real forward pass; None if it cannot count."""
    from torch.utils.flop_counter import FlopCounterMode  # imported here: it costs ~0.5 s (triton) per process

    parameter = next(model.parameters())
    image = torch.zeros(1, 3, imgsz, imgsz, dtype=parameter.dtype, device=parameter.device)
    try:
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            model(image)
    except Exception:
        return None
    return counter.get_total_flops() / 1e9


def test_yolov8n_complexity_matches_ultralytics():
    model = load_model("yolov8n.yaml").model
    assert complexity.count_params(model) == 3_157_200
    assert complexity.ultralytics_gflops(model, 640) == pytest.approx(8.86, abs=0.05)
    fused = prepare_for_inference(model)
    assert complexity.count_params(fused) == 3_151_904
    assert complexity.ultralytics_gflops(fused, 640) == pytest.approx(8.7, abs=0.05)
    assert complexity.ultralytics_gflops(fused, 320) == pytest.approx(8.74 / 4, rel=0.01)
    cross_check = torch_gflops(fused, 320)
    assert cross_check == pytest.approx(complexity.ultralytics_gflops(fused, 320), rel=0.05)


def test_unknown_weights_name_is_an_error():
    with pytest.raises(DetbenchError, match="no such file"):
        load_model("does-not-exist")
