"""Agreement: detbench's median latency against torch.utils.benchmark's, same model, threads and process.

YOLOv8n (from yolov8n.yaml, fused) at imgsz 320 on CPU, one warm-up of 50
forwards, then many short interleaved rounds: detbench's own timed loop
(run_timed_loop: one perf_counter_ns sample per forward over the cached
letterboxed images) and `torch.utils.benchmark.Timer("model(x)")
.blocked_autorange()` take turns (alternating which goes first), so both see
the same spells of noise. The ratio compares the median of all detbench
samples with the median of all Timer blocks (each block: mean time per run).
Target: within +/-5 %.

    python benchmarks/agreement.py [--imgsz 320] [--threads N] [--rounds 10] [--iters 60] [--min-run-time 1]
"""

from __future__ import annotations

import argparse

import common  # noqa: F401  (puts the repository on sys.path)
import numpy as np
import torch
from torch.utils.benchmark import Timer

from detbench.config import available_cores
from detbench.measure.timing import run_timed_loop


def timer_block_times_ms(model, x: torch.Tensor, threads: int, min_run_time: float) -> list[float]:
    """Timer.blocked_autorange's blocks: the mean milliseconds per run of each block."""
    timer = Timer(stmt="model(x)", globals={"model": model, "x": x}, num_threads=threads)
    with torch.inference_mode():
        measurement = timer.blocked_autorange(min_run_time=min_run_time)
    return [t * 1e3 for t in measurement.times]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--threads", type=int, default=available_cores())
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--iters", type=int, default=60, help="detbench iterations per round")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--min-run-time", type=float, default=1.0, help="Timer min_run_time per round (s)")
    args = parser.parse_args()

    common.print_header("agreement: detbench median vs torch.utils.benchmark.Timer.blocked_autorange median")
    model, inputs = common.yolov8n_and_inputs(args.imgsz, args.threads)
    cpu = torch.device("cpu")
    x = inputs.batch(0, 1, cpu, torch.float32)
    print(f"YOLOv8n fused, imgsz {args.imgsz}, batch 1, cpu, {args.threads} threads; warm-up {args.warmup}; "
          f"{args.rounds} interleaved rounds of {args.iters} detbench iterations and Timer min_run_time "
          f"{args.min_run_time} s")
    torch.set_num_threads(args.threads)
    run_timed_loop(model, lambda i: inputs.batch(i, 1, cpu, torch.float32), args.warmup, 1, cpu)
    ours: list[float] = []
    theirs: list[float] = []
    ratios = []
    for round_k in range(args.rounds):
        mine: list[float] = []
        blocks: list[float] = []
        for who in (["detbench", "timer"] if round_k % 2 == 0 else ["timer", "detbench"]):
            if who == "detbench":
                torch.set_num_threads(args.threads)
                mine = run_timed_loop(model, lambda i: inputs.batch(i, 1, cpu, torch.float32), 0, args.iters,
                                      cpu).latency_ms
            else:
                blocks = timer_block_times_ms(model, x, args.threads, args.min_run_time)
        ours += mine
        theirs += blocks
        ratios.append(float(np.median(mine) / np.median(blocks)))
        print(f"round {round_k + 1}: detbench median {np.median(mine):.3f} ms ({len(mine)} samples), Timer median "
              f"{np.median(blocks):.3f} ms ({len(blocks)} blocks), ratio {ratios[-1]:.4f}")
    ratio = float(np.median(ours) / np.median(theirs))
    print(f"round ratios: median {np.median(ratios):.4f}, range {min(ratios):.4f}-{max(ratios):.4f}")
    print(f"overall: detbench {np.median(ours):.3f} ms ({len(ours)} samples) / Timer {np.median(theirs):.3f} ms "
          f"({len(theirs)} blocks) = ratio {ratio:.4f} ({ratio - 1:+.1%}); target within +/-5 %: "
          f"{common.verdict(abs(ratio - 1) <= 0.05)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
