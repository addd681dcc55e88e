"""A prepared end-to-end check of the GPU path (`bash scripts/gpu_check.sh`).

Runs `detbench bench` in fresh processes on YOLOv8n at 640 (batch 1 and 8,
fp32 and fp16) and on the six zoo models, then one interleaved study
(`detbench ablate`, baseline against p2, workers sharing the device), prints a
compact table and one PASS/FAIL line per GPU-specific assertion. On a GPU it
also benchmarks YOLOv8n at 640 as a TensorRT fp16 engine and on ONNX Runtime's
CUDA provider, where those are installed (`pip install -e '.[tensorrt]'`,
`'.[onnx-gpu]'`; skipped, saying so, where not). Without a GPU it runs a short
CPU pass of the same machinery and reports every GPU-only assertion as skipped.
Last, a 2-study sweep (`detbench sweep`: baseline against p2 at two image
sizes) and `detbench compare --sweep` on it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from detbench.data.benchmark_list import LIST_FILENAME
from detbench.errors import DetbenchError
from detbench.models.ultralytics_env import configure_process
from detbench.proc import python_module
from detbench.report.model import Report
from detbench.report.schema import load_report
from detbench.report.study_record import STUDY_FILE, read_study_record

configure_process()  # offline, quiet, restricted: before Ultralytics is imported


def _bench(args: list[str], out: Path, name: str, timeout: int) -> Report | None:
    # --force: this folder is gpu_check's own, and a re-run with other --iters/--warmup replaces its reports
    command = [*python_module(sys.executable, "detbench.cli", "bench"), *args, "--out", str(out), "--name", name,
               "--use_benchmark_list", "--list", str(out / LIST_FILENAME), "--force"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        print(f"  {name}: FAILED ({(result.stderr.strip().splitlines() or ['?'])[-1]})")
        return None
    return load_report(out / f"{name}.json")


def _study(common: list[str], out: Path, has_gpu: bool) -> dict | None:
    """baseline against p2 in one interleaved study; its study.json, or None when it failed."""
    design = (["--workers-per-model", "2", "--study-time", "60"] if has_gpu
              else ["--workers-per-model", "1", "--no-until-decided"])
    # --force: this folder is gpu_check's own; every check measures again
    command = [*python_module(sys.executable, "detbench.cli", "ablate"), "--models", "baseline,p2", "--out", str(out),
               "--force", "--use_benchmark_list", "--list", str(out.parent / "bench" / LIST_FILENAME), *common, *design]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    print("\n" + "\n".join(line for line in result.stdout.splitlines() if "look" in line or "vs baseline" in line
                            or "study done" in line or "generation" in line))
    if result.returncode != 0:
        print(f"  study: FAILED ({(result.stderr.strip().splitlines() or ['?'])[-1]})")
        return None
    return read_study_record(out / STUDY_FILE)


def _study_checks(record: dict | None, out: Path, has_gpu: bool) -> list[tuple[str, bool | None]]:
    checks: list[tuple[str, bool | None]] = [
        ("interleaved study finished with a verdict for p2",
         bool(record) and record["status"] == "ok" and len(record["comparisons"]) == 1)]
    if not has_gpu:
        return checks + [("study workers timed with CUDA events, GPU sharing recorded", None)]
    reports = [load_report(out / f"{name}.json") for name in ("baseline", "p2")] if record else []
    return checks + [("study workers timed with CUDA events, GPU sharing recorded",
                      bool(reports) and all(r.latency.timer == "cuda_event" for r in reports)
                      and bool(record.get("gpu_sharing")))]


GPU_BACKENDS = (("v8n-b1-trt-fp16", "engine", ["--half"]), ("v8n-b1-ort-cuda", "onnx", []))


def _gpu_backend_missing(fmt: str) -> str | None:
    """Why `--format fmt` cannot run on this GPU (its package or provider missing), or None."""
    from detbench.backends.formats import check_format
    from detbench.errors import DetbenchError

    try:
        check_format(fmt, "cuda", {"half": fmt == "engine"})
    except DetbenchError as exc:
        return str(exc)
    return None


def _gpu_backend_runs(common: list[str], out: Path) -> tuple[dict[str, Report | None], dict[str, str]]:
    """YOLOv8n at batch 1 as a TensorRT fp16 engine and on ORT's CUDA provider; the runs and what was skipped."""
    runs: dict[str, Report | None] = {}
    skipped: dict[str, str] = {}
    for name, fmt, extra in GPU_BACKENDS:
        missing = _gpu_backend_missing(fmt)
        if missing:
            skipped[name] = missing
            print(f"  {name}: skipped ({missing})")
            continue
        runs[name] = _bench(["--weights", "yolov8n.yaml", *common, "--batch", "1", "--format", fmt, *extra], out,
                            name, timeout=900)
    return runs, skipped


