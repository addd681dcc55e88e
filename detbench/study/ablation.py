"""`detbench ablate`: benchmark every model of a study on one shared list, each in a fresh process.

Steps:
1. Models: `--models a,b,…` (run folder names under --runs, checkpoint or YAML
   paths, or zoo names), else every `RUNS/NAME/seed*/weights/best.pt` (also
   `RUNS/NAME/weights/best.pt`), sorted by name. A model trained with several
   seeds is benchmarked once, at its lowest seed (seed0 when present): the
   seeds share the architecture, and latency depends on the architecture, not
   on the trained values.
2. The benchmark list is created (or checked) once, here, before any model
   runs: from --data, else from the first checkpoint whose `train_args` name
   its dataset (read with the safe loader).
3. Each model runs as `python -m detbench.cli bench … --use_benchmark_list
   --list LIST --name NAME` in its own process, so no model inherits another's
   allocator, caches, thread pools or warm CPU state. A model that fails
   (damaged file, out of memory, any non-zero exit) is recorded with its error
   and the others go on; the exit status is 1 if any failed.
4. Resume: a model whose report exists, is valid, and was made with the same
   settings (imgsz, batch, device, warm-up, iterations and every other bench
   flag, read back from the report's command line), the same weights (not
   modified since), the same number of rounds and the same list (list_sha256)
   is skipped unless --force.
5. `--rounds K`: the models run in interleaved order (A B C A B C …), so that
   drift of the machine (heat, clocks, background load) hits every model
   alike; round k writes to OUT/.rounds/rk/ and the rounds of each model are
   merged into OUT/NAME.json: samples concatenated, statistics recomputed from
   all samples, per-round medians kept in `rounds`, memory the maximum.
The summary of the whole run goes to OUT/ablation_summary.json.
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detbench import zoo
from detbench.config import BenchConfig
from detbench.data.benchmark_list import LIST_FILENAME, obtain_list
from detbench.errors import DetbenchError
from detbench.files.atomic import write_text_atomic
from detbench.flags import add_bench_arguments, bench_fields, config_argv, default_of, flag_name
from detbench.measure.devices import resolve_device
from detbench.measure.pipeline import STAGES, pipeline_warnings
from detbench.models.loading import file_sha256, load_model, model_name_for, precheck_model
from detbench.models.sandbox import Request, start_inspection
from detbench.names import check_model_name
from detbench.proc import kill_tree, spawn_child
from detbench.report.model import Report
from detbench.report.schema import load_report, write_report
from detbench.stats import diagnostics as quality
from detbench.stats import summary as stats
from detbench.study.lock import study_lock
from detbench.text import Echo, terminal_echo
from detbench.workflows.bench import MIN_FREE_BYTES, check_writable

SUMMARY_NAME = "ablation_summary.json"
ROUNDS_DIR = ".rounds"
SEED_DIR = re.compile(r"seed(\d+)")
STDERR_TAIL = 20
DEFAULT_MODEL_TIMEOUT_S = 3600.0


# ---------------------------------------------------------------- flags

def bench_defaults() -> dict[str, Any]:
    """Default value of every bench setting that ablate passes through."""
    return {item.name: default_of(item) for item in bench_fields(pass_through=True)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`detbench ablate` flags: its own, then every bench flag except --weights and --name."""
    parser.add_argument("--runs", default="results/runs",
                        help="folder of training runs: NAME/seed*/weights/best.pt (default results/runs)")
    parser.add_argument("--models", default=None,
                        help="comma-separated models instead of discovery: run folder names under --runs, "
                             ".pt/.yaml paths or zoo names")
    parser.add_argument("--rounds", type=int, default=1,
                        help="interleaved rounds A B C A B C …, each model in a fresh process per round; "
                             "merged into one report per model (default 1)")
    parser.add_argument("--force", action="store_true", help="re-run models whose report is up to date")
    parser.add_argument("--quiet", action="store_true", help="one progress line per model and round only")
    parser.add_argument("--model-timeout", "--model_timeout", dest="model_timeout", type=float,
                        default=DEFAULT_MODEL_TIMEOUT_S,
                        help=f"seconds one model's run may take before it is stopped and recorded as failed "
                             f"(default {DEFAULT_MODEL_TIMEOUT_S:g})")
    add_bench_arguments(parser, skip=("weights", "name"))


