"""Does taking turns change what a model measures? Interleaved turns against an isolated bench loop.

Two designs (`--design`):

probe (the default): one `detbench ablate --bias-probe N` per thread count and --turn-warmup. After each round
one worker, drawn at random, also times N forwards back to back on its turn's input, as an isolated `bench`
loop runs them; each probe is paired with that worker's own turn of the same round, seconds apart, so that the
machine's drift cancels (`detbench.stats.bias`). Reported per model: the median of the probed turns over the
median of the probes' steady forwards with its bootstrap interval over whole probes (what the ±2 % target is
judged on: "each model's median in an interleaved study within ±2 % of an isolated bench"), and the mean
log-ratio with its t interval.

blocks: whole runs. This machine drifts between fast and slow states over minutes, so an interleaved median
and an isolated one measured minutes apart differ by the drift, not by the interleaving. The runs are
therefore made in short blocks, alternated and compared with their neighbours:
- one cycle is an isolated block (`detbench bench` of each model, its own process, a plain timed loop) and an
  interleaved block (one `detbench ablate --no-until-decided` of both models per --turn-warmup value, with the
  study's default workers);
- even cycles run the isolated block first, odd cycles the interleaved one first, so that a steady drift
  cancels over the cycles;
- each cycle gives one ratio per model: its interleaved median over its isolated median of the same cycle,
  measured a minute apart at most.
Reported per thread count, model and --turn-warmup: the mean of the log-ratios over the cycles as a percentage,
its 95 % t interval, and every cycle's ratio. Target: within ±2 % (the interval inside ±2 %: met; outside:
not met; straddling: inconclusive at this number of cycles).
The isolated runs are pinned to the cores the study pins its workers to (`detbench.study.engine.shared_cpus`),
so that placement is the same in both.

    python benchmarks/interleaving_bias.py [--design probe|blocks] [--threads 1,2] [--turn-warmups 1]
                                           [--imgsz 320] [--iters 100] [--workspace DIR]
                                           probe: [--rounds 150] [--probe-forwards 10] [--pool DIR,DIR];
                                           blocks: [--cycles 6]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import common
from scipy import stats

from detbench.proc import python_module

MODELS = ("yolov8n.yaml", "ghost")
TARGET_PCT = 2.0


def cli(*args: str, cwd: Path, cpus: list[int] | None = None) -> None:
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    result = subprocess.run(python_module(sys.executable, "detbench.cli", *args), cwd=cwd, capture_output=True,
                            text=True, preexec_fn=pin)
    if result.returncode != 0:
        print(result.stdout[-2000:] + result.stderr[-2000:])
        raise SystemExit(f"detbench {args[0]} failed (exit {result.returncode})")


def median(path: Path) -> float:
    return json.loads(path.read_text())["latency"]["median_ms"]


def stem(name: str) -> str:
    return Path(name).stem


def with_list(flags: list[str], shared_list: Path) -> list[str]:
    """The common flags, reusing the shared benchmark list once the first run has drawn it."""
    return [*flags, "--list", str(shared_list)] + (["--use_benchmark_list"] if shared_list.exists() else [])


def isolated_block(folder: Path, flags: list[str], shared_list: Path, iters: int, cpus: list[int], work: Path,
                   reverse: bool) -> dict[str, float]:
    medians = {}
    for name in (reversed(MODELS) if reverse else MODELS):
        cli("bench", "--weights", name, "--name", stem(name), "--out", str(folder), "--iters", str(iters),
            *with_list(flags, shared_list), cwd=work, cpus=cpus)
        medians[stem(name)] = median(folder / f"{stem(name)}.json")
    return medians


def interleaved_block(folder: Path, flags: list[str], shared_list: Path, iters: int, turn_warmup: int, seed: int,
                      work: Path) -> dict[str, float]:
    cli("ablate", "--models", ",".join(MODELS), "--baseline", stem(MODELS[0]), "--out", str(folder),
        "--no-until-decided", "--iters", str(iters), "--turn-warmup", str(turn_warmup), "--order-seed", str(seed),
        *with_list(flags, shared_list), "--quiet", cwd=work)
    return {stem(name): median(folder / f"{stem(name)}.json") for name in MODELS}


def run_cycle(cycle: int, folder: Path, flags: list[str], shared_list: Path, turn_warmups: list[int],
              cpus: list[int], iters: int, work: Path) -> tuple[dict[str, float], dict[int, dict[str, float]]]:
    """One isolated and one interleaved block, isolated first in even cycles; models and turn-warmups alternate."""
    def isolated() -> dict[str, float]:
        return isolated_block(folder / "isolated", flags, shared_list, iters, cpus, work, reverse=cycle % 2 == 1)

    def interleaved() -> dict[int, dict[str, float]]:
        order = turn_warmups if cycle % 2 == 0 else list(reversed(turn_warmups))
        return {tw: interleaved_block(folder / f"study_tw{tw}", flags, shared_list, iters, tw, cycle, work)
                for tw in order}

    if cycle % 2 == 0:
        alone = isolated()
        return alone, interleaved()
    together = interleaved()
    return isolated(), together


def target_status(low: float, high: float) -> str:
    """What an interval (%) says about the ±2 % target."""
    if -TARGET_PCT <= low and high <= TARGET_PCT:
        return "met"
    if high < -TARGET_PCT or low > TARGET_PCT:
        return "not met"
    return "inconclusive"


def summary(log_ratios: list[float]) -> tuple[float, float, float, str]:
    """Mean Δ % over cycles, its 95 % t interval, and what that says about the ±2 % target."""
    n = len(log_ratios)
    mean = statistics.fmean(log_ratios)
    half = stats.t.ppf(0.975, n - 1) * statistics.stdev(log_ratios) / math.sqrt(n) if n > 1 else math.inf
    low, high = (100 * (math.exp(mean - half) - 1), 100 * (math.exp(mean + half) - 1))
    return 100 * (math.exp(mean) - 1), low, high, target_status(low, high)


def probe_study(folder: Path, flags: list[str], shared_list: Path, rounds: int, forwards: int, turn_warmup: int,
                work: Path) -> dict:
    """One study with the bias probe; its study.json's interleaving_bias."""
    cli("ablate", "--models", ",".join(MODELS), "--baseline", stem(MODELS[0]), "--out", str(folder),
        "--no-until-decided", "--iters", str(2 * rounds), "--turn-warmup", str(turn_warmup), "--bias-probe",
        str(forwards), *with_list(flags, shared_list), "--quiet", cwd=work)
    return json.loads((folder / "study.json").read_text())["interleaving_bias"]


