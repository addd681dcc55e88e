"""The --pipeline breakdown: stages equal to Ultralytics' predictor steps, sync order on CUDA, a real CLI run."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import ultralytics

from detbench.data.benchmark_list import sample_list
from detbench.data.inputs import decode_images
from detbench.data.rect import decode_rect_images
from detbench.errors import DetbenchError
from detbench.measure.pipeline import STAGES, PipelineStages, decode_originals, run_pipeline_loop
from detbench.measure.timing import StopRule

CPU = torch.device("cpu")
ASSETS = Path(ultralytics.__file__).parent / "assets"


@pytest.fixture(scope="module")
def val_paths(dataset) -> list[str]:
    return [str(p) for p in sample_list(dataset, 6, 42).paths]


def test_preprocess_gives_the_model_exactly_the_cached_input(val_paths):
    cache = decode_images(val_paths, 64)
    originals = decode_originals(val_paths, cache.files_sha256)
    stages = PipelineStages(lambda x: x, 64, CPU)
    for i in range(3):
        expected = cache.batch(i, 2, CPU, torch.float32)
        got = stages.preprocess([originals[j] for j in cache.batch_indices(i, 2)])
        assert got.shape == expected.shape == (2, 3, 64, 64) and got.dtype == torch.float32
        assert torch.equal(got, expected)


def test_originals_must_be_the_cached_files(val_paths, tmp_path):
    copies = []
    for path in val_paths[:2]:
        copy = tmp_path / Path(path).name
        copy.write_bytes(Path(path).read_bytes())
        copies.append(str(copy))
    digest = decode_images(copies, 64).files_sha256
    assert len(decode_originals(copies, digest)) == 2
    image = cv2.imread(copies[0])
    image[0, 0] = 255 - image[0, 0]
    cv2.imwrite(copies[0], image)
    with pytest.raises(DetbenchError, match="changed during the run"):
        decode_originals(copies, digest)


def test_postprocess_is_ultralytics_nms_at_conf_025_iou_07_scaled_to_the_original():
    original = np.zeros((64, 128, 3), dtype=np.uint8)  # h 64, w 128: letterboxed to 64 with gain 0.5, pad 16
    stages = PipelineStages(lambda x: x, 64, CPU)
    x = stages.preprocess([original])
    boxes = torch.tensor([[32.0, 32.0, 10.0, 10.0],  # kept
                          [32.5, 32.0, 10.0, 10.0],  # IoU ~0.9 with the first, lower score: suppressed
                          [10.0, 20.0, 6.0, 6.0],  # score 0.2: below conf 0.25
                          [50.0, 40.0, 4.0, 4.0]])  # kept, other place
    scores = torch.tensor([[0.9, 0.0], [0.8, 0.0], [0.2, 0.0], [0.0, 0.6]])
    preds = torch.cat([boxes, scores], dim=1).T.unsqueeze(0)  # [1, 4 + nc, anchors] as Detect returns
    results = stages.postprocess((preds, None), x, [original])
    assert len(results) == 1 and len(results[0]) == 2 and results[0].orig_shape == (64, 128)
    first, second = results[0].boxes.data
    assert first[:4].tolist() == pytest.approx([54.0, 22.0, 74.0, 42.0])  # (32 -/+ 5) / 0.5, (32 -/+ 5 - 16) / 0.5
    assert first[4].item() == pytest.approx(0.9) and first[5].item() == 0
    assert second[5].item() == 1


@pytest.fixture(scope="module")
def predictor(yaml_checkpoint):
    """Ultralytics' own predictor, set up by a real `predict` at imgsz 320 with its defaults (rect on)."""
    from ultralytics import YOLO

    yolo = YOLO(str(yaml_checkpoint))
    yolo.predict(cv2.imread(str(ASSETS / "bus.jpg")), imgsz=320, device="cpu", verbose=False)
    return yolo.predictor


def test_rect_preprocess_is_the_predictors_for_one_image_and_for_a_mixed_batch(predictor):
    bus, zidane = (cv2.imread(str(ASSETS / name)) for name in ("bus.jpg", "zidane.jpg"))
    stride = int(predictor.model.stride)
    stages = PipelineStages(lambda x: x, 320, CPU, rect=True, stride=stride)
    for batch, shape in (([bus], (1, 3, 320, 256)), ([zidane], (1, 3, 192, 320)), ([bus, zidane], (2, 3, 320, 320))):
        theirs = predictor.preprocess(batch)
        ours = stages.preprocess(batch)
        assert ours.shape == theirs.shape == shape and torch.equal(ours, theirs)
    square = PipelineStages(lambda x: x, 320, CPU, rect=False, stride=stride).preprocess([bus])
    assert square.shape == (1, 3, 320, 320)


