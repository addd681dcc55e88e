"""Command line: `detbench bench|…`. Flag parsing only; the work is done elsewhere."""

from __future__ import annotations

import argparse
import sys

import detbench  # noqa: F401  (offline settings first)
from detbench.errors import DetbenchError


def _flag(parser: argparse.ArgumentParser, name: str, **kwargs) -> None:
    """Accept both spellings of a flag: --benchmark_size and --benchmark-size."""
    spellings = {f"--{name}", f"--{name.replace('_', '-')}"}
    parser.add_argument(*sorted(spellings, reverse=True), dest=name, **kwargs)


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
    parser.add_argument(
        "--plugin", dest="plugins", action="append", default=[],
        help="module or .py file with custom layers to allow and register (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="detbench", description="Benchmarks for YOLO ablation studies.")
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="benchmark one model", description="Benchmark one model.")
    add_bench_arguments(bench)
    return parser


def bench_config_from_args(args: argparse.Namespace):
    from detbench.config import BenchConfig

    return BenchConfig(weights=args.weights, imgsz=args.imgsz, device=args.device, warmup=args.warmup,
                       iters=args.iters, batch=args.batch, data=args.data, seed=args.seed,
                       benchmark_size=args.benchmark_size, use_benchmark_list=args.use_benchmark_list,
                       name=args.name, out=args.out, list_path=args.list, threads=args.threads,
                       unsafe_load=args.unsafe_load, plugins=list(args.plugins))


def cmd_bench(args: argparse.Namespace) -> int:
    from detbench.runner import run_bench

    run_bench(bench_config_from_args(args), argv=sys.argv)
    return 0


COMMANDS = {"bench": cmd_bench}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except DetbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: no report was written", file=sys.stderr)
        return 130


def bench_main(argv: list[str] | None = None) -> int:
    """`python scripts/benchmark_model.py …`: the bench subcommand with the spec's flags."""
    return main(["bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