def study_units(folder: Path, tag: str) -> tuple[dict, list]:
    """A finished probe study's turns ({model: {label: {round: ms}}}) and probes, labels prefixed with `tag`."""
    # imported here, not at the top: loads numpy and scipy through the package, after common set the process up
    from detbench.stats.bias import Probe

    record = json.loads((folder / "study.json").read_text())
    turns: dict[str, dict[str, dict[int, float]]] = {}
    for model in record["models"]:
        samples = json.loads(Path(model["report"]).read_text())["samples"]
        mine = turns.setdefault(model["name"], {})
        for ms, rnd, worker in zip(samples["latency_ms"], samples["round"], samples["worker"], strict=True):
            mine.setdefault(f"{tag}{model['name']}#{worker}", {})[int(rnd)] = float(ms)
    probes = [Probe(p["round"], f"{tag}{p['worker']}", p["worker"].split("#")[0], [p["first_ms"], *p["steady_ms"]])
              for p in record["interleaving_bias"]["probes"]]
    return turns, probes


def pool(folders: list[Path]) -> None:
    """Pool the probes of finished studies (each probe stays paired with its own turn) and report per model."""
    from detbench.stats.bias import interleaving_bias

    turns: dict[str, dict] = {}
    probes: list = []
    for index, folder in enumerate(folders):
        found_turns, found_probes = study_units(folder, f"s{index}:")
        for model, series in found_turns.items():
            turns.setdefault(model, {}).update(series)
        probes += found_probes
    for model, row in interleaving_bias(turns, probes).items():
        ci, median_ci = row["ci_pct"], row["median_ratio_ci_pct"]
        print(f"pooled {len(folders)} studies  {model:<8} over {row['paired']} probes: median turn vs median loop "
              f"forward {row['paired_median_ratio_pct']:+.2f} % [{median_ci[0]:+.2f}, {median_ci[1]:+.2f}] -> "
              f"{target_status(*median_ci)} (±{TARGET_PCT:g} %); mean log-ratio {row['bias_pct']:+.2f} % "
              f"[{ci[0]:+.2f}, {ci[1]:+.2f}]", flush=True)


