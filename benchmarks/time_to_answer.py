"""Time to answer: the wall time of the six-model demo ablation, split into set-up and timed loops.

Runs `detbench demo` in a fresh workspace (dataset and checkpoints written
first), then once more with `--force` (workspace reused, every model
benchmarked again). Each model's report carries `timing_phases_s`, summed over
its worker processes; summed over the six models:
- set-up: import (process start to Ultralytics imported), load, list, flops, decode;
- timed loops: warmup + timed;
- other bench: device_setup and report writing;
- outside the bench processes: the rest of the wall time (dataset and
  checkpoints, process spawning, the ablation driver, compare, plots).
Target: set-up <= 25 % of the wall time.

    python benchmarks/time_to_answer.py [--workspace DIR] [demo flags, e.g. --iters 80 --max-time 120]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

from detbench.proc import python_module

SETUP = ("import", "load", "list", "flops", "decode")
LOOPS = ("warmup", "timed", "pipeline")


def run_demo(workspace: Path, extra: list[str]) -> float:
    command = [*python_module(sys.executable, "detbench.cli"), "demo", "--workspace", str(workspace), *extra]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=common.REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        print(result.stdout[-3000:] + result.stderr[-3000:])
        raise SystemExit(f"detbench demo failed (exit {result.returncode})")
    return wall


def split(workspace: Path, wall: float, label: str) -> float:
    totals: dict[str, float] = {}
    models = 0
    for path in sorted((workspace / "results" / "bench").glob("*.json")):
        report = json.loads(path.read_text())
        phases = report.get("timing_phases_s") if isinstance(report, dict) else None
        if not isinstance(phases, dict):
            continue
        models += 1
        for key, value in phases.items():
            if isinstance(value, (int, float)):
                totals[key] = totals.get(key, 0.0) + value
    setup = sum(totals.get(k, 0.0) for k in SETUP)
    loops = sum(totals.get(k, 0.0) for k in LOOPS)
    other_bench = sum(v for k, v in totals.items() if k not in SETUP + LOOPS)
    outside = wall - setup - loops - other_bench
    print(f"{label}: wall {wall:.1f} s for {models} models")
    print("  phases summed over models and their workers: " + ", ".join(f"{k} {v:.1f} s" for k, v in totals.items()))
    print(f"  set-up {setup:.1f} s ({setup / wall:.0%}), timed loops {loops:.1f} s ({loops / wall:.0%}), "
          f"other bench {other_bench:.1f} s ({other_bench / wall:.0%}), outside the bench processes "
          f"{outside:.1f} s ({outside / wall:.0%})")
    in_bench = setup + loops + other_bench
    print(f"  set-up share of wall {setup / wall:.1%} (of the bench processes' time {setup / in_bench:.1%}); "
          f"target <= 25 %: {common.verdict(setup / wall <= 0.25)}")
    return setup / wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", default=None, help="demo workspace (default: a fresh temporary folder)")
    args, extra = parser.parse_known_args()
    common.print_header("time to answer: `detbench demo` (six models), set-up vs timed loops")
    workspace = Path(args.workspace) if args.workspace else Path(tempfile.mkdtemp(prefix="detbench-demo-")) / "demo"
    print(f"workspace {workspace}; demo flags: {' '.join(extra) or '(defaults)'}")
    split(workspace, run_demo(workspace, extra), "fresh workspace")
    split(workspace, run_demo(workspace, [*extra, "--force"]), "re-run with --force (workspace reused)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
