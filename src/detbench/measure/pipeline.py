"""What an end user of the detector feels: preprocess, inference and postprocess per iteration, and their sum.

Each timed iteration takes the next `batch` original images (decoded BGR uint8,
kept in memory: decoding is not timed) and runs, with the host timer
(`perf_counter_ns`) and a device synchronize at every stage boundary:

- preprocess: letterbox each image with Ultralytics' LetterBox (centred, pad
  114): to the square imgsz, or with --rect as the predictor does (its `rect`
  is on): to the minimal rectangle, a multiple of the stride, when every image
  of the batch has the same shape, else to the square; stack, transfer as
  uint8 to the device, BHWC -> BCHW, BGR -> RGB, cast and scale to [0, 1]
  (Ultralytics' `preprocess` order);
- inference: the model's forward, exactly as in the model-only loop;
- postprocess: Ultralytics' `non_max_suppression` at the predictor's defaults
  (conf 0.25, IoU 0.7, max_det 300), then what the predictor's
  `construct_results` does: `scale_boxes` back to each original image's size
  and one `Results` object per image;
- total: the three together (end minus start of the iteration).

Each stage is reported per iteration (per batch), and per image as well: the
batch's statistic divided by the batch size, which is how Ultralytics' own
`speed` figures are given.

The originals are decoded again from the listed files, read and size-checked
as the cache's images are (`inputs.read_image`: regular files only, at most
--max-image-pixels each), after their headers show that keeping them all
fits in host memory; the files' hash must equal the one of the letterboxed
cache, so both loops see the same images.
Postprocess time depends on how many boxes pass the confidence threshold:
untrained weights give almost none, so their NMS time is a lower bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from detbench.data.inputs import FilesHash, check_host_memory, letterbox_for, read_image, read_image_header
from detbench.data.rect import predictor_rect
from detbench.errors import DetbenchError
from detbench.limits import MAX_IMAGE_PIXELS
from detbench.measure.timing import Stopper, StopRule
from detbench.report.model import Pipeline

CONF = 0.25
IOU = 0.7
MAX_DET = 300
STAGES = Pipeline.STAGES


def _unreadable(raw: str | Path, data: bytes | None) -> DetbenchError:
    if data is None:
        return DetbenchError(f"--pipeline: cannot read {raw} (file not found); restore the image")
    return DetbenchError(f"--pipeline: {raw} is not a decodable image; restore it")


def original_pixels(paths: Sequence[str | Path], max_pixels: int = MAX_IMAGE_PIXELS) -> int:
    """The pixels of all listed originals, read from their headers (an image above `max_pixels` is refused)."""
    pixels = 0
    for raw in paths:
        data, size = read_image_header(Path(raw), max_pixels)
        if size is None:
            raise _unreadable(raw, data)
        pixels += size[0] * size[1]
    return pixels


def decode_originals(paths: Sequence[str | Path], files_sha256: str,
                     max_pixels: int = MAX_IMAGE_PIXELS) -> list[np.ndarray]:
    """Decode the listed images (BGR uint8, original size); they must be the files the cache was built from.

    First every header is read: an image above `max_pixels` is refused, and the decoded originals, kept for
    the whole loop (3 bytes a pixel), must fit in the host memory available; only then is anything decoded.
    """
    check_host_memory(0, 0, original_pixels=original_pixels(paths, max_pixels))
    images, digest = [], FilesHash()
    for raw in paths:
        data, image = read_image(Path(raw), cv2.IMREAD_COLOR, max_pixels)
        if data is None or image is None:
            raise _unreadable(raw, data)
        digest.add(data)
        images.append(image)
    if digest.hexdigest() != files_sha256:
        raise DetbenchError("--pipeline: the listed image files changed during the run; re-run the benchmark")
    return images


class PipelineStages:
    """The three stages for one model, device and input dtype."""

    def __init__(self, forward: Callable[[torch.Tensor], Any], imgsz: int, device: torch.device,
                 dtype: torch.dtype = torch.float32, end2end: bool = False, channels_last: bool = False,
                 rect: bool = False, stride: int = 32, names: dict[int, str] | None = None) -> None:
        self.forward, self.device, self.dtype, self.end2end = forward, device, dtype, end2end
        self.channels_last, self.rect, self.names = channels_last, rect, names or {}
        self.letterboxes = {rect: letterbox_for(imgsz, stride, rect) for rect in (False, True)}

    def preprocess(self, images: list[np.ndarray]) -> torch.Tensor:
        letterbox = self.letterboxes[predictor_rect(images, self.rect)]
        boxed = [letterbox(image=image) for image in images]
        x = torch.from_numpy(boxed[0]).unsqueeze(0) if len(boxed) == 1 else torch.from_numpy(np.stack(boxed))
        x = x.to(self.device).permute(0, 3, 1, 2).contiguous().flip(1)
        x = x.to(self.dtype).div_(255.0)
        # in a deployed pipeline the layout change is preprocessing: timed here, as part of that stage
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def inference(self, x: torch.Tensor) -> Any:
        return self.forward(x)

    def postprocess(self, preds: Any, x: torch.Tensor, images: list[np.ndarray]) -> list[Any]:
        # imported here, not at the top: loads Ultralytics, which only this path needs
        from ultralytics.engine.results import Results
        from ultralytics.utils import ops
        from ultralytics.utils.nms import non_max_suppression

        detections = non_max_suppression(preds, CONF, IOU, max_det=MAX_DET, nc=0, end2end=self.end2end)
        results = []
        for det, image in zip(detections, images, strict=True):
            det[:, :4] = ops.scale_boxes(x.shape[2:], det[:, :4], image.shape)
            results.append(Results(image, path="", names=self.names, boxes=det[:, :6]))
        return results


@dataclass
class PipelineTimings:
    stages_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    warmup_total_ms: list[float] = field(default_factory=list)
    detections: list[int] = field(default_factory=list)
    stop_reason: str = ""
    timed_s: float = 0.0


def run_pipeline_loop(stages: Any, next_images: Callable[[int], list[np.ndarray]], warmup: int,
                      device: torch.device, stop: StopRule, cuda: Any = torch.cuda) -> PipelineTimings:
    """Warm up, then time the stages per iteration until `stop` says so (its rule applied to the totals)."""
    on_cuda = device.type == "cuda"
    out = PipelineTimings()

    def sync() -> int:
        if on_cuda:
            cuda.synchronize(device)
        return time.perf_counter_ns()

    def one(i: int) -> tuple[list[int], int]:
        images = next_images(i)
        t0 = sync()
        x = stages.preprocess(images)
        t1 = sync()
        preds = stages.inference(x)
        t2 = sync()
        results = stages.postprocess(preds, x, images)
        t3 = sync()
        return [t0, t1, t2, t3], sum(len(r) for r in results)

    stopper = Stopper(stop)
    with torch.inference_mode():
        for i in range(warmup):
            marks, _ = one(i)
            out.warmup_total_ms.append((marks[3] - marks[0]) / 1e6)
        loop_start = time.perf_counter_ns()
        i = 0
        while not stopper.done(out.stages_ms["total"], (time.perf_counter_ns() - loop_start) / 1e9):
            marks, found = one(i)
            for stage, (a, b) in zip(STAGES, [(0, 1), (1, 2), (2, 3), (0, 3)], strict=True):
                out.stages_ms[stage].append((marks[b] - marks[a]) / 1e6)
            out.detections.append(found)
            i += 1
        out.timed_s = (time.perf_counter_ns() - loop_start) / 1e9
    out.stop_reason = stopper.reason
    return out


def pipeline_section(timings: PipelineTimings, batch: int, warmup: int, rect: bool = False) -> Pipeline:
    """The report's `pipeline` section: each stage with the same statistics as the model-only latency."""
    section = Pipeline(
        scope=("per iteration of `batch` images from the decoded BGR uint8 originals: preprocess (letterbox, "
               "stack, uint8 transfer, BCHW, BGR->RGB, cast, /255), inference (forward), postprocess "
               "(Ultralytics non_max_suppression, then scale_boxes and one Results per image as the "
               "predictor's construct_results), total (their sum)"),
        letterbox=("--rect: the minimal rectangle (a multiple of the stride) when the batch's images share one "
                   "shape, else the square, as Ultralytics' predictor" if rect else "the square imgsz x imgsz"),
        timer="perf_counter_ns; device synchronized at every stage boundary on CUDA",
        nms={"function": "ultralytics.utils.nms.non_max_suppression", "conf": CONF, "iou": IOU, "max_det": MAX_DET},
        batch=batch, warmup=warmup, n_samples=len(timings.stages_ms["total"]), stop_reason=timings.stop_reason,
        detections_per_image_mean=(float(np.mean(timings.detections)) / batch) if timings.detections else 0.0,
        **dict.fromkeys(STAGES), per_image_ms=None,  # their places in the layout, filled by `summarise`
        per_image_note="each stage's mean and median per iteration divided by the batch size", throughput=None)
    section.summarise(timings.stages_ms, batch)
    return section


