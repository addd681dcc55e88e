"""`detbench ablate`: every model of a study measured together by the interleaved engine, on one shared list.

Steps:
1. Models: `--models a,b,…` or every `RUNS/NAME/seed*/weights/best.pt` (`detbench.study.models`).
2. The benchmark list is created (or checked) once, here, before any model
   runs: from --data, else from the first checkpoint whose `train_args` name
   its dataset (read with the safe loader).
3. Resume: a finished study whose key (each model's name and weights hash,
   every compared bench setting, the device, the list's hash and the study's
   design) equals this one's, and whose reports are all there, is not run
   again unless --force. Anything else runs the whole study again: its models
   must take turns together for their comparisons to be paired.
4. The study (`detbench.study.engine`): worker processes that each hold every
   model, turns in seeded random order, looks until every comparison is decided.
5. Each model's workers' reports are merged into OUT/NAME.json; OUT/study.json
   ties them together (design, order, looks, verdicts, failures).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detbench.backends.formats import check_format
from detbench.checkpoint.model_check import CheckRequest, start_model_check
from detbench.config import BenchConfig
from detbench.data.benchmark_list import LIST_FILENAME, obtain_list
from detbench.errors import DetbenchError
from detbench.files.atomic import write_text_atomic
from detbench.files.out_tree import folder_below
from detbench.files.space import MIN_FREE_BYTES, check_writable
from detbench.limits import MAX_STUDY_GENERATIONS
from detbench.measure.devices import resolve_device
from detbench.measure.memory import process_memory
from detbench.models.loading import file_sha256, load_model, precheck_model
from detbench.report.merge import merge_workers
from detbench.report.model import Report
from detbench.report.schema import load_report, write_report
from detbench.report.setting import SettingKey
from detbench.report.study_record import STUDY_FILE, read_study_record
from detbench.study import engine
from detbench.study.lock import study_lock
from detbench.study.models import ModelRun, discover_runs, resolve_models
from detbench.study.options import StudyConfig
from detbench.text import Echo, terminal_echo
from detbench.workflows.existing import (
    is_separate_run,
    refuse_replacing_other_settings,
    separate_runs_problem,
    set_aside,
    set_aside_path,
)

STUDY_KIND = "detbench study"
WORK_DIR = ".study"


# ---------------------------------------------------------------- checks

def check_formats(runs: Sequence[ModelRun], values: dict[str, Any], device: str) -> None:
    """Every backend the study will use must run here (device, modes, its runtime installed): checked once, before
    any worker starts, with the one-line error `bench` would give."""
    for fmt in sorted({run.format or values.get("format") or "pytorch" for run in runs}):
        check_format(fmt, device.split(":", 1)[0], values)


def choose_baseline(runs: Sequence[ModelRun], wanted: str | None) -> str:
    names = [run.name for run in runs]
    if wanted is not None:
        if wanted not in names:
            raise DetbenchError(f"--baseline {wanted}: not one of the models ({', '.join(names)}); pass one of them")
        return wanted
    return "baseline" if "baseline" in names else names[0]


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
                continue  # this model's own workers report the problem
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
    """train_args['data'] of a checkpoint, read by the bounded child (or in-process with --unsafe-load)."""
    plugins = list(values.get("plugins") or [])
    if values.get("unsafe_load"):
        return load_model(str(path), unsafe_load=True, plugins=plugins).train_args.get("data")
    sha256 = precheck_model(str(path), plugins)
    request = CheckRequest(weights=str(path), imgsz=values["imgsz"], sha256=sha256, plugins=plugins,
                           timeout_s=values["load_timeout"], memory_bytes=int(values["load_memory_mb"] * 2**20))
    inspection = start_model_check(request).result()
    return inspection.train_args.get("data")


# ---------------------------------------------------------------- resume

def weights_identity(run: ModelRun) -> str:
    """The weights file's SHA-256, or the name as given for a YAML or zoo model."""
    path = Path(run.weights)
    if path.is_file():
        try:
            return file_sha256(str(path))
        except DetbenchError:
            return f"unreadable:{run.weights}"
    return run.weights