def options_from_args(args: argparse.Namespace) -> AblationOptions:
    bench = {item.name: getattr(args, item.name) for item in bench_fields(pass_through=True)}
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    return AblationOptions(runs=args.runs, models=models, rounds=args.rounds, force=args.force, out=args.out,
                           list_path=args.list_path, reuse_list=args.use_benchmark_list, quiet=args.quiet,
                           bench=bench, model_timeout=args.model_timeout)


def study_config(values: dict[str, Any], out: str) -> BenchConfig:
    """The pass-through settings checked once, here, as bench would (DetbenchError naming the flag)."""
    return BenchConfig(**{**bench_defaults(), **values, "weights": "ablate", "out": out})


# ---------------------------------------------------------------- models

@dataclass(frozen=True)
class ModelRun:
    name: str
    weights: str  # a path as found or given, or a zoo name
    note: str = ""


def _seed_number(run_dir: Path) -> int:
    match = SEED_DIR.fullmatch(run_dir.name)
    return int(match.group(1)) if match else sys.maxsize


def _pick_seed(name: str, checkpoints: list[Path]) -> ModelRun:
    """The lowest seed's best.pt; a note when there were several."""
    ordered = sorted(checkpoints, key=lambda p: (_seed_number(p.parent.parent), str(p)))
    chosen = ordered[0]
    note = ""
    if len(ordered) > 1:
        seeds = ", ".join(p.parent.parent.name for p in ordered)
        note = (f"{len(ordered)} seeds ({seeds}): benchmarking {chosen.parent.parent.name} (same architecture, "
                f"so the same latency); pass its path in --models to choose another")
    return ModelRun(name, str(chosen), note)


def discover_runs(runs_dir: str | Path) -> list[ModelRun]:
    """Every RUNS/NAME/seed*/weights/best.pt (or RUNS/NAME/weights/best.pt), one per NAME, sorted by NAME."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise DetbenchError(f"--runs {runs_dir}: no such folder; point it at the training runs "
                            f"(NAME/seed0/weights/best.pt) or pass --models")
    found: dict[str, list[Path]] = {}
    for best in runs_dir.glob("*/seed*/weights/best.pt"):
        if SEED_DIR.fullmatch(best.parent.parent.name) and best.is_file():
            found.setdefault(best.parent.parent.parent.name, []).append(best)
    for best in runs_dir.glob("*/weights/best.pt"):
        if best.is_file() and best.parent.parent.name not in found:
            found[best.parent.parent.name] = [best]
    if not found:
        raise DetbenchError(f"--runs {runs_dir}: no NAME/seed*/weights/best.pt inside; train the models first or "
                            f"pass --models")
    runs = [_pick_seed(name, found[name]) for name in sorted(found)]
    check_names(runs, f"--runs {runs_dir}")
    return runs


def check_names(runs: Sequence[ModelRun], source: str) -> None:
    """Every model name must make a safe report file name (OUT/NAME.json), checked before any model runs."""

    for run in runs:
        check_model_name(run.name, f"{source}: model {run.weights}", "rename its run folder (the report is "
                                                                      "OUT/NAME.json)")


def resolve_models(names: Sequence[str], runs_dir: str | Path) -> list[ModelRun]:
    """--models entries: a run folder name under RUNS, a .pt/.yaml path, or a zoo model name."""

    runs: list[ModelRun] = []
    for raw in names:
        path, run_dir = Path(raw), Path(runs_dir) / raw
        if path.suffix.lower() in {".pt", ".yaml", ".yml"}:
            if not path.is_file() and path.suffix.lower() == ".pt":
                raise DetbenchError(f"--models {raw}: file not found")
            runs.append(ModelRun(model_name_for(str(path)), raw))
        elif run_dir.is_dir():
            checkpoints = [p for p in run_dir.glob("seed*/weights/best.pt") if SEED_DIR.fullmatch(p.parent.parent.name)]
            if not checkpoints and (run_dir / "weights" / "best.pt").is_file():
                checkpoints = [run_dir / "weights" / "best.pt"]
            if not checkpoints:
                raise DetbenchError(f"--models {raw}: {run_dir} holds no seed*/weights/best.pt")
            runs.append(_pick_seed(raw, checkpoints))
        elif raw in zoo.MODELS:
            runs.append(ModelRun(raw, raw, "zoo YAML: untrained weights (latency only)"))
        else:
            raise DetbenchError(f"--models {raw}: no run folder {run_dir}, no such .pt/.yaml file, and not a zoo "
                                f"model ({', '.join(zoo.MODELS)})")
    check_names(runs, "--models")
    names_seen: set[str] = set()
    for run in runs:
        if run.name in names_seen:
            raise DetbenchError(f"--models: two models would both be named '{run.name}'; list each once")
        names_seen.add(run.name)
    if not runs:
        raise DetbenchError("--models is empty: give comma-separated names, e.g. baseline,ghost")
    return runs


# ---------------------------------------------------------------- the shared list

def prepare_list(runs: Sequence[ModelRun], list_path: Path, values: dict[str, Any], reuse: bool, echo: Echo):
    """Create or check the shared benchmark list once, before any model runs."""

    data, source = values.get("data"), None
    if not data and not (reuse and list_path.exists()):
        for run in runs:
            path = Path(run.weights)
            if path.suffix.lower() != ".pt" or not path.is_file():
                continue
            try:
                found = checkpoint_data(path, values)
            except DetbenchError:
                continue  # this model's own run reports the problem
            if found:
                data, source = found, path
                break
        if data and not Path(data).is_file() and not list_path.exists():
            raise DetbenchError(f"{source}: its train_args['data'] {data} does not exist here; pass --data DATA.yaml")
    outcome = obtain_list(list_path, data, values["benchmark_size"], values["seed"], reuse,
                          data_from_flag=source is None)
    origin = f" from {data}" if outcome.created and data else ""
    echo(f"✓ {'created' if outcome.created else 'loaded'} benchmark list: {outcome.path}{origin} "
         f"({len(outcome.blist.paths)} images, sha256 {outcome.blist.sha256[:12]})")
    if outcome.note:
        echo(f"  note: {outcome.note}")
    return outcome


def checkpoint_data(path: Path, values: dict[str, Any]) -> str | None:
    """The checkpoint's train_args['data'], read by the same bounded check a run does (in-process if unsafe)."""

    plugins = list(values.get("plugins") or [])
    if values.get("unsafe_load"):
        return load_model(str(path), unsafe_load=True, plugins=plugins).train_args.get("data")
    sha256 = precheck_model(str(path), plugins)
    inspection = start_inspection(Request(weights=str(path), imgsz=values["imgsz"], sha256=sha256, plugins=plugins,
                                          timeout_s=values["load_timeout"],
                                          memory_bytes=int(values["load_memory_mb"] * 2**20))).result()
    return inspection.train_args.get("data")


