"""The flags of `detbench bench`: defined once, used by the CLI, by `ablate` (which passes them through to each
model's run) and by the resume check (which reads a report's command line back)."""

from __future__ import annotations

import argparse

from detbench import limits
from detbench.config import BenchConfig


def _flag(parser: argparse.ArgumentParser, name: str, dest_name: str | None = None, **kwargs) -> None:
    """Accept both spellings of a flag: --benchmark_size and --benchmark-size."""
    spellings = {f"--{name}", f"--{name.replace('_', '-')}"}
    parser.add_argument(*sorted(spellings, reverse=True), dest=dest_name or name, **kwargs)


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    _flag(parser, "weights", required=True,
          help="Ultralytics .pt checkpoint, model .yaml, zoo name or shipped YAML name (e.g. yolov8n.yaml)")
    _flag(parser, "imgsz", type=int, default=640, help="square input size (default 640)")
    _flag(parser, "device", default=None, help="0, 1, cuda:N or cpu (default: GPU 0 if present, else cpu)")
    _flag(parser, "warmup", type=int, default=50, help="warm-up iterations (default 50)")
    _flag(parser, "iters", type=int, default=300, help="timed iterations (default 300)")
    _flag(parser, "batch", type=int, default=1, help="batch size (default 1)")
    _flag(parser, "data", default=None, help="dataset YAML (default: the checkpoint's train_args['data'])")
    _flag(parser, "seed", type=int, default=42, help="seed of the benchmark list (default 42)")
    _flag(parser, "benchmark_size", type=int, default=200, help="images in the benchmark list (default 200)")
    _flag(parser, "use_benchmark_list", action="store_true",
          help="reuse the existing benchmark list as is (error if there is none)")
    _flag(parser, "name", default=None, help="model name in the report (default: run folder, else file stem)")
    _flag(parser, "out", default="results/bench", help="output folder (default results/bench)")
    _flag(parser, "list", default=None,
          help="benchmark list file (default: OUT/benchmark_list.txt)")
    _flag(parser, "threads", type=int, default=None, help="CPU threads for torch (default: all available cores)")
    _flag(parser, "unsafe_load", action="store_true",
          help="load the checkpoint with a full pickle load (runs code inside it: only for trusted files)")
    _flag(parser, "half", action="store_true", help="run model and inputs in fp16 (CUDA only)")
    _flag(parser, "amp", action="store_true", help="autocast an fp32 model (fp16 on CUDA, bf16 on CPU)")
    _flag(parser, "channels_last", action="store_true", help="channels-last memory format for model and inputs")
    _flag(parser, "cudnn_benchmark", action=argparse.BooleanOptionalAction, default=True,
          help="let cuDNN autotune convolutions during the warm-up (default on; recorded)")
    _flag(parser, "cuda_graph", action="store_true",
          help="capture the forward once as a CUDA graph and replay it in the timed loop (CUDA only)")
    _flag(parser, "min_time", type=float, default=0.0,
          help="time at least this many seconds as well as at least --iters iterations (default 0)")
    _flag(parser, "target_ci", type=float, default=None,
          help="then keep timing until the median's 95%% CI half-width is at most this fraction of the median "
               "(e.g. 0.01), within --max-time")
    _flag(parser, "max_time", type=float, default=None,
          help="seconds the timed loop may run to reach --target-ci (default 60; never cuts --iters/--min-time)")
    _flag(parser, "pipeline", action="store_true",
          help="also time preprocess, inference and postprocess (NMS) per image, and their sum")
    parser.add_argument(
        "--plugin", dest="plugins", action="append", default=[],
        help="module or .py file with custom layers to allow and register (repeatable)")
    _flag(parser, "load_timeout", type=float, default=limits.LOAD_TIMEOUT_S,
          help=f"seconds the bounded check of the model (load, count, one forward pass) may take "
               f"(default {limits.LOAD_TIMEOUT_S:g})")
    _flag(parser, "load_memory", dest_name="load_memory_mb", type=float, default=limits.LOAD_MEMORY_BYTES / 2**20,
          help=f"MiB of memory that check may use beyond the interpreter (default {limits.LOAD_MEMORY_BYTES // 2**20})")
    _flag(parser, "time_budget", type=float, default=limits.RUN_TIME_BUDGET_S,
          help=f"seconds the warm-up and timed loop may be expected to take, judged from the bounded check's forward "
               f"pass before they start (default {limits.RUN_TIME_BUDGET_S:g})")
    _flag(parser, "max_image_pixels", type=int, default=limits.MAX_IMAGE_PIXELS,
          help=f"refuse images with more pixels than this, read from their header before decoding "
               f"(default {limits.MAX_IMAGE_PIXELS:,})")


def bench_config_from_args(args: argparse.Namespace) -> BenchConfig:
    """The BenchConfig the parsed flags describe (validated: a bad value is a one-line DetbenchError)."""
    return BenchConfig(weights=args.weights, imgsz=args.imgsz, device=args.device, warmup=args.warmup,
                       iters=args.iters, batch=args.batch, data=args.data, seed=args.seed,
                       benchmark_size=args.benchmark_size, use_benchmark_list=args.use_benchmark_list,
                       name=args.name, out=args.out, list_path=args.list, threads=args.threads,
                       unsafe_load=args.unsafe_load, plugins=list(args.plugins), half=args.half, amp=args.amp,
                       channels_last=args.channels_last, cudnn_benchmark=args.cudnn_benchmark,
                       cuda_graph=args.cuda_graph, min_time=args.min_time, target_ci=args.target_ci,
                       max_time=args.max_time, pipeline=args.pipeline, load_timeout=args.load_timeout,
                       load_memory_mb=args.load_memory_mb, max_image_pixels=args.max_image_pixels,
                       time_budget=args.time_budget)


def bench_parser() -> argparse.ArgumentParser:
    """A parser of the bench flags alone, for reading a recorded command line back."""
    parser = argparse.ArgumentParser(prog="detbench bench", add_help=False, allow_abbrev=False)
    add_bench_arguments(parser)
    return parser
