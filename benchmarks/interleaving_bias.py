"""Does taking turns change what a model measures? Interleaved medians against isolated `bench` runs.

For each thread count, two models (YOLOv8n and the zoo's ghost, imgsz 320 by default) are measured:
1. each alone, by `detbench bench` (its own process, a plain timed loop);
2. together, by `detbench ablate --no-until-decided` (worker processes taking turns, with the default
   --turn-warmup of one untimed forward per turn);
3. each alone again, so that drift of the machine over the run shows.
Reported: each model's interleaved median against the mean of its two isolated medians, and the two isolated
runs' own disagreement (the noise floor of the comparison). Target: within ±2 %.
The isolated runs are pinned to the cores the study pins its workers to (`detbench.study.engine.shared_cpus`),
so that placement is the same in both.

    python benchmarks/interleaving_bias.py [--threads 1,2] [--imgsz 320] [--iters 300] [--workspace DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import common

MODELS = ("yolov8n.yaml", "ghost")


def cli(*args: str, cwd: Path, cpus: list[int] | None = None) -> None:
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    result = subprocess.run([sys.executable, "-m", "detbench.cli", *args], cwd=cwd, capture_output=True, text=True,
                            preexec_fn=pin)
    if result.returncode != 0:
        print(result.stdout[-2000:] + result.stderr[-2000:])
        raise SystemExit(f"detbench {args[0]} failed (exit {result.returncode})")


def median(path: Path) -> float:
    return json.loads(path.read_text())["latency"]["median_ms"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--workspace", default=None)
    opts = parser.parse_args()
    common.print_header("interleaving bias: interleaved study medians against isolated bench runs")
    work = Path(opts.workspace or tempfile.mkdtemp(prefix="detbench-bias-")).resolve()
    data = common.dataset(work / "data")
    shared_list = work / "benchmark_list.txt"
    from detbench.study.engine import shared_cpus

    for threads in [int(t) for t in opts.threads.split(",")]:
        cpus = shared_cpus(threads)
        common_flags = ["--data", str(data), "--imgsz", str(opts.imgsz), "--threads", str(threads), "--device",
                        "cpu", "--list", str(shared_list)]
        isolated: dict[str, list[float]] = {name: [] for name in MODELS}
        for repeat in ("before", "after"):
            for name in MODELS:
                out = work / f"t{threads}" / f"isolated_{repeat}"
                reuse = ["--use_benchmark_list"] if shared_list.exists() else []
                cli("bench", "--weights", name, "--name", Path(name).stem, "--out", str(out), "--iters",
                    str(opts.iters), *common_flags, *reuse, cwd=work, cpus=cpus)
                isolated[name].append(median(out / f"{Path(name).stem}.json"))
            if repeat == "before":
                study = work / f"t{threads}" / "study"
                cli("ablate", "--models", ",".join(MODELS), "--baseline", "yolov8n", "--out", str(study),
                    "--no-until-decided", "--iters", str(opts.iters), "--use_benchmark_list", *common_flags,
                    "--quiet", cwd=work)
        print(f"threads {threads}: isolated runs pinned to cores {cpus}, as the study's workers", flush=True)
        for name in MODELS:
            alone = sum(isolated[name]) / 2
            together = median(work / f"t{threads}" / "study" / f"{Path(name).stem}.json")
            drift = 100 * (isolated[name][1] / isolated[name][0] - 1)
            print(f"threads {threads}  {Path(name).stem:<8} isolated {isolated[name][0]:.2f} / "
                  f"{isolated[name][1]:.2f} ms (before/after: {drift:+.1f} %)  interleaved {together:.2f} ms  "
                  f"-> {100 * (together / alone - 1):+.1f} % vs isolated", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
