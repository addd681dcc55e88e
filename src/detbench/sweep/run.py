"""`detbench sweep SWEEP.yaml`: plan the studies, create the shared benchmark list, run each study once (locally or
on Ray), and keep the index OUT/sweep.json current as results return.

Local executor: on a machine with GPUs, one study at a time per GPU, all GPUs at once (a thread per GPU, each
study's process tree pinned with CUDA_VISIBLE_DEVICES); on a CPU, one study at a time, since studies side by
side would measure each other. Resume: a study whose content key the index records as finished, with its
study.json there, is skipped; a failed one runs again. A failed study (an OOM, an export that fails, a lost
node) is recorded with its reason and the others go on.

Before anything is written: the sweep file's code-running settings must be confirmed on the command line
(sweep.code_options) and are shown; OUT/studies and every study's folder must be real folders, no link
(files.out_tree; checked again under the lock, and as each study starts); OUT must hold no other sweep's
studies that this one would replace or drop (sweep.index: one sweep per OUT).
"""

from __future__ import annotations

import math
import os
import queue
import statistics
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detbench.data.benchmark_list import LIST_FILENAME, existing_list_sha256
from detbench.errors import DetbenchError, first_line
from detbench.files.out_tree import folder_below
from detbench.proc import CPUS_ENV
from detbench.study.lock import study_lock
from detbench.study.options import StudyConfig
from detbench.sweep.code_options import code_warnings, with_command_line
from detbench.sweep.index import INDEX_NAME, Index, check_same_sweep, finished, read_index, sweep_identity
from detbench.sweep.plan import CPU_KIND, STUDIES_DIR, Plan, PlannedStudy, make_plan
from detbench.sweep.spec import SweepSpec, load_spec
from detbench.sweep.task import outcome_line, run_study_child
from detbench.text import Echo, terminal_echo

__all__ = ["INDEX_NAME", "STUDIES_DIR", "Index", "SweepOptions", "finished", "read_index", "run_sweep"]
DEFAULT_STUDY_TIMEOUT_S = 4 * 3600.0
PRIOR_STUDY_S = 60.0  # start-up and first look of a small study, before any is measured


@dataclass
class SweepOptions:
    spec: str
    out: str = "results/sweep"
    ray: str | None = None  # None: local; "local": a private Ray instance here; "auto" or an address
    dry_run: bool = False
    study_timeout: float = DEFAULT_STUDY_TIMEOUT_S
    ray_cpus: int | None = None  # with --ray local: the CPUs it may use
    unsafe_load: bool = False  # --unsafe-load on the command line: every study may load pickles in full
    plugins: list[str] = field(default_factory=list)  # --plugin on the command line: every study imports them


def local_device_kind() -> tuple[str, bool, list[str]]:
    """This machine's device kind (the GPU's name, or `cpu`), whether it is a GPU, and the devices the local
    executor uses."""
    import torch  # imported here, not at the top: kept out of the command line's start-up

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count:
        names = {torch.cuda.get_device_name(i) for i in range(count)}
        if len(names) > 1:
            raise DetbenchError(f"this machine has GPUs of {len(names)} kinds ({', '.join(sorted(names))}); a sweep "
                                f"runs on one kind: set CUDA_VISIBLE_DEVICES to GPUs of one kind")
        mask = [part.strip() for part in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if part.strip()]
        # each slot's CUDA_VISIBLE_DEVICES names a GPU of this process's own mask (an index or a UUID)
        return names.pop(), True, mask[:count] if len(mask) >= count else [str(i) for i in range(count)]
    return CPU_KIND, False, [CPU_KIND]


def _core_groups(cores: list[int]) -> list[list[int]]:
    """The cores grouped by physical core (hyperthread siblings together), in order."""
    groups: dict[str, list[int]] = {}
    for core in cores:
        try:
            siblings = Path(f"/sys/devices/system/cpu/cpu{core}/topology/thread_siblings_list").read_text().strip()
        except OSError:
            siblings = str(core)
        groups.setdefault(siblings, []).append(core)
    return list(groups.values())