def study_key(runs: Sequence[ModelRun], cfg: BenchConfig, device: str, list_sha256: str,
              design: dict[str, Any]) -> str:
    """What makes two studies the same: models and weights, compared settings, device, list and design."""
    models = [[run.name, weights_identity(run)] for run in runs]
    return SettingKey.of_config(cfg, device, list_sha256).digest(models=models, design=design)


def stale_reason(out: Path, key: str, runs: Sequence[ModelRun]) -> str | None:
    """None when OUT holds this very study, finished, with every report; otherwise why it must run."""
    path = out / STUDY_FILE
    if not path.is_file():
        return "no study yet"
    try:
        recorded = read_study_record(path)
    except DetbenchError:
        return f"{STUDY_FILE} unreadable"
    if recorded.key != key:
        return "the models, weights, settings, list or design changed"
    if recorded.get("status") != "ok":
        return f"the last study ended with status {recorded.get('status')}"
    for run in runs:
        try:
            report = load_report(out / f"{run.name}.json")
        except DetbenchError as exc:
            return f"report of {run.name} unreadable ({exc})"
        if (report.study or {}).get("id") != recorded.get("id"):
            return f"report of {run.name} is from another study"
    return None


# ---------------------------------------------------------------- the study

@dataclass
class _Study:
    opts: StudyConfig
    echo: Echo
    values: dict[str, Any]
    config: BenchConfig  # the pass-through settings, checked (threads resolved)
    device: str
    out: Path
    list_path: Path
    runs: list[ModelRun]
    baseline: str
    python: str
    separate_runs: list[str] = field(default_factory=list)  # models whose OUT/NAME.json is a `bench` report


def check_targets(out: Path, runs: Sequence[ModelRun]) -> None:
    """Every file the study will write must be writable as a file: refuse a folder or a special file up front."""
    for path in [out / STUDY_FILE, *(out / f"{run.name}.json" for run in runs)]:
        if os.path.lexists(path) and not (path.is_file() and not path.is_symlink()):
            raise DetbenchError(f"--out {out}: {path.name} exists and is not a regular file; move it away or choose "
                                f"another --out")
    folder_below(out, WORK_DIR, create=False)  # a symlink there is refused: detbench writes only inside OUT


def run_ablation(opts: StudyConfig, echo: Echo = print, python: str = sys.executable) -> int:
    """Run the study; 0 if every model is ok (or the study is up to date), 1 if any failed, 130 if interrupted."""
    echo = terminal_echo(echo)
    values, config = opts.bench_values(), opts.validate()
    device = str(resolve_device(values.get("device")))
    out = Path(opts.out)
    runs = resolve_models(opts.models, opts.runs) if opts.models else discover_runs(opts.runs)
    baseline = choose_baseline(runs, opts.baseline)
    check_formats(runs, values, device)
    generations = MAX_STUDY_GENERATIONS if opts.fresh_workers and opts.until_decided else 1
    check_writable(out, MIN_FREE_BYTES + 4 * 2**20 * len(runs) * opts.workers_per_model * generations)
    check_targets(out, runs)
    list_path = Path(opts.list_path) if opts.list_path else out / LIST_FILENAME
    mode = (f"until decided (at most {opts.study_time:g} s of turns)" if opts.until_decided
            else f"{engine.rounds_for(values['iters'], opts.workers_per_model)} rounds")
    echo(f"detbench ablate: {len(runs)} model(s) ({', '.join(r.name for r in runs)}) against {baseline}, "
         f"{opts.workers_per_model} worker process(es) holding every model, {mode}; device {device}, imgsz "
         f"{values['imgsz']}, batch {values['batch']}, warmup {values['warmup']}, iters {values['iters']} -> {out}")
    with study_lock(out):
        return _study(_Study(opts, echo, values, config, device, out, list_path, runs, baseline, python))


