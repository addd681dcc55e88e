"""Repeatability: the spread of detbench's median across fresh processes.

Runs `detbench bench` N times (default 5), each in a fresh process, on YOLOv8n
(yolov8n.yaml) at imgsz 320 on CPU with the same benchmark list, then prints
each median (with its 95 % CI) and the coefficient of variation of the medians
(std with ddof=1 over mean). Target: CV <= 2 %.

    python benchmarks/repeatability.py [--runs 5] [--imgsz 320] [--warmup 50] [--iters 300] [--threads N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
import numpy as np

from detbench.proc import python_module
from detbench.report.schema import load_report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--weights", default="yolov8n.yaml")
    args = parser.parse_args()

    common.print_header(f"repeatability: median of {args.runs} fresh `detbench bench` processes")
    work = Path(tempfile.mkdtemp(prefix="detbench-repeat-"))
    data = common.dataset(work)
    medians, lines = [], []
    for k in range(args.runs):
        command = [*python_module(sys.executable, "detbench.cli"), "bench", "--weights", args.weights, "--imgsz",
                   str(args.imgsz), "--device", "cpu", "--warmup", str(args.warmup), "--iters", str(args.iters),
                   "--data", str(data), "--out", str(work / "bench"), "--name", f"run{k}"]
        if args.threads:
            command += ["--threads", str(args.threads)]
        start = time.perf_counter()
        result = subprocess.run(command, cwd=common.REPO, capture_output=True, text=True)
        if result.returncode != 0:
            print(result.stdout + result.stderr)
            return 1
        report = load_report(work / "bench" / f"run{k}.json")
        median = report["latency"]["median_ms"]
        ci = report["statistics"]["median_ci95_ms"]
        medians.append(median)
        lines.append(f"process {k + 1}: median {median:.3f} ms, 95% CI {ci[0]:.3f}-{ci[1]:.3f} ms, "
                     f"CV within {report['statistics']['cv']:.1%}, {report['latency']['n_samples']} samples "
                     f"({time.perf_counter() - start:.0f} s wall)")
        print(lines[-1], flush=True)
    values = np.asarray(medians)
    cv = float(values.std(ddof=1) / values.mean())
    print(f"threads {report['settings']['threads']}, warmup {args.warmup}, iters {args.iters}, imgsz {args.imgsz}")
    print(f"medians: {', '.join(f'{m:.3f}' for m in medians)} ms; mean {values.mean():.3f} ms, "
          f"range {values.min():.3f}-{values.max():.3f} ms")
    print(f"CV of the median across {args.runs} processes: {cv:.2%}; target <= 2 %: {common.verdict(cv <= 0.02)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
