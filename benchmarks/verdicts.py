"""Error rates of detbench's verdicts, measured through the real CLI on pairs whose true difference is known.

Pairs (YOLOv8n from its YAML, CPU):
- A/A: the same checkpoint under two names (true Δ 0);
- +5 %: the model against a copy whose head, after it has run, busy-waits 5 % of the time the forward has
  taken so far (plugin layers, `--plugin busywait.py`), so every forward takes 1.05 times as long whatever the
  machine's state: the true Δ is +5 %. Both sides carry the same wrapper layers (the plain one with a share
  of 0), so they differ by the busy-wait only;
- -5 %: the same two models the other way round: the delayed one is the baseline (true Δ 1/1.05 - 1 = -4.76 %).
Each trial is one `detbench ablate` of the pair (interleaved workers, until decided) in its own folder with its
own --order-seed; the benchmark list and its decoded inputs are shared by all trials.

Reported: A/A pairs called faster or slower (false positives), the right verdict for ±5 % (power), how often the
CI holds the true Δ (coverage), the turn seconds until the deciding look, and the wall time of a trial.
Targets: A/A false at most 1 of 20; ±5 % right at least 19 of 20; coverage at least 18 of 20; median time to
decide at most 60 s of turns.

    python benchmarks/verdicts.py [--trials 20] [--kinds aa,plus,minus] [--imgsz 320] [--threads 1]
                                  [--workers-per-model 2] [--iters 80] [--max-time 300] [--workspace DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

from detbench.proc import python_module

PLUGIN = '''"""Two wrapper layers that add a known share to every forward's own time.

StartClock wraps the first layer and notes when the forward began; ProportionalDelay wraps the last layer
(the head) and, after it, busy-waits `share` times the time the forward has taken so far. So each forward
takes (1 + share) times what it would have taken, whatever state the machine is in.
"""
import time

from torch import nn

_started = [0.0]


def _copy_layer_keys(wrapper: nn.Module, inner: nn.Module) -> None:
    for key in ("f", "i", "type", "np"):
        setattr(wrapper, key, getattr(inner, key))


class StartClock(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        _copy_layer_keys(self, inner)

    def forward(self, x):
        _started[0] = time.perf_counter()
        return self.inner(x)


class ProportionalDelay(nn.Module):
    def __init__(self, inner: nn.Module, share: float) -> None:
        super().__init__()
        self.inner = inner
        self.share = float(share)
        _copy_layer_keys(self, inner)

    def forward(self, x):
        y = self.inner(x)
        now = time.perf_counter()
        if not _started[0]:  # the head without the first layer before it: nothing to be proportional to
            return y
        end = now + self.share * (now - _started[0])
        while time.perf_counter() < end:
            pass
        return y

    def __getattr__(self, name):  # the head's own attributes (stride, nc, end2end, ...) as before
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("inner"), name)
'''
EFFECT = 0.05
RIGHT = {"aa": ("equivalent", "undecided"), "plus": ("slower",), "minus": ("faster",)}


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(python_module(sys.executable, "detbench.cli", *args), cwd=cwd, capture_output=True,
                            text=True)
    if result.returncode != 0:
        print(result.stdout[-2000:] + result.stderr[-2000:])
        raise SystemExit(f"detbench {args[0]} failed (exit {result.returncode})")
    return result


def wrapped_checkpoint(plain: Path, module, share: float, target: Path, data: Path) -> Path:
    """The plain checkpoint's own weights with the clock on its first layer and the delay on its head."""
    import torch
    from ultralytics import YOLO

    yolo = YOLO(str(plain))
    layers = yolo.model.model
    layers[0] = module.StartClock(layers[0])
    layers[-1] = module.ProportionalDelay(layers[-1], share)
    yolo.save(target)
    ckpt = torch.load(target, map_location="cpu", weights_only=False)
    ckpt["train_args"] = {"data": str(data.resolve()), "model": "yolov8n.yaml", "imgsz": 640}
    torch.save(ckpt, target)
    return target


def make_models(work: Path, data: Path) -> tuple[dict[str, tuple[Path, Path]], Path]:
    """Each kind's (baseline, other) checkpoints, and the plugin file they need.

    For ±5 % both sides carry the same wrappers, one with share 0: the pair differs by the busy-wait only.
    """
    plain = save_untrained_model(work, data)
    plugin = work / "busywait.py"
    plugin.write_text(PLUGIN)
    spec = importlib.util.spec_from_file_location("busywait", plugin)
    module = importlib.util.module_from_spec(spec)
    sys.modules["busywait"] = module  # the name the workers' --plugin gives it, so the pickle resolves
    spec.loader.exec_module(module)
    zero = wrapped_checkpoint(plain, module, 0.0, work / "zero.pt", data)
    delayed = wrapped_checkpoint(plain, module, EFFECT, work / "delayed.pt", data)
    return {"aa": (plain, plain), "plus": (zero, delayed), "minus": (delayed, zero)}, plugin


def save_untrained_model(work: Path, data: Path) -> Path:
    from detbench.data.artifacts import save_untrained

    return save_untrained("yolov8n.yaml", work / "plain.pt", data)


def run_folder(runs: Path, name: str, weights: Path) -> None:
    target = runs / name / "seed0" / "weights" / "best.pt"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(weights.read_bytes())


def true_delta(kind: str) -> float:
    """The Δ (%) the pair has by construction: every forward of the delayed model takes 1 + EFFECT times as long
    (the few microseconds of the forward outside its layers aside)."""
    return {"aa": 0.0, "plus": 100.0 * EFFECT, "minus": 100.0 * (1.0 / (1.0 + EFFECT) - 1.0)}[kind]