def _plan(study: _Study, key: str) -> engine.StudyPlan:
    opts, values = study.opts, study.values
    threads = study.config.threads
    turn_warmup = opts.turn_warmup if opts.turn_warmup is not None else engine.DEFAULT_TURN_WARMUP
    stamp = _dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    models = [engine.StudyModel(run.name, model_config(study, run)) for run in study.runs]
    return engine.StudyPlan(
        models=models, baseline=study.baseline, work_dir=study.out / WORK_DIR,
        workers_per_model=opts.workers_per_model, turn_warmup=turn_warmup, seed=opts.order_seed,
        until_decided=opts.until_decided, min_rounds=engine.rounds_for(values["iters"], opts.workers_per_model),
        max_time=opts.study_time, alpha=opts.alpha, min_effect=opts.min_effect, setup_timeout=opts.model_timeout,
        python=study.python, study_id=f"{key[:12]}-{stamp}", cpus=engine.shared_cpus(threads),
        fresh_workers=opts.fresh_workers, bias_probe=opts.bias_probe, device_type=study.device.split(":", 1)[0],
        progress_every=None if opts.quiet else engine.PROGRESS_EVERY_S)


def model_config(study: _Study, run: ModelRun) -> BenchConfig:
    """One model's run in the study: the pass-through settings, its weights and name, the shared list."""
    return BenchConfig(**{**study.values, "weights": run.weights, "name": run.name, "out": str(study.out),
                          "list_path": str(study.list_path), "use_benchmark_list": True,
                          "format": run.format or study.values.get("format", "pytorch")})


def refuse_replacing_reports(study: _Study) -> None:
    """A `bench` report at OUT/NAME.json is kept: the study moves it to OUT/separate_runs/ when it writes its own
    (listed in `study.separate_runs`, said now). Otherwise, without --force, a study replaces OUT/NAME.json only
    where an earlier study of the same settings wrote it: not a study of other settings, not an unreadable
    file."""
    for run in study.runs:
        path = study.out / f"{run.name}.json"
        # a bench report of the study's backend is kept aside; one of another backend is refused below, or, where
        # --force replaces it, kept aside too
        if is_separate_run(path, None if study.opts.force else model_config(study, run).format):
            study.separate_runs.append(run.name)
            study.echo(f"· {path} holds a separate `detbench bench` run of {run.name}: the study's report takes its "
                       f"place, and the run is kept as {set_aside_path(path)}")
        elif not (study.opts.force or study.opts.replace_reports):
            # weights are not compared here (a retrained model replaces its study's report)
            refuse_replacing_other_settings(path, model_config(study, run), study.device, None, by_study=True)
    problem = separate_runs_problem(study.out) if study.separate_runs else None
    if problem:  # found now, not after the whole study has run
        raise DetbenchError(problem)


def _study(study: _Study) -> int:
    """Under the folder's lock: the list, the resume decision, the engine, the reports and the study file."""
    out, echo = study.out, study.echo
    started = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    clock = time.monotonic()
    refuse_replacing_reports(study)
    listed = prepare_list(study.runs, study.list_path, study.values, study.opts.reuse_list, echo)
    key = study_key(study.runs, study.config, study.device, listed.blist.sha256, study.opts.design(study.baseline))
    reason = "--force" if study.opts.force else stale_reason(out, key, study.runs)
    if reason is None:
        echo(f"· the study in {out} is up to date ({out / STUDY_FILE}); --force runs it again")
        return 0
    echo(f"· running the study: {reason}")
    for run in study.runs:
        if run.note:
            echo(f"  note: {run.name}: {run.note}")
    plan = _plan(study, key)
    shutil.rmtree(plan.work_dir, ignore_errors=True)
    try:
        outcome = engine.run_study(plan, echo)
    except KeyboardInterrupt:
        shutil.rmtree(plan.work_dir, ignore_errors=True)
        echo("interrupted: the workers were stopped; nothing of this study was written (the folder's earlier "
             "results are as they were); run again to redo it")
        return 130
    failed = dict(outcome.failed)
    written = _merge_reports(study, outcome, failed)
    status = "failed" if failed else "ok"
    _write_study(study, plan, key, outcome, failed, written, started, time.monotonic() - clock, status, listed)
    if not failed:
        shutil.rmtree(plan.work_dir, ignore_errors=True)
    _print_verdicts(study, outcome, written, failed)
    return 1 if failed else 0