# ---------------------------------------------------------------- resume

def _same_weights(reported: Any, report_cwd: Any, wanted: str) -> bool:
    if not reported:
        return False
    reported_path, wanted_path = Path(str(reported)), Path(wanted)
    if not wanted_path.exists():
        return str(reported) == wanted
    if not reported_path.is_absolute() and report_cwd:
        reported_path = Path(str(report_cwd)) / reported_path
    return reported_path.resolve() == wanted_path.resolve()


def stale_reason(report_path: Path, run: ModelRun, values: dict[str, Any], device: str, list_sha256: str,
                 rounds: int) -> str | None:
    """None when the report there is up to date for these settings and inputs; otherwise why not."""
    if not report_path.is_file():
        return "no report yet"
    try:
        report = load_report(report_path)
    except DetbenchError as exc:
        return f"report unreadable ({exc})"
    if not report.ok:
        return f"report has status {report.status}"
    meta = report.metadata
    wanted = {"imgsz": values["imgsz"], "batch": values["batch"], "warmup": values["warmup"], "iters": values["iters"]}
    have = {"imgsz": meta.imgsz_requested if meta.imgsz_requested is not None else meta.imgsz, "batch": meta.batch,
            "warmup": meta.warmup, "iters": meta.iters}
    for key, value in wanted.items():
        if have[key] != value:
            return f"report has --{key} {have[key]}, now {value}"
    if meta.device != device:
        return f"report ran on {meta.device}, now {device}"
    if not _same_weights(meta.weights, report.cwd, run.weights):
        return f"report is of other weights ({meta.weights})"
    if report.inputs.list_sha256 != list_sha256:
        return "report was made on another benchmark list (list_sha256 differs)"
    done = len(report.rounds or []) or 1
    if done != rounds:
        return f"report has {done} round(s), now {rounds}"
    recorded = report.config
    if not isinstance(recorded, dict):
        return "report has no config section (made by an older detbench)"
    wanted_config = study_config(values, "-").to_dict()
    for item in bench_fields(pass_through=True):
        if not item.metadata["compared"] or item.name in wanted:
            continue
        old, new = recorded.get(item.name), wanted_config[item.name]
        if old != new:
            return f"report has --{flag_name(item)} {old}, now {new}"
    if Path(run.weights).is_file():

        try:
            digest = file_sha256(run.weights)
        except DetbenchError as exc:
            return f"weights unreadable ({exc})"
        if meta.weights_sha256 != digest:
            return "the weights file's content differs from the report's (weights_sha256)"
    return None