def measure_pipeline(model: torch.nn.Module, mode: Any, device: torch.device, paths: Sequence[str | Path],
                     files_sha256: str, imgsz: int, batch: int, warmup: int, stop: StopRule,
                     max_pixels: int = MAX_IMAGE_PIXELS, rect: bool = False, stride: int = 32,
                     forward: Callable[[torch.Tensor], Any] | None = None,
                     ) -> tuple[Pipeline, dict[str, list[float]]]:
    """Run the pipeline loop for a prepared model in its execution mode; the section and the raw samples."""
    # imported here, not at the top: loads torch, NVML, numpy, which only this path needs
    from detbench.measure.modes import apply_mode, make_forward

    originals = decode_originals(paths, files_sha256, max_pixels)
    model = apply_mode(model.to(device), mode)
    names = getattr(model, "names", None)
    input_dtype = mode.input_dtype if forward is None else torch.float32  # an exported model takes fp32
    stages = PipelineStages(forward or make_forward(model, mode, device), imgsz, device, input_dtype,
                            end2end=bool(getattr(model, "end2end", False)), channels_last=mode.channels_last,
                            rect=rect, stride=stride, names=names if isinstance(names, dict) else None)

    def next_images(i: int) -> list[np.ndarray]:
        start = i * batch
        return [originals[(start + k) % len(originals)] for k in range(batch)]

    if rect:  # one untimed pass of each input shape first, as the model-only loop does (measure.warm_each_shape)
        warm_each_pipeline_shape(stages, next_images, -(-len(originals) // batch), device)
    timings = run_pipeline_loop(stages, next_images, warmup, device, stop)
    section = pipeline_section(timings, batch, warmup, rect)
    if getattr(mode, "cuda_graph", False):
        section.note = "inference here is the eager forward; the model-only loop replays a CUDA graph"
    samples = {stage: timings.stages_ms[stage] for stage in STAGES}
    samples["warmup_total"] = timings.warmup_total_ms
    return section, samples


def warm_each_pipeline_shape(stages: PipelineStages, next_images: Callable[[int], list[np.ndarray]],
                             n_batches: int, device: torch.device) -> int:
    """One untimed preprocess, inference and postprocess for each input shape of one pass over the list."""
    seen: set[tuple[int, ...]] = set()
    with torch.inference_mode():
        for i in range(n_batches):
            images = next_images(i)
            x = stages.preprocess(images)
            if tuple(x.shape) in seen:
                continue
            seen.add(tuple(x.shape))
            stages.postprocess(stages.inference(x), x, images)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return len(seen)