def slot_cpus(devices: list[str]) -> dict[str, str]:
    """Each GPU slot's own share of this process's cores (DETBENCH_CPUS for its study's processes), so that studies
    on different GPUs never time their host side on the same cores; empty for one slot."""
    if len(devices) < 2:
        return {}
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    groups = _core_groups(cores)
    if len(groups) < len(devices):
        return {}
    share = len(groups) // len(devices)
    return {device: ",".join(str(core) for group in groups[i * share:(i + 1) * share] for core in group)
            for i, device in enumerate(devices)}


def estimate(todo: list[PlannedStudy], index: dict[str, Any], slots: int | None, max_time: float | None) -> str:
    """How long the studies still to run would take: from this sweep's finished studies of the same device kind
    when there are any."""
    if not todo:
        return "nothing to run"
    done = [e for e in (index.get("studies") or {}).values() if isinstance(e, dict) and e.get("status") == "ok"
            and isinstance(e.get("seconds"), (int, float))]
    total, bases = 0.0, set()
    for study in todo:
        measured = [e["seconds"] for e in done if e.get("device_kind") == study.device_kind]
        if measured:
            total += statistics.median(measured)
            bases.add(f"median of this sweep's finished {study.device_kind} studies")
        elif max_time is not None:
            total += PRIOR_STUDY_S + max_time
            bases.add(f"at most {PRIOR_STUDY_S:.0f} s of start-up plus --study-time {max_time:g} s per study")
        else:
            total += PRIOR_STUDY_S
            bases.add(f"a guess of {PRIOR_STUDY_S:.0f} s per study of fixed rounds")
    if slots is None:
        return (f"about {total / 60:.0f} min of studies ({len(todo)} to run; {'; '.join(sorted(bases))}), divided "
                f"by the cluster's devices of each kind")
    return (f"about {total / max(slots, 1) / 60:.0f} min on {slots} device(s) ({len(todo)} studies to run; "
            f"{'; '.join(sorted(bases))})")


def prepare_shared_list(spec: SweepSpec, plan: Plan, out: Path, echo: Echo) -> Path:
    """The one benchmark list every study shares, made (or checked) once here."""
    from detbench.study.ablation import prepare_list as study_list  # here, not at the top: loads torch

    values = plan.studies[0].config.bench_values()  # the settings every study shares (data, seed, size, ...)
    list_path = out / LIST_FILENAME
    # reuse=False: a list made from other data, seed or size is refused, never silently used
    outcome = study_list(plan.models, list_path, values, False, echo)
    plan.key_with_list(outcome.blist.sha256)
    return list_path