# ---------------------------------------------------------------- one model in a fresh process

@dataclass
class JobResult:
    returncode: int
    seconds: float
    error: str = ""
    stderr_tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _error_line(returncode: int, stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        cause = f"killed by {name}" + (" (out of memory?)" if -returncode == signal.SIGKILL else "")
        return f"{cause}: {last}" if last else cause
    return last or f"exit status {returncode} with no error message"


def run_child(command: list[str], echo: Echo, quiet: bool, timeout: float = DEFAULT_MODEL_TIMEOUT_S) -> JobResult:
    """Run one bench process; stream its stdout (indented) unless quiet; keep its stderr for the error.

    The child dies with this process (PR_SET_PDEATHSIG) and is killed, with its own children, when it runs
    longer than `timeout` seconds or when this process is interrupted.
    """


    start = time.monotonic()
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as err:
        process = spawn_child(command, {"PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, stderr=err, text=True,
                              encoding="utf-8", errors="replace")

        def stream() -> None:
            for line in process.stdout:
                if not quiet:
                    echo("    " + line.rstrip("\n"))

        reader = threading.Thread(target=stream, daemon=True)
        reader.start()
        timed_out = False
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            if process.poll() is None:
                kill_tree(process)
            reader.join(timeout=5)
            returncode = process.returncode
        err.seek(0)
        stderr = err.read()
    lines = [line for line in stderr.splitlines() if line.strip()]
    if timed_out:
        error = f"stopped after --model-timeout {timeout:g} s (the model's run did not finish in time)"
    else:
        error = "" if returncode == 0 else _error_line(returncode, stderr)
    return JobResult(returncode, time.monotonic() - start, error, lines[-STDERR_TAIL:])


def bench_command(python: str, run: ModelRun, out: Path, list_path: Path, values: dict[str, Any]) -> list[str]:
    """The child's command line; every value joined to its flag, so a value starting with "-" stays a value."""
    return [python, "-m", "detbench.cli", "bench", f"--weights={run.weights}", f"--name={run.name}",
            f"--out={out}", f"--list={list_path}", "--use_benchmark_list", *config_argv(values)]


# ---------------------------------------------------------------- merging rounds

def _concat(values: list[Any]) -> Any:
    """Lists concatenated; dicts of lists concatenated per key; anything else: None unless all equal."""
    if all(isinstance(v, list) for v in values):
        return [item for v in values for item in v]
    if all(isinstance(v, dict) for v in values):
        return {key: _concat([v.get(key) for v in values]) for key in values[0]}
    return values[0] if all(v == values[0] for v in values) else None


def _max_numbers(sections: list[dict[str, Any]]) -> dict[str, Any]:
    merged = dict(sections[0])
    for key, value in merged.items():
        numbers = [s.get(key) for s in sections if isinstance(s.get(key), (int, float))
                   and not isinstance(s.get(key), bool)]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and numbers:
            merged[key] = max(numbers)
    return merged


def _dedupe(items: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _merge_pipeline(merged: dict[str, Any], reports: list[dict[str, Any]]) -> list[str]:
    """Recompute the pipeline section from all rounds' pipeline samples; return its warnings."""

    section, samples = merged.get("pipeline"), merged["samples"].get("pipeline_ms")
    if not isinstance(section, dict) or not isinstance(samples, dict):
        return []
    for stage in STAGES:
        if samples.get(stage):
            section[stage] = {**stats.summarize(samples[stage]),
                              "statistics": quality.statistics_section(samples[stage])}
    section["n_samples"] = len(samples.get("total") or [])
    section["stop_reason"] = "; ".join(_dedupe([str(r["pipeline"].get("stop_reason")) for r in reports]))
    if samples.get("total"):
        section["throughput"] = stats.throughput(merged["metadata"]["batch"], section["total"]["mean_ms"],
                                                 section["total"]["p50_ms"])
    return pipeline_warnings(section)


def _merged_statistics(reports: list[dict[str, Any]], latency_ms: list[float],
                       host_ms: list[float] | None) -> dict[str, Any]:
    """Statistics over all rounds' samples; the warm-up check stays per round (each round warmed up on its own)."""


    section = quality.statistics_section(latency_ms, host_ms)
    warm_checks = [(r.get("statistics") or {}).get("warmup_check") for r in reports]
    warm_checks = [w if isinstance(w, dict) and "ratio" in w else None for w in warm_checks]
    section["warmup_check"] = {"per_round": warm_checks}
    host_median = float(np.median(host_ms)) if host_ms else None
    warnings = quality.warnings_for(section, section["outliers"], None, float(np.median(latency_ms)), host_median,
                                    len(latency_ms))
    for index, warm in enumerate(warm_checks, start=1):
        warm_up = quality.warmup_warning(warm)
        if warm_up:
            warnings.append(f"round {index}: {warm_up}")
    section["warnings"] = warnings
    return section


ROUND_IDENTITY = {
    "benchmark list": lambda r: r["inputs"]["list_sha256"],
    "decoded inputs": lambda r: r["inputs"].get("decoded_sha256"),
    "imgsz": lambda r: r["metadata"]["imgsz"],
    "batch": lambda r: r["metadata"]["batch"],
    "device": lambda r: r["metadata"]["device"],
    "weights": lambda r: r["metadata"]["weights"],
}


def _check_same_setting(reports: list[dict[str, Any]], name: str) -> None:
    first = reports[0]
    for index, report in enumerate(reports[1:], start=2):
        for label, read in ROUND_IDENTITY.items():
            if read(report) != read(first):
                raise DetbenchError(f"{name}: round {index} differs from round 1 in its {label}; re-run with --force")


def _merged_warnings(merged: dict[str, Any], reports: list[dict[str, Any]], latency_ms: list[float],
                     host_ms: list[float] | None) -> None:
    """Each round's own warnings (not those derived from its samples), then those of the merged samples."""
    own_warnings: list[str] = []
    for report in reports:
        derived = set((report.get("statistics") or {}).get("warnings") or [])
        derived.update(w for w in report.get("warnings") or [] if str(w).startswith("pipeline "))
        own_warnings += [w for w in report.get("warnings") or [] if w not in derived]
    new_warnings: list[str] = []
    if isinstance(reports[0].get("statistics"), dict):
        merged["statistics"] = _merged_statistics(reports, latency_ms, host_ms)
        new_warnings += merged["statistics"]["warnings"]
    new_warnings += _merge_pipeline(merged, reports)
    merged["warnings"] = _dedupe(own_warnings + new_warnings)


def _merged_bookkeeping(merged: dict[str, Any], reports: list[dict[str, Any]], n_samples: int) -> None:
    """The stopping section and the phase times summed over the rounds."""
    first = reports[0]
    if isinstance(first.get("stopping"), dict):
        stopping = merged["stopping"]
        stopping["reason"] = "; ".join(_dedupe([str(r["stopping"].get("reason")) for r in reports]))
        stopping["iterations"] = n_samples
        for key in ("timed_s", "warmup_s"):
            if all(isinstance(r["stopping"].get(key), (int, float)) for r in reports):
                stopping[key] = sum(r["stopping"][key] for r in reports)
        stopping["ci_half_width_rel_at_stop"] = [r["stopping"].get("ci_half_width_rel_at_stop") for r in reports]
    if isinstance(first.get("timing_phases_s"), dict):
        phases = [r.get("timing_phases_s") or {} for r in reports]
        merged["timing_phases_s"] = {key: sum(p[key] for p in phases) if all(
            isinstance(p.get(key), (int, float)) for p in phases) else value
            for key, value in first["timing_phases_s"].items()}


def _round_entries(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:

    entries = []
    for index, report in enumerate(reports, start=1):
        samples = report["samples"]["latency_ms"]
        summary = stats.summarize(samples)
        entry = {"round": index, "median_ms": summary["median_ms"], "mean_ms": summary["mean_ms"],
                 "p95_ms": summary["p95_ms"], "n": len(samples), "timestamp": report["metadata"].get("timestamp")}
        if report.get("gpu"):
            entry["gpu"] = report["gpu"]
        entries.append(entry)
    return entries


def merge_rounds(rounds: list[Report], name: str) -> Report:
    """One report from a model's rounds: samples concatenated, statistics over all of them, per-round medians."""

    reports = [r.to_dict() for r in rounds]
    _check_same_setting(reports, name)
    first = reports[0]
    merged = copy.deepcopy(first)
    merged["samples"] = {key: _concat([r["samples"].get(key) for r in reports]) for key in first["samples"]}
    latency_ms = merged["samples"]["latency_ms"]
    host_ms = merged["samples"].get("host_ms") or None
    latency = stats.summarize(latency_ms)
    merged["latency"].update(latency, n_samples=len(latency_ms))
    if host_ms:
        merged["latency"]["host"] = stats.summarize(host_ms)
    merged["throughput"] = {**first["throughput"],
                            **stats.throughput(first["metadata"]["batch"], latency["mean_ms"], latency["p50_ms"])}
    merged["memory"] = _max_numbers([r["memory"] for r in reports])
    _merged_warnings(merged, reports, latency_ms, host_ms)
    _merged_bookkeeping(merged, reports, len(latency_ms))
    merged["rounds"] = _round_entries(reports)
    merged["metadata"]["timestamp"] = reports[-1]["metadata"].get("timestamp")
    medians = [r["median_ms"] for r in merged["rounds"]]
    merged["notes"] = _dedupe([n for r in reports for n in r.get("notes") or []]) + [
        f"merged from {len(reports)} interleaved rounds, each in a fresh process: latency statistics over all "
        f"{len(latency_ms)} samples; round medians {', '.join(f'{m:.3f}' for m in medians)} ms; memory is the "
        f"maximum over the rounds" + ("; gpu (NVML) readings are round 1's, each round's in rounds[k].gpu"
                                      if first.get("gpu") else "")]
    return Report.from_dict(merged)


# ---------------------------------------------------------------- progress

def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Which job of how many, elapsed time and an ETA from the models' own durations."""

    def __init__(self, jobs: list[tuple[int, str]]) -> None:
        self.jobs = list(jobs)
        self.done = 0
        self.start = time.monotonic()
        self.durations: dict[str, float] = {}

    def drop_model(self, name: str, after: int) -> None:
        """A failed model's later rounds will not run."""
        self.jobs = [job for i, job in enumerate(self.jobs) if i < after or job[1] != name]

    def finished(self, name: str, seconds: float) -> None:
        self.durations[name] = seconds
        self.done += 1

    def eta(self) -> str:
        if not self.durations:
            return "?"
        mean = sum(self.durations.values()) / len(self.durations)
        return _clock(sum(self.durations.get(name, mean) for _, name in self.jobs[self.done:]))

    def line(self, name: str, round_k: int, rounds: int) -> str:
        return (f"[{self.done + 1}/{len(self.jobs)}] {name} · round {round_k}/{rounds} · elapsed "
                f"{_clock(time.monotonic() - self.start)} · ETA {self.eta()}")


# ---------------------------------------------------------------- the study

@dataclass
class AblationOptions:
    runs: str = "results/runs"
    models: list[str] | None = None
    rounds: int = 1
    force: bool = False
    out: str = "results/bench"
    list_path: str | None = None
    reuse_list: bool = False
    quiet: bool = False
    bench: dict[str, Any] = field(default_factory=dict)  # pass-through bench flags (dest -> value)
    model_timeout: float = DEFAULT_MODEL_TIMEOUT_S


@dataclass
class ModelResult:
    run: ModelRun
    status: str = "pending"  # ok | skipped | failed
    error: str = ""
    exit_code: int | None = None
    seconds: float = 0.0
    round_reports: list[Path] = field(default_factory=list)
    stderr_tail: list[str] = field(default_factory=list)
    reason: str = ""

    def as_dict(self, report: Path) -> dict[str, Any]:
        return {"name": self.run.name, "weights": self.run.weights, "status": self.status,
                "error": self.error or None, "exit_code": self.exit_code, "report": str(report),
                "rounds_done": len(self.round_reports), "seconds": round(self.seconds, 2),
                "why_run": self.reason or None, "note": self.run.note or None,
                "stderr_tail": self.stderr_tail if self.status == "failed" else None}


def _median_text(path: Path) -> str:
    try:
        latency = load_report(path).latency
        return f"median {latency.median_ms:.2f} ms, p95 {latency.p95_ms:.2f} ms"
    except (DetbenchError, KeyError, TypeError):
        return "report written"


def write_summary(path: Path, results: list[ModelResult], opts: AblationOptions, out: Path, device: str,
                  outcome: Any, started: str, seconds: float, status: str) -> Path:

    counts = {key: sum(r.status == key for r in results) for key in ("ok", "skipped", "failed", "pending")}
    summary = {
        "kind": "detbench ablation summary",
        "status": status,
        "started": started,
        "seconds": round(seconds, 2),
        "out": str(out),
        "benchmark_list": str(outcome.path),
        "list_sha256": outcome.blist.sha256,
        "rounds": opts.rounds,
        "device": device,
        "bench_flags": opts.bench,
        "command": sys.argv,
        "counts": counts,
        "models": [r.as_dict(out / f"{r.run.name}.json") for r in results],
    }
    try:
        write_text_atomic(path, json.dumps(summary, indent=2, default=str) + "\n")
    except OSError as exc:
        raise DetbenchError(f"--out {out}: writing {path.name} failed ({exc.strerror}); the model reports written "
                            f"so far are kept") from exc
    return path


def check_targets(out: Path, runs: Sequence[ModelRun]) -> None:
    """Every file the study will write must be writable as a file: refuse a folder or a special file up front."""
    for path in [out / SUMMARY_NAME, *(out / f"{run.name}.json" for run in runs)]:
        if os.path.lexists(path) and not (path.is_file() and not path.is_symlink()):
            raise DetbenchError(f"--out {out}: {path.name} exists and is not a regular file; move it away or choose "
                                f"another --out")


def run_ablation(opts: AblationOptions, echo: Echo = print, python: str = sys.executable) -> int:
    """Benchmark every model; 0 if all are ok or up to date, 1 if any failed, 130 if interrupted."""

    echo = terminal_echo(echo)

    if not 1 <= opts.rounds <= 1000:
        raise DetbenchError(f"--rounds must be between 1 and 1000, got {opts.rounds}")
    if not 0 < opts.model_timeout <= 7 * 86_400:
        raise DetbenchError(f"--model-timeout must be a positive number of seconds (at most a week), got "
                            f"{opts.model_timeout}")
    values = {**bench_defaults(), **opts.bench}
    study_config(values, opts.out)
    device = str(resolve_device(values.get("device")))
    out = Path(opts.out)
    runs = resolve_models(opts.models, opts.runs) if opts.models else discover_runs(opts.runs)
    check_writable(out, MIN_FREE_BYTES + 4 * 2**20 * len(runs) * opts.rounds)
    check_targets(out, runs)
    if (out / ROUNDS_DIR).is_symlink():
        raise DetbenchError(f"--out {out}: {ROUNDS_DIR} is a symlink; delete it (detbench writes only inside OUT)")
    list_path = Path(opts.list_path) if opts.list_path else out / LIST_FILENAME
    echo(f"detbench ablate: {len(runs)} model(s) ({', '.join(r.name for r in runs)}), {opts.rounds} round(s), "
         f"device {device}, imgsz {values['imgsz']}, batch {values['batch']}, warmup {values['warmup']}, "
         f"iters {values['iters']} -> {out}")
    with study_lock(out):
        return _study(opts, echo, python, values, device, out, runs, list_path)


@dataclass
class _Study:
    """One study's settings, shared by its steps."""

    opts: AblationOptions
    echo: Echo
    python: str
    values: dict[str, Any]
    device: str
    out: Path
    list_path: Path


def _plan(study: _Study, runs: list[ModelRun], list_sha256: str) -> tuple[list[ModelResult], list[ModelResult]]:
    """Every model's result, and those to run (not up to date, or --force)."""
    results = [ModelResult(run) for run in runs]
    pending: list[ModelResult] = []
    for result in results:
        if result.run.note:
            study.echo(f"  note: {result.run.name}: {result.run.note}")
        report_path = study.out / f"{result.run.name}.json"
        reason = "--force" if study.opts.force else stale_reason(report_path, result.run, study.values,
                                                                study.device, list_sha256, study.opts.rounds)
        if reason is None:
            result.status = "skipped"
            study.echo(f"· {result.run.name}: up to date ({report_path}), skipped; --force re-runs it")
        else:
            result.reason = reason
            pending.append(result)
            if report_path.exists():
                study.echo(f"· {result.run.name}: will re-run: {reason}")
    return results, pending


def _run_round(study: _Study, pending: list[ModelResult], round_k: int, progress: Progress) -> None:
    """Each pending model once, in a fresh process; a failure is recorded and its later rounds are dropped."""
    rounds = study.opts.rounds
    for result in pending:
        if result.status == "failed":
            continue
        target = study.out if rounds == 1 else study.out / ROUNDS_DIR / f"r{round_k}"
        study.echo(progress.line(result.run.name, round_k, rounds))
        job = run_child(bench_command(study.python, result.run, target, study.list_path, study.values), study.echo,
                        study.opts.quiet, study.opts.model_timeout)
        progress.finished(result.run.name, job.seconds)
        result.seconds += job.seconds
        result.exit_code = job.returncode
        if job.ok:
            result.round_reports.append(target / f"{result.run.name}.json")
            study.echo(f"  ✓ {result.run.name} round {round_k}: {_median_text(result.round_reports[-1])} "
                       f"({job.seconds:.1f} s)")
        else:
            result.status, result.error, result.stderr_tail = "failed", job.error, job.stderr_tail
            progress.drop_model(result.run.name, progress.done)
            study.echo(f"  ✗ {result.run.name} failed: {job.error}")


def _finish(study: _Study, result: ModelResult) -> None:
    """A model that ran every round: its rounds merged into OUT/NAME.json (with several rounds), marked ok."""
    if study.opts.rounds > 1:
        try:
            merged = merge_rounds([load_report(p) for p in result.round_reports], result.run.name)
            write_report(merged, study.out / f"{result.run.name}.json")
        except DetbenchError as exc:
            result.status, result.error = "failed", str(exc)
            study.echo(f"  ✗ {result.run.name} failed: {exc}")
            return
        rounds_text = ", ".join(f"{r['median_ms']:.2f}" for r in merged.rounds or [])
        study.echo(f"✓ merged {study.opts.rounds} rounds of {result.run.name}: "
                   f"{_median_text(study.out / f'{result.run.name}.json')} (round medians {rounds_text} ms)")
    result.status = "ok"


def _study(opts: AblationOptions, echo: Echo, python: str, values: dict[str, Any], device: str, out: Path,
           runs: list[ModelRun], list_path: Path) -> int:
    """The study itself, under the folder's lock: the list, resume decisions, the runs, the summary."""
    study = _Study(opts, echo, python, values, device, out, list_path)
    started = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    start = time.monotonic()
    outcome = prepare_list(runs, list_path, values, opts.reuse_list, echo)
    results, pending = _plan(study, runs, outcome.blist.sha256)
    progress = Progress([(k, result.run.name) for k in range(1, opts.rounds + 1) for result in pending])
    summary_path = out / SUMMARY_NAME
    try:
        if opts.rounds > 1:
            shutil.rmtree(out / ROUNDS_DIR, ignore_errors=True)
        for round_k in range(1, opts.rounds + 1):
            _run_round(study, pending, round_k, progress)
        for result in pending:
            if result.status != "failed":
                _finish(study, result)
        if opts.rounds > 1:
            shutil.rmtree(out / ROUNDS_DIR, ignore_errors=True)
    except KeyboardInterrupt:
        write_summary(summary_path, results, opts, out, device, outcome, started, time.monotonic() - start,
                      "interrupted")
        echo(f"interrupted: reports finished so far are kept; a re-run resumes ({summary_path})")
        return 130
    failed = [r for r in results if r.status == "failed"]
    write_summary(summary_path, results, opts, out, device, outcome, started, time.monotonic() - start,
                  "failed" if failed else "ok")
    counts = {key: sum(r.status == key for r in results) for key in ("ok", "skipped", "failed")}
    echo(f"ablation done in {_clock(time.monotonic() - start)}: {counts['ok']} benchmarked, {counts['skipped']} "
         f"up to date, {counts['failed']} failed; summary: {summary_path}")
    for result in failed:
        echo(f"  ✗ {result.run.name} ({result.run.weights}): {result.error}")
    return 1 if failed else 0