def trial(kind: str, seed: int, runs: Path, work: Path, plugin: Path, data: Path, opts: argparse.Namespace) -> dict:
    out = work / kind / f"trial{seed:02d}"
    shared_list = work / "benchmark_list.txt"
    reuse = ["--use_benchmark_list"] if shared_list.exists() else []
    start = time.perf_counter()
    result = subprocess.run([*python_module(sys.executable, "detbench.cli", "ablate"), "--runs", str(runs),
                             "--out", str(out),
                             "--list", str(shared_list), *reuse, "--data", str(data), "--imgsz", str(opts.imgsz),
                             "--threads", str(opts.threads), "--device", "cpu", "--workers-per-model",
                             str(opts.workers_per_model), "--iters", str(opts.iters), "--study-time",
                             str(opts.max_time), "--order-seed", str(seed), "--plugin", str(plugin), "--quiet"],
                            cwd=work, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        print(result.stdout[-2000:] + result.stderr[-2000:])
        raise SystemExit(f"trial {kind} {seed} failed (exit {result.returncode})")
    record = json.loads((out / "study.json").read_text())
    (comparison,) = record["comparisons"]
    decided_at = comparison["decided_at_round"]
    looks = {look["rounds"]: look["turn_seconds"] for look in record["looks"]}
    low, high = comparison["ci_pct"] or (None, None)
    truth = true_delta(kind)
    return {"kind": kind, "seed": seed, "true_delta_pct": truth, "verdict": comparison["verdict"],
            "delta_pct": comparison["delta_pct"],
            "ci_pct": comparison["ci_pct"], "covered": low is not None and low <= truth <= high,
            "decided_at_round": decided_at, "turn_s_to_decide": looks.get(decided_at) if decided_at else None,
            "turn_s": record["turn_seconds"], "rounds": record["rounds_done"], "wall_s": wall,
            "process_excess_ratio": (record.get("process_spread") or {}).get("excess_ratio")}


def summarize(kind: str, rows: list[dict]) -> str:
    n = len(rows)
    verdicts = {v: sum(r["verdict"] == v for r in rows) for v in ("faster", "slower", "equivalent", "undecided")}
    right = sum(r["verdict"] in RIGHT[kind] for r in rows)
    decide = [r["turn_s_to_decide"] for r in rows if r["turn_s_to_decide"] is not None]
    deltas = [r["delta_pct"] for r in rows]
    line = (f"{kind:<6} n={n}  verdicts {verdicts}  "
            + (f"false faster/slower {verdicts['faster'] + verdicts['slower']}/{n}  " if kind == "aa"
               else f"right {right}/{n}  ")
            + f"coverage {sum(r['covered'] for r in rows)}/{n}  "
            f"Δ mean {statistics.fmean(deltas):+.2f} % "
            f"(true {statistics.fmean(r['true_delta_pct'] for r in rows):+.2f} %)  "
            f"turn s to decide: median {statistics.median(decide):.1f} (decided {len(decide)}/{n})  "
            f"wall per trial median {statistics.median(r['wall_s'] for r in rows):.0f} s")
    return line if decide else line.replace("median nan", "none")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--first-trial", type=int, default=0,
                        help="order seed of the first trial, to add trials to an earlier run (default 0)")
    parser.add_argument("--kinds", default="aa,plus,minus")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers-per-model", type=int, default=2)
    parser.add_argument("--iters", type=int, default=80, help="samples per model before the first look (default 80)")
    parser.add_argument("--max-time", type=float, default=300.0)
    parser.add_argument("--workspace", default=None)
    parser.add_argument("--json", default=None, help="also write every trial's row to this file")
    opts = parser.parse_args()
    common.print_header("verdicts: A/A and ±5 % pairs through `detbench ablate`")
    work = Path(opts.workspace or tempfile.mkdtemp(prefix="detbench-verdicts-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = common.dataset(work / "data")
    pairs, plugin = make_models(work, data)
    print(f"settings: imgsz {opts.imgsz}, {opts.threads} thread(s), {opts.workers_per_model} worker(s) per model, "
          f"iters {opts.iters}, max-time {opts.max_time:g} s; delay: {EFFECT:.0%} of each forward's own time")
    rows: list[dict] = []
    for kind in [k.strip() for k in opts.kinds.split(",") if k.strip()]:
        runs = work / kind / "runs"
        run_folder(runs, "baseline", pairs[kind][0])
        run_folder(runs, "other", pairs[kind][1])
        found = []
        for seed in range(opts.first_trial, opts.first_trial + opts.trials):
            row = trial(kind, seed, runs, work, plugin, data, opts)
            found.append(row)
            ci = row["ci_pct"]
            print(f"  {kind} trial {seed:2d}: {row['verdict']:<10} Δ {row['delta_pct']:+6.2f} % "
                  f"(true {row['true_delta_pct']:+.2f} %) CI "
                  f"[{ci[0]:+.2f}, {ci[1]:+.2f}] covered {row['covered']!s:<5} decided at round "
                  f"{row['decided_at_round']} ({row['turn_s_to_decide']} s of turns), wall {row['wall_s']:.0f} s",
                  flush=True)
            if opts.json:  # after every trial, so that an interrupted run keeps what it measured
                Path(opts.json).write_text(json.dumps(rows + found, indent=2))
        print(summarize(kind, found), flush=True)
        rows += found
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
