"""The scheduling overhead of `detbench sweep` per study, with the local executor and with Ray (a local Ray
instance), and the projected wall time of a 500-study sweep on 1, 8 and 64 GPUs.

Each executor runs the same sweep of N small CPU studies (baseline against p2, one per imgsz), one at a time
(a CPU study holds the whole machine). Measured, per executor:
- the wall time of the sweep, and the sum of the studies' own times (the `detbench ablate` child's wall time,
  from start-up to its last report, as recorded in sweep.json);
- the fixed cost: a second, resumed run of the same sweep, which plans, checks the list and skips every study
  (for Ray, plus connecting: a private instance is started and shut down);
- overhead per study = (wall - sum of study times - fixed cost) / N: starting the child, Ray's scheduling and
  worker start, sending the results back, writing them and the index.
Projection: wall(G GPUs) = fixed + ceil(500 / G) x (median study time + overhead per study), for the measured
study time and for --study-seconds (a GPU study's typical length, e.g. from a real sweep's index).

    python benchmarks/sweep_overhead.py [--studies 4] [--executors local,ray] [--study-seconds 120]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import common

SWEEP_STUDIES = 500
GPU_COUNTS = (1, 8, 64)


def _spec(folder: Path, data: Path, studies: int, threads: int) -> Path:
    spec = {"models": ["baseline", "p2"], "data": str(data),
            "axes": {"imgsz": [64 + 32 * i for i in range(studies)], "threads": [threads]},
            "settings": {"warmup": 2, "iters": 20, "workers_per_model": 1, "until_decided": False,
                         "benchmark_size": 20}}
    path = folder / "sweep.yaml"
    path.write_text(json.dumps(spec))
    return path


def _run(spec: Path, out: Path, executor: str) -> tuple[float, int]:
    from detbench.sweep.run import SweepOptions, run_sweep

    if executor == "local":
        began = time.perf_counter()
        code = run_sweep(SweepOptions(str(spec), str(out)), echo=lambda line: None)
        return time.perf_counter() - began, code
    from detbench.sweep.ray_executor import open_cluster, run_on_ray

    began = time.perf_counter()
    cluster = open_cluster("local", None)
    try:
        code = run_sweep(SweepOptions(str(spec), str(out), ray="local"), echo=lambda line: None,
                         ray_runner=run_on_ray)
    finally:
        cluster.shutdown()
    return time.perf_counter() - began, code


def measure(spec: Path, out: Path, executor: str) -> dict[str, float]:
    wall, code = _run(spec, out, executor)
    if code != 0:
        raise SystemExit(f"{executor}: the sweep failed (exit {code}); see {out}/sweep.json")
    fixed, _ = _run(spec, out, executor)  # resumed: every study skipped
    entries = json.loads((out / "sweep.json").read_text())["studies"].values()
    seconds = [e["seconds"] for e in entries if e["status"] == "ok"]
    overhead = (wall - sum(seconds) - fixed) / len(seconds)
    return {"wall_s": wall, "sum_study_s": sum(seconds), "median_study_s": statistics.median(seconds),
            "fixed_s": fixed, "overhead_per_study_s": overhead, "studies": len(seconds)}


def projection(fixed: float, study_s: float, overhead: float) -> str:
    parts = []
    for gpus in GPU_COUNTS:
        wall = fixed + math.ceil(SWEEP_STUDIES / gpus) * (study_s + overhead)
        parts.append(f"{gpus} GPU{'s' if gpus > 1 else ''}: {wall / 3600:.2f} h")
    return ", ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=4)
    parser.add_argument("--executors", default="local,ray")
    parser.add_argument("--study-seconds", type=float, default=120.0,
                        help="a study's length to project with besides the measured one (default 120)")
    parser.add_argument("--threads", type=int, default=1,
                        help="each study's --threads (default 1: on a small node, Ray's own processes need a core)")
    parser.add_argument("--workspace", default=None)
    opts = parser.parse_args()
    common.print_header("sweep overhead: local executor and Ray, per study; 500-study projection")
    work = Path(opts.workspace or tempfile.mkdtemp(prefix="detbench-sweep-overhead-")).resolve()
    spec = _spec(work, common.dataset(work / "data", n_val=20), opts.studies, opts.threads)
    for executor in [e.strip() for e in opts.executors.split(",") if e.strip()]:
        found = measure(spec, work / f"out-{executor}", executor)
        print(f"{executor:<6} {found['studies']} studies: wall {found['wall_s']:.1f} s, studies' own "
              f"{found['sum_study_s']:.1f} s (median {found['median_study_s']:.1f} s), fixed {found['fixed_s']:.1f} s "
              f"-> overhead per study {found['overhead_per_study_s']:.2f} s")
        print(f"       500 studies of {found['median_study_s']:.0f} s (measured): "
              f"{projection(found['fixed_s'], found['median_study_s'], found['overhead_per_study_s'])}")
        print(f"       500 studies of {opts.study_seconds:.0f} s: "
              f"{projection(found['fixed_s'], opts.study_seconds, found['overhead_per_study_s'])}")
    print("(the local executor runs on one machine: 8 or 64 GPUs means that many GPUs in it, or Ray)")
    for executor in [e.strip() for e in opts.executors.split(",") if e.strip()]:
        reports = sorted((work / f"out-{executor}" / "studies").glob("*/baseline.json"))
        worst = [json.loads(path.read_text())["latency"]["max_ms"] for path in reports]
        medians = [json.loads(path.read_text())["latency"]["median_ms"] for path in reports]
        print(f"{executor:<6} baseline's median per study {', '.join(f'{m:.2f}' for m in medians)} ms; "
              f"slowest forward {', '.join(f'{w:.0f}' for w in worst)} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
