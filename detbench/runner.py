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

from detbench import complexity, stats
from detbench.benchmark_list import LIST_FILENAME, obtain_list
from detbench.config import BenchConfig
from detbench.devices import resolve_device
from detbench.environment import capture_environment, capture_settings
from detbench.errors import DetbenchError
from detbench.inputs import decode_images
from detbench.memory import memory_report, reset_cuda_peak
from detbench.models import load_model, model_name_for, prepare_for_inference
from detbench.report import SCHEMA_VERSION, write_report
from detbench.timing import run_timed_loop

Echo = Callable[[str], None]


def check_writable(folder: Path) -> None:
    """Fail before any work if results cannot be written there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
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


def run_bench(cfg: BenchConfig, echo: Echo = print, argv: list[str] | None = None) -> tuple[dict[str, Any], Path]:
    """Benchmark one model; write `{out}/{name}.json`; return the report and its path."""
    device = resolve_device(cfg.device)
    out_dir = Path(cfg.out)
    check_writable(out_dir)
    import ultralytics  # noqa: F401  (importing it changes the thread settings, so set ours after)

    torch.set_num_threads(cfg.threads)
    name = cfg.name or model_name_for(cfg.weights)
    echo(f"detbench bench: {name} on {device} ({torch.get_num_threads()} CPU threads), imgsz {cfg.imgsz}, "
         f"batch {cfg.batch}, warmup {cfg.warmup}, iters {cfg.iters}")

    loaded = load_model(cfg.weights, unsafe_load=cfg.unsafe_load, plugins=cfg.plugins)
    data_yaml, data_from_flag = resolve_data(cfg, loaded.train_args)
    list_path = Path(cfg.list_path) if cfg.list_path else out_dir / LIST_FILENAME
    outcome = obtain_list(list_path, data_yaml, cfg.benchmark_size, cfg.seed, cfg.use_benchmark_list, data_from_flag)
    notes = [outcome.note] if outcome.note else []
    echo(f"✓ {'created' if outcome.created else 'loaded'} benchmark list: {outcome.path} "
         f"({len(outcome.blist.paths)} images)")
    if outcome.note:
        echo(f"  note: {outcome.note}")
    echo(f"✓ model loaded ({loaded.kind}: {loaded.path})")

    imgsz = effective_imgsz(cfg.imgsz, loaded.stride)
    if imgsz != cfg.imgsz:
        notes.append(f"imgsz {cfg.imgsz} is not a multiple of stride {loaded.stride}: using {imgsz}")
        echo(f"  note: {notes[-1]}")
    model = loaded.model
    params = complexity.count_params(model)
    gflops_unfused = complexity.ultralytics_gflops(model, imgsz)
    model = prepare_for_inference(model)
    params_fused = complexity.count_params(model)
    gflops = complexity.ultralytics_gflops(model, imgsz)
    echo(f"✓ params: {params:,}")
    echo(f"✓ GFLOPs: {gflops:.2f}")

    inputs = decode_images(outcome.blist.paths, imgsz)
    model = model.to(device)
    dtype = torch.float32
    baseline_mib: dict[str, float] = {}

    def after_warmup() -> None:
        if device.type == "cuda":
            baseline_mib["value"] = reset_cuda_peak(device)

    timings = run_timed_loop(model, lambda i: inputs.batch(i, cfg.batch, device, dtype), cfg.warmup, cfg.iters,
                             device, after_warmup=after_warmup)
    latency = stats.summarize(timings.latency_ms)
    echo(f"✓ latency (mean): {latency['mean_ms']:.2f} ms")

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
        "memory": memory_report(device, baseline_mib.get("value")),
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
        "settings": capture_settings(device, cfg.threads),
        "environment": capture_environment(device),
        "command": argv if argv is not None else sys.argv,
        "cwd": os.getcwd(),
        "notes": notes,
        "samples": {
            "latency_ms": timings.latency_ms,
            "host_ms": timings.host_ms if device.type == "cuda" else None,
            "warmup_ms": timings.warmup_ms,
        },
    }
    path = write_report(report, out_dir / f"{name}.json")
    echo(f"✓ saved: {path}")
    return report, path