def run_probe_design(opts: argparse.Namespace, work: Path, data: Path, shared_list: Path,
                     turn_warmups: list[int]) -> None:
    for threads in [int(t) for t in opts.threads.split(",")]:
        flags = ["--data", str(data), "--imgsz", str(opts.imgsz), "--threads", str(threads), "--device", "cpu"]
        for tw in turn_warmups:
            found = probe_study(work / f"t{threads}" / f"probe_tw{tw}", flags, shared_list, opts.rounds,
                                opts.probe_forwards, tw, work)
            for model, row in found["models"].items():
                ci, median_ci = row["ci_pct"], row["median_ratio_ci_pct"]
                status = target_status(*median_ci) if median_ci else "not estimated"
                mean = f"{row['bias_pct']:+.2f} % [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "n/a"
                median = (f"{row['paired_median_ratio_pct']:+.2f} % [{median_ci[0]:+.2f}, {median_ci[1]:+.2f}]"
                          if median_ci else "n/a")
                print(f"threads {threads}  {model:<8} turn-warmup {tw}  over {row['paired']} probes: median turn vs "
                      f"median loop forward {median} -> {status} (±{TARGET_PCT:g} %); mean log-ratio {mean}",
                      flush=True)
            print(f"  ({found['probe_seconds']:.0f} s of probes, {opts.probe_forwards} forwards each)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--design", choices=("probe", "blocks"), default="probe")
    parser.add_argument("--pool", default=None,
                        help="probe: instead of running, pool the probes of finished studies (comma-separated "
                             "study folders, e.g. WS/t1/probe_tw1 of several runs at one thread count)")
    parser.add_argument("--rounds", type=int, default=150, help="probe: rounds of the study (default 150)")
    parser.add_argument("--probe-forwards", type=int, default=10, help="probe: forwards per probe (default 10)")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--turn-warmups", default="1", help="--turn-warmup values to try, comma-separated")
    parser.add_argument("--cycles", type=int, default=6, help="blocks: isolated/interleaved cycles (default 6)")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--iters", type=int, default=100, help="blocks: timed forwards per model and block")
    parser.add_argument("--workspace", default=None)
    opts = parser.parse_args()
    if opts.pool:
        pool([Path(folder) for folder in opts.pool.split(",") if folder])
        return 0
    common.print_header(f"interleaving bias: interleaved turns against an isolated loop ({opts.design} design)")
    work = Path(opts.workspace or tempfile.mkdtemp(prefix="detbench-bias-")).resolve()
    data = common.dataset(work / "data")
    shared_list = work / "benchmark_list.txt"
    turn_warmups = [int(t) for t in opts.turn_warmups.split(",")]
    if opts.design == "probe":
        run_probe_design(opts, work, data, shared_list, turn_warmups)
        return 0
    # imported here, not at the top: loads torch, which the argument parsing above does not need
    from detbench.study.engine import shared_cpus

    for threads in [int(t) for t in opts.threads.split(",")]:
        cpus = shared_cpus(threads)
        print(f"threads {threads}: isolated runs pinned to cores {cpus}, as the study's workers", flush=True)
        ratios: dict[tuple[str, int], list[float]] = {(stem(m), tw): [] for m in MODELS for tw in turn_warmups}
        flags = ["--data", str(data), "--imgsz", str(opts.imgsz), "--threads", str(threads), "--device", "cpu"]
        for cycle in range(opts.cycles):
            alone, together = run_cycle(cycle, work / f"t{threads}" / f"cycle{cycle}", flags, shared_list,
                                        turn_warmups, cpus, opts.iters, work)
            parts = []
            for tw, medians in sorted(together.items()):
                for model, value in medians.items():
                    ratios[(model, tw)].append(math.log(value / alone[model]))
                    parts.append(f"{model} tw{tw} {value:.2f}/{alone[model]:.2f} ms "
                                 f"({100 * (value / alone[model] - 1):+.1f} %)")
            first = "isolated first" if cycle % 2 == 0 else "interleaved first"
            print(f"  cycle {cycle} ({first}): " + "; ".join(parts), flush=True)
        for (model, tw), logs in ratios.items():
            mean, low, high, status = summary(logs)
            print(f"threads {threads}  {model:<8} turn-warmup {tw}  interleaved vs isolated {mean:+.2f} % "
                  f"[{low:+.2f}, {high:+.2f}] over {len(logs)} cycles -> {status} (±{TARGET_PCT:g} %)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
