"""One model's benchmark, end to end: the steps of `detbench bench`."""

from __future__ import annotations

import datetime as _dt
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from detbench import complexity, quality, setup_cache, stats
from detbench.acceleration import ExecutionMode
from detbench.benchmark_list import LIST_FILENAME, obtain_list
from detbench.config import BenchConfig
from detbench.devices import resolve_device
from detbench.environment import capture_environment, capture_settings
from detbench.errors import DetbenchError
from detbench.execution import measure
from detbench.models import load_model, model_name_for
from detbench.phases import PhaseClock, first_run_of_process
from detbench.report import SCHEMA_VERSION, failure_report, write_report
from detbench.timing import StopRule, stopping_section

Echo = Callable[[str], None]


def check_writable(folder: Path) -> None:
    """Fail before any work if results cannot be written there; create nothing.

    The folder, or its nearest existing parent, is probed with a temporary file (removed at once); the
    folder itself is made only when the first result is written.
    """
    try:
        probe = folder
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            raise DetbenchError(f"--out {folder}: {probe} is a file, not a folder; choose another --out")
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise DetbenchError(f"--out {folder}: cannot write there ({exc.strerror}); choose a writable folder") from exc


def effective_imgsz(imgsz: int, stride: int) -> int:
    """Round up to a multiple of the model's largest stride, as Ultralytics' check_imgsz does."""
    return max(stride, -(-imgsz // stride) * stride)


def resolve_data(cfg: BenchConfig, train_args: dict[str, Any]) -> tuple[str | None, bool]:
    """The data YAML: --data if given, else the checkpoint's train_args['data']; and whether it came from the flag."""
    if cfg.data:
        return cfg.data, True
    data = train_args.get("data")
    return (str(data), False) if data else (None, False)


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA out of memory, or a host allocation that failed in the forward pass."""
    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or (
        isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc))


def record_oom(cfg: BenchConfig, name: str, device: torch.device, imgsz: int, unsafe_load: bool,
               model_complexity: dict[str, Any], exc: BaseException, out_dir: Path,
               argv: list[str] | None) -> DetbenchError:
    """Write `{out}/{name}.json` with status "oom" (and the batch and imgsz); return the error to stop with."""
    what = f"out of memory at --batch {cfg.batch}, imgsz {imgsz} on {device}"
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    metadata = {"model_name": name, "weights": cfg.weights, "imgsz": imgsz, "imgsz_requested": cfg.imgsz,
                "batch": cfg.batch, "device": str(device), "warmup": cfg.warmup, "iters": cfg.iters,
                "timestamp": _dt.datetime.now().astimezone().isoformat(timespec="seconds"), "unsafe_load": unsafe_load}
    report = failure_report("oom", f"{what}: {detail}", metadata, model_complexity,
                            command=argv if argv is not None else sys.argv, cwd=os.getcwd())
    path = write_report(report, out_dir / f"{name}.json")
    return DetbenchError(f"{what}; wrote {path} with status \"oom\"; try a smaller --batch or --imgsz")


def run_bench(cfg: BenchConfig, echo: Echo = print, argv: list[str] | None = None) -> tuple[dict[str, Any], Path]:
    """Benchmark one model; write `{out}/{name}.json`; return the report and its path."""
    clock, first_run = PhaseClock(), first_run_of_process()
    device = resolve_device(cfg.device)
    mode = ExecutionMode(half=cfg.half, amp=cfg.amp, channels_last=cfg.channels_last,
                         cudnn_benchmark=cfg.cudnn_benchmark, cuda_graph=cfg.cuda_graph)
    mode.check(device)
    out_dir = Path(cfg.out)
    check_writable(out_dir)
    import ultralytics  # noqa: F401  (importing it changes the thread settings, so set ours after)

    clock.mark("import", since_process_start=first_run)

    torch.set_num_threads(cfg.threads)
    name = cfg.name or model_name_for(cfg.weights)
    echo(f"detbench bench: {name} on {device} ({torch.get_num_threads()} CPU threads), imgsz {cfg.imgsz}, "
         f"batch {cfg.batch}, warmup {cfg.warmup}, iters {cfg.iters}")

    loaded = load_model(cfg.weights, unsafe_load=cfg.unsafe_load, plugins=cfg.plugins)
    clock.mark("load")
    data_yaml, data_from_flag = resolve_data(cfg, loaded.train_args)
    list_path = Path(cfg.list_path) if cfg.list_path else out_dir / LIST_FILENAME
    outcome = obtain_list(list_path, data_yaml, cfg.benchmark_size, cfg.seed, cfg.use_benchmark_list, data_from_flag)
    clock.mark("list")
    notes = [outcome.note] if outcome.note else []
    echo(f"✓ {'created' if outcome.created else 'loaded'} benchmark list: {outcome.path} "
         f"({len(outcome.blist.paths)} images)")
    if outcome.note:
        echo(f"  note: {outcome.note}")
    echo(f"✓ model loaded ({loaded.kind}: {loaded.path})")
    if loaded.unsafe_load:
        notes.append("checkpoint loaded with --unsafe-load: a full pickle load, which runs any code inside it")
        echo(f"  warning: {notes[-1]}")

    imgsz = effective_imgsz(cfg.imgsz, loaded.stride)
    if imgsz != cfg.imgsz:
        notes.append(f"imgsz {cfg.imgsz} is not a multiple of stride {loaded.stride}: using {imgsz}")
        echo(f"  note: {notes[-1]}")
    model = loaded.model
    params = complexity.count_params(model)
    cache_dir = setup_cache.cache_dir_for(list_path)
    model, flops, flops_cached = setup_cache.fuse_and_count(
        model, imgsz, cache_dir, setup_cache.source_digest(cfg.weights, loaded.path))
    gflops_unfused, gflops = flops["gflops_unfused"], flops["gflops"]
    params_fused = complexity.count_params(model)
    clock.mark("flops")
    echo(f"✓ params: {params:,}")
    echo(f"✓ GFLOPs: {gflops:.2f}")

    inputs, inputs_cached = setup_cache.cached_inputs(cache_dir, outcome.blist.paths, imgsz)
    clock.mark("decode")
    stop = StopRule(cfg.iters, cfg.min_time, cfg.target_ci, cfg.max_time)
    try:
        measurement = measure(model, inputs, cfg.batch, device, mode, cfg.warmup, cfg.iters, stop=stop)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        sizes = {"params": params, "params_fused": params_fused, "gflops": gflops}
        raise record_oom(cfg, name, device, imgsz, loaded.unsafe_load, sizes, exc, out_dir, argv) from exc
    timings = measurement.timings
    clock.mark_parts({"warmup": timings.warmup_s, "timed": timings.timed_s}, rest="device_setup")
    for warning in measurement.warnings:
        echo(f"  warning: {warning}")
    latency = stats.summarize(timings.latency_ms)
    echo(f"✓ latency (mean): {latency['mean_ms']:.2f} ms")
    statistics = quality.statistics_section(timings.latency_ms, timings.host_ms if device.type == "cuda" else None)
    echo(f"  median {latency['median_ms']:.2f} ms, 95% CI {quality.format_ci(statistics['median_ci95_ms'])}; "
         f"{len(timings.latency_ms)} samples, stopped by {timings.stop_reason}")
    for warning in statistics["warnings"]:
        echo(f"  warning: {warning}")
    pipeline, pipeline_samples, pipeline_warned = None, None, []
    if cfg.pipeline:
        from detbench.pipeline import measure_pipeline, pipeline_warnings

        pipeline, pipeline_samples = measure_pipeline(model, mode, device, outcome.blist.paths, inputs.files_sha256,
                                                      imgsz, cfg.batch, cfg.warmup, stop)
        echo(f"✓ pipeline (median): preprocess {pipeline['preprocess']['median_ms']:.2f} + inference "
             f"{pipeline['inference']['median_ms']:.2f} + postprocess {pipeline['postprocess']['median_ms']:.2f}"
             f" ms; total {pipeline['total']['median_ms']:.2f} ms")
        pipeline_warned = pipeline_warnings(pipeline)
        for warning in pipeline_warned:
            echo(f"  warning: {warning}")
        clock.mark("pipeline")

    report = {
        "schema_version": SCHEMA_VERSION,
        "status": "ok",
        "metadata": {
            "model_name": name,
            "weights": cfg.weights,
            "model_source": loaded.kind,
            "imgsz": imgsz,
            "imgsz_requested": cfg.imgsz,
            "batch": cfg.batch,
            "device": str(device),
            "warmup": cfg.warmup,
            "iters": cfg.iters,
            "timestamp": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "benchmark_list": str(outcome.path),
            "benchmark_size": len(outcome.blist.paths),
            "benchmark_size_requested": cfg.benchmark_size,
            "seed": outcome.blist.seed,
            "data": data_yaml,
            "unsafe_load": loaded.unsafe_load,
        },
        "model_complexity": {
            "params": params,
            "params_M": round(params / 1e6, 3),
            "params_fused": params_fused,
            "gflops": gflops,
            "gflops_unfused": gflops_unfused,
            "gflops_method": "ultralytics (thop MACs x 2), fused model, at imgsz",
        },
        "latency": {
            **latency,
            "n_samples": len(timings.latency_ms),
            "timer": timings.timer,
            "scope": "model forward only; batch already on the device and normalised",
            "percentile_method": f"numpy {stats.PERCENTILE_METHOD}",
            "std_ddof": 1,
            "host": stats.summarize(timings.host_ms) if device.type == "cuda" else None,
        },
        "throughput": stats.throughput(cfg.batch, latency["mean_ms"], latency["p50_ms"]),
        "memory": measurement.memory,
        "gpu": measurement.gpu,
        "warnings": measurement.warnings + statistics["warnings"] + pipeline_warned,
        "statistics": statistics,
        "stopping": stopping_section(stop, timings),
        "pipeline": pipeline,
        "setup_cache": {"dir": str(cache_dir), "gflops_reused": flops_cached, "inputs_reused": inputs_cached},
        "inputs": {
            "list_sha256": outcome.blist.sha256,
            "files_sha256": inputs.files_sha256,
            "decoded_sha256": inputs.decoded_sha256,
            "n_images": len(inputs),
            "population_size": outcome.blist.population_size,
            "population_sha256": outcome.blist.population_sha256,
            "truncated": outcome.blist.truncated,
            "letterbox": f"{imgsz}x{imgsz}, centred, pad 114, RGB",
        },
        "settings": capture_settings(device, cfg.threads, mode),
        "environment": capture_environment(device),
        "command": argv if argv is not None else sys.argv,
        "cwd": os.getcwd(),
        "notes": notes,
        "samples": {
            "latency_ms": timings.latency_ms,
            "host_ms": timings.host_ms if device.type == "cuda" else None,
            "warmup_ms": timings.warmup_ms,
            "pipeline_ms": pipeline_samples,
        },
    }
    clock.mark("report")
    report["timing_phases_s"] = clock.report()
    path = write_report(report, out_dir / f"{name}.json")
    echo(f"✓ saved: {path}")
    return report, path