def test_the_rect_cache_serves_the_model_what_the_predictor_would(predictor):
    paths = [str(ASSETS / "bus.jpg"), str(ASSETS / "zidane.jpg")]
    cache = decode_rect_images(paths, 320, int(predictor.model.stride))
    for i, path in enumerate(paths):
        assert torch.equal(cache.batch(i, 1, CPU, torch.float32), predictor.preprocess([cv2.imread(path)]))
    both = cache.batch(0, 2, CPU, torch.float32)
    assert torch.equal(both, predictor.preprocess([cv2.imread(p) for p in paths]))
    assert cache.shape_counts(1) == {"320x256": 1, "192x320": 1} and cache.shape_counts(2) == {"320x320": 1}


def test_postprocess_builds_the_predictors_results(predictor):
    bus = cv2.imread(str(ASSETS / "bus.jpg"))
    x = predictor.preprocess([bus])
    boxes = torch.tensor([[100.0, 150.0, 40.0, 80.0], [200.0, 60.0, 30.0, 30.0], [120.0, 250.0, 20.0, 20.0]])
    scores = torch.zeros(3, 80)
    scores[0, 0], scores[1, 5], scores[2, 2] = 0.9, 0.7, 0.3
    preds = torch.cat([boxes, scores], dim=1).T.unsqueeze(0)
    stages = PipelineStages(lambda t: t, 320, CPU, rect=True, names=predictor.model.names)
    ours = stages.postprocess(preds.clone(), x, [bus])
    theirs = predictor.postprocess(preds.clone(), x, [bus])
    assert len(ours) == len(theirs) == 1 and len(ours[0]) == 3
    assert torch.equal(ours[0].boxes.data, theirs[0].boxes.data)
    assert ours[0].names == theirs[0].names and ours[0].orig_shape == theirs[0].orig_shape


class FakeCuda:
    def __init__(self, log):
        self.log = log

    def synchronize(self, device=None):
        self.log.append("sync")


class LoggedStages:
    def __init__(self, log):
        self.log = log

    def preprocess(self, images):
        self.log.append("pre")
        return torch.zeros(1)

    def inference(self, x):
        self.log.append("infer")
        return x

    def postprocess(self, preds, x, images):
        self.log.append("post")
        return [torch.zeros(3, 6)]


def test_cuda_synchronizes_at_every_stage_boundary():
    log = []
    timings = run_pipeline_loop(LoggedStages(log), lambda i: [i], 1, torch.device("cuda:0"), StopRule(2),
                                cuda=FakeCuda(log))
    one = ["sync", "pre", "sync", "infer", "sync", "post", "sync"]
    assert log == one * 3
    assert {s: len(v) for s, v in timings.stages_ms.items()} == {s: 2 for s in STAGES}
    assert timings.detections == [3, 3] and len(timings.warmup_total_ms) == 1


def test_host_memory_check_counts_the_originals_before_decoding_them(val_paths, monkeypatch):
    import psutil

    digest = decode_images(val_paths, 64).files_sha256
    pixels = sum(cv2.imread(p).shape[0] * cv2.imread(p).shape[1] for p in val_paths)

    class Scarce:
        available = int(3 * pixels / 0.8) - 1  # one byte short of what the decoded originals need

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded before the memory check")

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Scarce())
    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    with pytest.raises(DetbenchError, match=r"^--pipeline: the decoded original images need 0\.0 GiB of host "
                                            r"memory, 0\.0 GiB is available; lower --benchmark_size or drop "
                                            r"--pipeline$"):
        decode_originals(val_paths, digest)
    monkeypatch.undo()
    assert len(decode_originals(val_paths, digest)) == len(val_paths)


def test_originals_above_the_pixel_limit_are_refused(val_paths):
    digest = decode_images(val_paths, 64).files_sha256
    largest = max(cv2.imread(p).shape[0] * cv2.imread(p).shape[1] for p in val_paths)
    with pytest.raises(DetbenchError, match=rf"pixels .* is above the limit of {largest - 1:,} pixels; raise the "
                                            rf"limit with --max-image-pixels"):
        decode_originals(val_paths, digest, max_pixels=largest - 1)
    assert len(decode_originals(val_paths, digest, max_pixels=largest)) == len(val_paths)
