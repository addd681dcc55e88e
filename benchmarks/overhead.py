"""Overhead: what detbench's timed loop adds per iteration, against a bare loop over the same forward.

Three figures, each against YOLOv8n's median latency (imgsz 320, CPU):
1. in-sample overhead: the median sample detbench records around a forward
   that does nothing (the perf_counter_ns pair and the call): what every
   latency sample carries on top of the model;
2. loop overhead: wall time per iteration of detbench's loop minus a bare
   `for` loop, both around the do-nothing forward (detbench also prepares the
   next batch, appends samples and checks the stopping rule, outside the
   timed region);
3. direct: detbench's mean sample against a bare loop's mean time per
   forward of the real model, pooled over many short interleaved rounds
   (noisy: it differs by the machine's noise as much as by detbench).
Target: overhead <= 1 % of YOLOv8n's latency.

    python benchmarks/overhead.py [--imgsz 320] [--threads N] [--rounds 10] [--iters 60]
"""

from __future__ import annotations

import argparse
import time

import common  # noqa: F401  (puts the repository on sys.path)
import numpy as np
import torch

from detbench.config import available_cores
from detbench.measure.timing import run_timed_loop

CPU = torch.device("cpu")


def bare_loop_ms(forward, x: torch.Tensor, n: int) -> float:
    """Mean wall milliseconds per call of a plain loop."""
    with torch.inference_mode():
        start = time.perf_counter_ns()
        for _ in range(n):
            forward(x)
        return (time.perf_counter_ns() - start) / 1e6 / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--threads", type=int, default=available_cores())
    parser.add_argument("--iters", type=int, default=60, help="iterations per round")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--noop-iters", type=int, default=200_000)
    args = parser.parse_args()

    common.print_header("overhead: detbench's timed loop vs a bare loop")
    model, inputs = common.yolov8n_and_inputs(args.imgsz, args.threads)
    x = inputs.batch(0, 1, CPU, torch.float32)

    def next_input(i: int) -> torch.Tensor:
        return inputs.batch(i, 1, CPU, torch.float32)

    def nothing(_x: torch.Tensor) -> None:
        return None

    run_timed_loop(model, next_input, 50, 1, CPU)  # warm-up
    ours, bare = [], []
    for round_k in range(args.rounds):
        for who in (["detbench", "bare"] if round_k % 2 == 0 else ["bare", "detbench"]):
            if who == "detbench":
                ours.append(float(np.mean(run_timed_loop(model, next_input, 0, args.iters, CPU).latency_ms)))
            else:
                bare.append(bare_loop_ms(model, x, args.iters))
    latency = float(np.mean(ours))
    print(f"YOLOv8n fused, imgsz {args.imgsz}, cpu, {args.threads} threads: detbench mean sample {latency:.3f} ms "
          f"over {args.rounds} rounds of {args.iters}")

    noop = run_timed_loop(nothing, lambda i: x, 1000, args.noop_iters, CPU)
    in_sample_us = float(np.median(noop.latency_ms)) * 1e3
    loop_us = noop.timed_s / args.noop_iters * 1e6
    bare_us = bare_loop_ms(nothing, x, args.noop_iters) * 1e3
    prepared = run_timed_loop(nothing, next_input, 100, 5000, CPU)
    prep_us = prepared.timed_s / 5000 * 1e6
    print(f"1. in-sample overhead (median sample of a do-nothing forward): {in_sample_us:.3f} us = "
          f"{in_sample_us / 1e3 / latency:.5%} of the latency; {common.verdict(in_sample_us / 1e3 <= 0.01 * latency)}")
    print(f"2. loop overhead per iteration (same input): {loop_us - bare_us:.3f} us "
          f"(detbench {loop_us:.3f} us vs bare {bare_us:.3f} us) = {(loop_us - bare_us) / 1e3 / latency:.4%}; "
          f"with the next batch prepared from the cache (outside the timed region): {prep_us:.1f} us per iteration "
          f"= {prep_us / 1e3 / latency:.3%} of the latency in wall time")
    direct = float(np.mean(ours)) - float(np.mean(bare))
    paired = np.subtract(ours, bare) / np.asarray(bare)
    print(f"3. direct: detbench mean sample {np.mean(ours):.3f} ms vs bare loop {np.mean(bare):.3f} ms per forward: "
          f"difference {direct * 1e3:+.1f} us = {direct / float(np.mean(bare)):+.2%}; per-round differences "
          f"median {np.median(paired):+.2%}, range {paired.min():+.2%} to {paired.max():+.2%} (machine noise "
          f"included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