def run_local(plan: Plan, out: Path, list_path: Path, devices: list[str], index: Index, todo: list[PlannedStudy],
              timeout_s: float, echo: Echo) -> None:
    """Every study in `todo`: one at a time per device, the devices at once."""
    work: queue.Queue[PlannedStudy] = queue.Queue()
    for study in todo:
        work.put(study)

    shares = slot_cpus(devices)
    if len(devices) > 1 and not shares:
        echo(f"  note: fewer physical cores than GPUs: the {len(devices)} GPU slots share every core")

    def serve(device: str) -> None:
        env = None if device == CPU_KIND else {"CUDA_VISIBLE_DEVICES": device}
        if device in shares:
            env = {**(env or {}), CPUS_ENV: shares[device]}
        while True:
            try:
                study = work.get_nowait()
            except queue.Empty:
                return
            echo(f"· {study.name}: running on {'the CPU' if device == CPU_KIND else f'GPU {device}'}")
            try:
                folder = folder_below(out, STUDIES_DIR, study.name)  # checked again as the study starts
                outcome = run_study_child(study.config, folder, list_path, CPU_KIND if device == CPU_KIND else "0",
                                    timeout_s, env=env)
            except Exception as exc:  # noqa: BLE001 (recorded: the other studies go on)
                detail = first_line(exc, 300)
                outcome = {"status": "failed", "reason": f"the study could not run ({type(exc).__name__}: {detail})"}
            outcome["attempts"] = 1
            index.record(study.name, outcome)
            echo(outcome_line(study.name, outcome))

    threads = [threading.Thread(target=serve, args=(device,), daemon=True) for device in devices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@dataclass
class _Sweep:
    """What a sweep runs with, once planned."""

    opts: SweepOptions
    spec: SweepSpec  # with the command line's code-running flags applied
    identity: dict[str, str]  # the sweep file's (sweep_identity)
    plan: Plan
    out: Path
    devices: list[str]
    kind: str  # the device kind as shown
    here: str | None  # this machine's CPU model, which a finished local CPU study must have been made on
    echo: Echo
    warnings: list[str] = field(default_factory=list)  # code-running settings in force


def _check_options(opts: SweepOptions) -> None:
    if not (math.isfinite(opts.study_timeout) and opts.study_timeout > 0):
        raise DetbenchError(f"--study-timeout must be a positive number of seconds, got {opts.study_timeout:g}")
    if opts.ray_cpus is not None and (opts.ray != "local" or opts.ray_cpus < 1):
        raise DetbenchError("--ray-cpus applies to --ray local only, and must be at least 1")


def _devices(opts: SweepOptions) -> tuple[tuple[str, bool] | None, list[str], str, str | None]:
    """The local device kind (None on Ray), the devices, the kind as shown, and this machine's CPU model (None on
    Ray)."""
    if opts.ray is not None:
        return None, [], "per study (Ray)", None
    from detbench.report.provenance import cpu_model  # imported here, not at the top: it loads torch

    kind, gpu, devices = local_device_kind()
    here = cpu_model()
    return (kind, gpu), devices, kind if gpu else f"{CPU_KIND} ({here})", here


def check_out_tree(out: Path, plan: Plan) -> None:
    """Before anything is written: OUT/studies and every study's folder, where they exist, are real folders (no
    symlink: `files.out_tree`); one line naming the first that is not."""
    folder_below(out, STUDIES_DIR, create=False)
    for study in plan.studies:
        folder_below(out, STUDIES_DIR, study.name, create=False)


def _study_time(plan: Plan) -> float | None:
    """The seconds of turns each study may take (its StudyConfig's --study-time; None: a fixed number of rounds)."""
    config = plan.studies[0].config if plan.studies else StudyConfig()
    return config.study_time if config.until_decided else None


def run_sweep(opts: SweepOptions, echo: Echo = print,
              ray_runner: Callable[..., None] | None = None) -> int:
    """Plan, then run what is not finished; 0 when every runnable study is ok, 1 otherwise."""
    echo = terminal_echo(echo)
    _check_options(opts)
    loaded = load_spec(opts.spec)
    spec = with_command_line(loaded, opts.unsafe_load, opts.plugins)
    out = Path(opts.out)
    if spec.data and not Path(spec.data).is_file():
        raise DetbenchError(f"{spec.path}: data {spec.data}: no such file; give the dataset's data YAML")
    local, devices, kind, here = _devices(opts)
    plan = make_plan(spec, local, existing_list_sha256(out / LIST_FILENAME))
    if plan.studies and not plan.runnable and len({s.invalid for s in plan.studies}) == 1:
        raise DetbenchError(f"{spec.path}: no study can run: {plan.studies[0].invalid}")
    check_out_tree(out, plan)
    sweep = _Sweep(opts, spec, sweep_identity(loaded), plan, out, devices, kind, here, echo,
                   code_warnings(spec, on_ray=opts.ray is not None))
    previous = read_index(out)
    check_same_sweep(out, previous, sweep.identity, spec.path, plan)
    max_time = _study_time(plan)
    if opts.dry_run:
        print_plan(sweep, previous, max_time)
        return 0
    for line in sweep.warnings:
        echo(line)
    cluster = None
    if opts.ray is not None and ray_runner is None:
        from detbench.sweep.ray_executor import open_cluster  # imported here: only a Ray sweep needs it

        cluster = open_cluster(opts.ray, opts.ray_cpus)  # a missing Ray or cluster fails before anything is written
    try:
        return _run(sweep, ray_runner)
    finally:
        if cluster is not None:
            cluster.shutdown()


def _start(sweep: _Sweep) -> tuple[Path, Index, list[PlannedStudy]]:
    """Under the sweep's lock: OUT checked again (another sweep may have finished there meanwhile), the list, the
    index, and the studies to run."""
    out, plan, opts = sweep.out, sweep.plan, sweep.opts
    previous = read_index(out)
    check_same_sweep(out, previous, sweep.identity, sweep.spec.path, plan)
    check_out_tree(out, plan)
    folder_below(out, STUDIES_DIR)
    list_path = prepare_shared_list(sweep.spec, plan, out, sweep.echo)  # keys the plan with the list's hash
    index = Index(out, sweep.spec, plan, "local" if opts.ray is None else f"ray ({opts.ray})", previous,
                  sweep.identity)
    todo = [s for s in plan.runnable if not finished(out, previous, s, sweep.here)]
    for study in todo:  # until its new outcome arrives, a study about to run again is not "ok"
        index.data["studies"][study.name].update(status="pending", reason=None)
    index.write()
    return list_path, index, todo


def _run(sweep: _Sweep, ray_runner: Callable[..., None] | None) -> int:
    plan, out, opts, echo = sweep.plan, sweep.out, sweep.opts, sweep.echo
    with study_lock(out):
        list_path, index, todo = _start(sweep)
        skipped = len(plan.runnable) - len(todo)
        names = ", ".join(r.name for r in plan.models)
        echo(f"detbench sweep: {len(plan.studies)} studies ({len(plan.runnable)} runnable, {skipped} already "
             f"finished, {len(plan.studies) - len(plan.runnable)} invalid); models {names} against "
             f"{plan.baseline}; device {sweep.kind} -> {out}")
        for study in plan.studies:
            if study.invalid:
                echo(f"  invalid: {study.name}: {study.invalid}")
        if opts.ray is None:
            run_local(plan, out, list_path, sweep.devices, index, todo, opts.study_timeout, echo)
        else:
            from detbench.sweep.ray_executor import run_on_ray  # imported here: only a Ray sweep needs it

            (ray_runner or run_on_ray)(plan, out, list_path, index, todo, opts, echo)
    entries = index.data["studies"].values()
    ok = sum(e["status"] == "ok" for e in entries)
    failed = [e for e in entries if e["status"] not in {"ok", "invalid"}]
    echo(f"sweep done: {ok} ok, {len(failed)} not ok, "
         f"{sum(e['status'] == 'invalid' for e in entries)} invalid; {out / INDEX_NAME}")
    return 1 if failed else 0


def print_plan(sweep: _Sweep, previous: dict[str, Any], max_time: float | None) -> None:
    """The dry run's plan: the studies, the executor, the estimate, and a warning line for each code-running
    setting in force."""
    plan, opts, echo, devices = sweep.plan, sweep.opts, sweep.echo, sweep.devices
    done = [s for s in plan.runnable if finished(sweep.out, previous, s, sweep.here)]
    todo = [s for s in plan.runnable if s not in done]
    echo(f"detbench sweep (dry run): {len(plan.studies)} studies, {len(plan.runnable)} runnable, "
         f"{len(plan.studies) - len(plan.runnable)} invalid, {len(done)} already finished")
    for line in sweep.warnings:
        echo(f"  {line}")
    echo(f"  models: {', '.join(r.name for r in plan.models)} (baseline {plan.baseline})")
    if opts.ray is None:
        echo(f"  executor: local, device {sweep.kind}, {len(devices)} at once ({', '.join(devices)})")
        slots: int | None = len(devices)
    else:
        kinds = sorted({s.device_kind for s in plan.runnable})
        echo(f"  executor: Ray ({opts.ray}), device kinds {', '.join(kinds) or '-'}; one study per GPU (CPU "
             f"studies: one per node)")
        slots = None
    echo(f"  estimated time: {estimate(todo, previous, slots, max_time)}")
    for study in plan.studies:
        status = f"invalid: {study.invalid}" if study.invalid else ("finished" if study in done else "to run")
        echo(f"  {study.name:<40} {study.device_kind:<28} {status}")