def _gpu_backend_checks(runs: dict[str, Report | None], skipped: dict[str, str],
                        has_gpu: bool) -> list[tuple[str, bool | None]]:
    checks: list[tuple[str, bool | None]] = []
    for name, _, _ in GPU_BACKENDS:
        label = f"{name}: finished, CUDA events, parity within tolerance"
        if not has_gpu or name in skipped:
            checks.append((label, None))
            continue
        report = runs.get(name)
        checks.append((label, bool(report) and report.latency.timer == "cuda_event"
                       and bool((report.parity or {}).get("within_tolerance"))))
    return checks


def _sweep(work: Path, data_yaml: Path, has_gpu: bool) -> list[tuple[str, bool | None]]:
    """A 2-study sweep (baseline against p2, two image sizes) on this machine, then `compare --sweep`."""
    out = work / "sweep"
    imgsz = [320, 640] if has_gpu else [64, 96]
    spec = {"models": ["baseline", "p2"], "data": str(data_yaml), "axes": {"imgsz": imgsz},
            "settings": {"warmup": 20 if has_gpu else 2, "iters": 100 if has_gpu else 20, "workers_per_model": 1,
                         "until_decided": False, "benchmark_size": 200 if has_gpu else 20}}
    path = work / "sweep.yaml"
    path.write_text(json.dumps(spec))
    ran = subprocess.run(python_module(sys.executable, "detbench.cli", "sweep", str(path), "--out", str(out)),
                         capture_output=True, text=True, timeout=900)
    print("\n" + "\n".join(line for line in ran.stdout.splitlines() if "imgsz" in line or "sweep done" in line))
    compared = subprocess.run(python_module(sys.executable, "detbench.cli", "compare", "--sweep", str(out)),
                              capture_output=True, text=True, timeout=300)
    print("\n".join(compared.stdout.splitlines()[-6:]))
    from detbench.sweep.index import read_index  # the sweep's own reader of its index

    try:
        index = read_index(out)
    except DetbenchError:
        index = {}
    entries = list((index.get("studies") or {}).values())
    statuses = [entry.get("status") for entry in entries]
    gpu_kind = has_gpu and bool(entries) and all((entry.get("node") or {}).get("gpu_name") for entry in entries)
    return [("2-study sweep finished, compare --sweep read it",
             ran.returncode == 0 and statuses == ["ok", "ok"] and compared.returncode == 0),
            ("sweep studies ran on the GPU (its name in the index)", gpu_kind if has_gpu else None)]


def _row(name: str, r: Report) -> str:
    lat = r.latency
    host = lat.host.median_ms if lat.host else None
    peak = r.memory.peak_gpu_mem_MB
    enqueue = r.statistics.enqueue_over_device if r.statistics else None
    return (f"{name:<22}{r.metadata.batch:>3} {r.settings.precision:>5} {lat.median_ms:>9.3f} "
            f"{(f'{host:.3f}' if host is not None else '-'):>9} {lat.p95_ms:>9.3f} "
            f"{r.throughput.fps_mean:>9.1f} {(f'{peak:.1f}' if peak is not None else '-'):>9} "
            f"{(f'{enqueue:.2f}' if enqueue is not None else '-'):>8}")