def _merge_reports(study: _Study, outcome: engine.StudyOutcome, failed: dict[str, str]) -> dict[str, Report]:
    """OUT/NAME.json for every model whose workers all finished (the reports written, by model); a model that
    cannot be merged is failed.

    Every report names the models that finished (`study.finished_models`), so that `compare` replays the
    study only from the complete set of its reports.
    """
    merged = {}
    for run in study.runs:
        if run.name in failed:
            continue
        parts = outcome.reports(run.name)
        if len(parts) != sum(not worker.lost for worker in outcome.workers):
            failed[run.name] = "a worker wrote no report"
            continue
        try:
            reports = [load_report(path) for path in parts]
            for path, report, turns in zip(parts, reports, outcome.timed(run.name), strict=True):
                rounds, latency = report.samples.round or [], report.samples.latency_ms
                if len(rounds) != len(latency) or dict(zip(rounds, latency, strict=True)) != turns \
                        or len(rounds) != len(turns):
                    raise DetbenchError(f"{path}: its samples are not the turns the coordinator timed")
            merged[run.name] = merge_workers(reports, run.name)
        except DetbenchError as exc:
            failed[run.name] = str(exc)
    for name in [name for name in merged if name in study.separate_runs]:  # kept aside first, or not replaced
        path = study.out / f"{name}.json"
        try:
            if is_separate_run(path, None):  # the one found before the study (or a like one since)
                study.echo(f"  kept the separate run of {name} as {set_aside(path)}")
        except (DetbenchError, OSError) as exc:
            failed[name] = f"its separate run {path} could not be kept aside ({exc}), so it was not replaced"
            del merged[name]
    written: dict[str, Report] = {}
    for name, report in merged.items():
        report.study.update(looks_at_rounds=[look["rounds"] for look in outcome.looks],
                            look_alphas=[look["alpha"] for look in outcome.looks], finished_models=list(merged))
        report.host_load = outcome.host_load  # the study's rounds, every model's turns among them
        report.warnings = list(dict.fromkeys([*report.warnings, *outcome.busy]))
        try:
            write_report(report, study.out / f"{name}.json")
            written[name] = report
        except (DetbenchError, OSError) as exc:
            failed[name] = str(exc)
    return written


def _write_study(study: _Study, plan: engine.StudyPlan, key: str, outcome: engine.StudyOutcome,
                 failed: dict[str, str], written: dict[str, Report], started: str, seconds: float, status: str,
                 listed: Any) -> None:
    record: dict[str, Any] = {
        "kind": STUDY_KIND, "status": status, "id": plan.study_id, "key": key, "started": started,
        "seconds": round(seconds, 2), "out": str(study.out), "benchmark_list": str(listed.path),
        "list_sha256": listed.blist.sha256, "device": study.device, "bench_settings": study.values,
        "command": sys.argv, **plan.describe(),
        "gpu_sharing": ("all workers share one GPU; only one computes at a time"
                        if study.device.startswith("cuda") else None),
        "models": [{"name": run.name, "weights": run.weights, "status": "failed" if run.name in failed else "ok",
                    "error": failed.get(run.name), "report": str(study.out / f"{run.name}.json"),
                    "note": run.note or None} for run in study.runs],
        **_outcome_record(outcome),
        "memory": _memory_record(written),
    }
    path = study.out / STUDY_FILE
    try:
        write_text_atomic(path, json.dumps(record, indent=2, default=str) + "\n")
    except OSError as exc:
        raise DetbenchError(f"--out {study.out}: writing {STUDY_FILE} failed ({exc.strerror}); the model reports "
                            f"written so far are kept") from exc


def _outcome_record(outcome: engine.StudyOutcome) -> dict[str, Any]:
    process = outcome.process
    return {
        "stop_reason": outcome.stop_reason, "rounds_done": outcome.rounds_done,
        "budget": outcome.budget.record() if outcome.budget is not None else None,
        "look_schedule": outcome.look_schedule,
        "turn_seconds": round(outcome.turn_seconds, 3), "looks": outcome.looks,
        "host_load": outcome.host_load, "host_busy": outcome.busy,
        **_bias_record(outcome),
        "comparisons": [result.as_dict() for result in outcome.results],
        "process_spread": None if process is None else {
            "measured": process.df > 0, "variance_log": process.variance, "sd_pct": process.sd_pct,
            "f_test_p": process.p_value, "excess_ratio": process.excess_ratio,
            "df": process.df, "worker_offsets_pct": {name: [100.0 * value for value in offsets]
                                                     for name, offsets in process.offsets.items()},
            "meaning": "each worker's mean offset from the round means of the workers of its model that ran beside "
                       "it (its generation); excess_ratio near 1 means the processes differ no more than their noise "
                       "explains (f_test_p tests that); variance_log is the component every interval includes, "
                       "weighted by how many processes each model's mean averages; with one worker per model "
                       "process luck is not measured and the intervals leave it out"},
        "workers": [{"worker": w.index, "pid": w.process.pid, "turns": {m: len(t) for m, t in w.turns.items()},
                     "log": str(w.log_path), "lost": w.lost or None} for w in outcome.workers],
        "order": outcome.order,
    }


MAX_RAW_PROBE_FORWARDS = 200_000  # beyond, study.json keeps each probe's summary only (its size stays bounded)


def _bias_record(outcome: engine.StudyOutcome) -> dict[str, Any]:
    found = outcome.interleaving_bias()
    if found is None:
        return {}
    return {"interleaving_bias": {
        "models": found, "probe_seconds": round(outcome.probe_seconds, 3), "forwards": outcome.plan.bias_probe,
        "probes": [probe.record(raw=len(outcome.probes) * outcome.plan.bias_probe <= MAX_RAW_PROBE_FORWARDS)
                   for probe in outcome.probes],
        "meaning": "bias_pct: each probe pairs the probed worker's turn with the forwards it then ran back to back "
                   "on the same input (after the first), as an isolated bench loop runs them: log of the turn "
                   "minus the mean log of those forwards; the mean over the probes, with its 95 % t interval; "
                   "within: the interval lies inside +-margin_pct. paired_median_ratio_pct: the median of the probed "
                   "turns over the median of the probes' steady forwards, with a bootstrap interval over whole "
                   "probes (median_ratio_ci_pct, median_within). median_ratio_pct: the model's median turn over "
                   "the median of all its probe forwards"}}


def _memory_record(written: dict[str, Report]) -> dict[str, Any]:
    """Host memory of the study: the coordinator's peak RSS and each worker's (from the merged reports)."""
    workers = {f"{name}#{entry.get('worker')}": entry.get("peak_rss_MB")
               for name, report in written.items() for entry in (report.study or {}).get("workers") or []}
    return {"coordinator_peak_rss_MB": process_memory()["peak_rss_MB"], "workers_peak_rss_MB": workers,
            "note": "each worker process holds every model: its RSS counts all of them, and the memory-mapped "
                    "decoded inputs, whose pages all workers share"}


def _print_verdicts(study: _Study, outcome: engine.StudyOutcome, written: dict[str, Report],
                    failed: dict[str, str]) -> None:
    echo = study.echo
    echo(f"study done: {outcome.rounds_done} rounds ({outcome.stop_reason}), {outcome.turn_seconds:.0f} s of turns; "
         f"{len(written)} report(s), {len(failed)} failed; {study.out / STUDY_FILE}")
    for result in outcome.results:
        ci = result.ci_pct
        shown = f"{result.delta_pct:+.1f} %" if result.delta_pct is not None else "n/a"
        interval = f"[{ci[0]:+.1f}, {ci[1]:+.1f}] % at {100 * result.confidence:.2f} %" if ci else "no interval"
        decided = f" at round {result.decided_at_round}" if result.decided_at_round is not None else ""
        detectable = f"; detectable: ±{result.mde_pct:.1f} %" if result.mde_pct is not None else ""
        echo(f"  {result.model:<16} vs {result.baseline}: {shown:>9} {interval}  -> {result.verdict}{decided}"
             f"{detectable}" + (f" ({result.reason})" if result.reason else ""))
    for name, found in (outcome.interleaving_bias() or {}).items():
        ci = found["median_ratio_ci_pct"]
        echo(f"  interleaving bias {name:<16}: median turn vs median back-to-back forward "
             + (f"{found['paired_median_ratio_pct']:+.2f} % [{ci[0]:+.2f}, {ci[1]:+.2f}] over {found['paired']} "
                f"probes, {'within' if found['median_within'] else 'not shown within'} ±{found['margin_pct']:g} %"
                if ci else f"not estimated ({found['paired']} probes)"))
    for name, error in failed.items():
        echo(f"  ✗ {name}: {error}")