def _checks(runs: dict[str, Report | None], has_gpu: bool) -> list[tuple[str, bool | None]]:
    """What must hold of the runs: (label, passed), passed None where it needs a GPU that is not there."""
    ok = [r for r in runs.values() if r]
    checks: list[tuple[str, bool | None]] = [("every run finished", len(ok) == len(runs))]
    if has_gpu:
        checks += [
            ("CUDA events used (timer == cuda_event)", all(r.latency.timer == "cuda_event" for r in ok)),
            ("peak reset after warm-up (peak >= allocated, activation peak >= 0)",
             all(r.memory.activation_peak_MB is not None and r.memory.activation_peak_MB >= 0 for r in ok)),
            ("GPU memory fields non-null", all(r.memory.peak_gpu_mem_MB is not None for r in ok)),
            # launch-bound is judged by the time to enqueue the kernels against the device time (events alone
            # stretch to the launches): recorded for every run, and a warning exactly where the ratio is >= 0.8
            ("launch time recorded (enqueue/device), launch-bound warned where it is >= 0.8",
             all(r.statistics is not None and r.statistics.enqueue_over_device is not None
                 and (r.statistics.enqueue_over_device >= 0.8) == any("launch-bound" in w for w in r.warnings)
                 for r in ok)),
        ]
        b8_32, b8_16 = runs.get("v8n-b8-fp32"), runs.get("v8n-b8-fp16")
        checks.append(("fp16 faster than fp32 at batch 8", bool(b8_32 and b8_16) and
                       b8_16.latency.median_ms < b8_32.latency.median_ms))
    else:
        checks += [(label, None) for label in ("CUDA events used", "peak reset after warm-up",
                                                "GPU memory fields non-null", "launch time recorded",
                                                "fp16 faster than fp32 at batch 8")]
    return checks


def _print_checks(checks: list[tuple[str, bool | None]]) -> int:
    """One PASS/FAIL/SKIP line per check; the number that failed."""
    print()
    failed = 0
    for label, passed in checks:
        status = "SKIP" if passed is None else ("PASS" if passed else "FAIL")
        failed += passed is False
        print(f"{status:<14}{label}")
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args(argv)

    # imported here, not at the top: loads torch, OpenCV, NVML, PyYAML, numpy, which only this path needs
    import torch

    from detbench import zoo
    from detbench.data.benchmark_list import obtain_list
    from detbench.data.synthetic import make_dataset

    has_gpu = torch.cuda.is_available()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="detbench-gpu-check-"))
    out = work / "bench"
    data_yaml = work / "data" / "data.yaml"
    if not data_yaml.is_file():
        make_dataset(work / "data", n_train=0, n_val=200, seed=0)
    obtain_list(out / LIST_FILENAME, data_yaml, 200, 42, use_existing=False)
    started = time.perf_counter()
    device, imgsz = ("0", "640") if has_gpu else ("cpu", "320")
    iters, warmup = (args.iters, args.warmup) if has_gpu else ("20", "3")
    common = ["--device", device, "--imgsz", imgsz, "--iters", str(iters), "--warmup", str(warmup)]
    print(f"detbench gpu_check: {'GPU ' + torch.cuda.get_device_name(0) if has_gpu else 'no GPU: CPU pass only'}"
          f", imgsz {imgsz}, warmup {warmup}, iters {iters}, workdir {work}")

    runs: dict[str, Report | None] = {}
    plan = [("v8n-b1-fp32", ["--batch", "1"]), ("v8n-b8-fp32", ["--batch", "8"])]
    if has_gpu:
        plan += [("v8n-b1-fp16", ["--batch", "1", "--half"]), ("v8n-b8-fp16", ["--batch", "8", "--half"])]
    for name, extra in plan:
        runs[name] = _bench(["--weights", "yolov8n.yaml", *common, *extra], out, name, timeout=300)
    for model in zoo.MODELS:
        runs[f"zoo-{model}"] = _bench(["--weights", model, *common, "--batch", "1"], out, f"zoo-{model}", 300)

    skipped: dict[str, str] = {}
    if has_gpu:
        backend_runs, skipped = _gpu_backend_runs(common, out)
        runs.update(backend_runs)

    print(f"\n{'run':<22}{'b':>3} {'prec':>5} {'p50 ms':>9} {'host p50':>9} {'p95 ms':>9} {'FPS':>9} "
          f"{'peak MB':>9} {'enq/dev':>8}")
    for name, report in runs.items():
        if report:
            print(_row(name, report))

    record = _study(common, work / "study", has_gpu)
    checks = (_checks(runs, has_gpu) + _gpu_backend_checks(runs, skipped, has_gpu)
              + _study_checks(record, work / "study", has_gpu) + _sweep(work, data_yaml, has_gpu))
    failed = _print_checks(checks)
    print(f"\ngpu_check: {len(checks) - failed} of {len(checks)} not failed, {time.perf_counter() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
