"""Is the CPU busy with other programs? CPU pressure and runnable tasks, read before and after the timed loop.

Linux's pressure stall information (`/proc/pressure/cpu`, its "some" line)
counts the microseconds during which at least one runnable task waited for a
core. Its growth over the timed loop, over the loop's wall time, is the share
of the loop in which something waited for a core: near 0 on an idle machine
when `--threads` fits the cores. `/proc/stat`'s `procs_running` is the number
of runnable tasks at the moment it is read, this process's own running
threads included; those are subtracted (their states are read from
`/proc/self/task/*/stat`), which leaves the runnable tasks of other programs.
Where pressure is not available (older kernels, some containers) the runnable
count decides alone. Both are system-wide (tasks on cores this run is not
pinned to count too), and so is the core count they are set against.
`detbench bench` reads them around its timed loop; a study's coordinator
reads them before the first round and at each look (when every worker waits
on its pipe), for the rounds between.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

# Share of the timed loop during which some task waited for a core, above which the run warns
BUSY_PRESSURE_SHARE = 0.10
RUNNABLE_READS, RUNNABLE_GAP_S = 5, 0.001
PROC = Path("/proc")


def _read(path: Path) -> str | None:
    """The whole file (/proc/stat's interrupt line runs long on many-core machines), at most 4 MiB."""
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read(4 << 20)
    except OSError:
        return None


def cpu_pressure_total_us(proc: Path = PROC) -> int | None:
    """The "some" line's `total` of /proc/pressure/cpu (µs), or None where the kernel does not provide it."""
    text = _read(proc / "pressure" / "cpu")
    for line in (text or "").splitlines():
        if line.startswith("some "):
            for field in line.split()[1:]:
                key, _, value = field.partition("=")
                if key == "total" and value.isdigit():
                    return int(value)
    return None


def procs_running(proc: Path = PROC) -> int | None:
    for line in (_read(proc / "stat") or "").splitlines():
        if line.startswith("procs_running "):
            value = (line.split() + [""])[1]
            return int(value) if value.isdigit() else None
    return None


def own_running_threads(proc: Path = PROC) -> int | None:
    """Threads of this process in state R (running or runnable), the reading thread included."""
    try:
        tasks = os.listdir(proc / "self" / "task")
    except OSError:
        return None
    running = 0
    for task in tasks:
        stat = _read(proc / "self" / "task" / task / "stat")
        # the state follows the command name, which is in parentheses and may itself hold ") "
        if stat and stat.rpartition(")")[2].split()[:1] == ["R"]:
            running += 1
    return running


def load_average_1m() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def snapshot(proc: Path = PROC, reads: int = RUNNABLE_READS) -> dict[str, Any]:
    """CPU pressure, runnable tasks (all, and this process's own) and the load average, now.

    `other_runnable` is the fewest over `reads` readings a millisecond apart, so that a task that wakes for an
    instant (a kernel thread, a shell) is not taken for a program that competes for the cores."""
    others = []
    for k in range(reads):
        if k:
            time.sleep(RUNNABLE_GAP_S)
        running, own = procs_running(proc), own_running_threads(proc)
        if running is not None and own is not None:
            others.append(max(0, running - own))
    return {"monotonic_s": time.monotonic(), "cpu_pressure_some_total_us": cpu_pressure_total_us(proc),
            "procs_running": running, "own_running_threads": own,
            "other_runnable": min(others) if others else None, "load_average_1m": load_average_1m()}


def host_load_section(before: dict[str, Any], after: dict[str, Any], threads: int,
                      cores: int | None = None, device_type: str = "cpu") -> dict[str, Any]:
    """The report's `host_load`: both snapshots, the pressure share of the loop and the busiest runnable count."""
    cores = cores or os.cpu_count() or 1
    share = None
    start, end = before.get("cpu_pressure_some_total_us"), after.get("cpu_pressure_some_total_us")
    wall_s = after["monotonic_s"] - before["monotonic_s"]
    if start is not None and end is not None and wall_s > 0:
        share = max(0.0, (end - start) / 1e6 / wall_s)
    others = [s["other_runnable"] for s in (before, after) if s.get("other_runnable") is not None]
    return {"cores": cores, "threads": threads, "device_type": device_type, "cpu_pressure_share": share,
            "other_runnable_max": max(others) if others else None, "before": before, "after": after,
            "meaning": "cpu_pressure_share: share of the timed loop's wall time in which some task waited for a "
                       "core (/proc/pressure/cpu 'some'); other_runnable: runnable tasks of other processes "
                       "(/proc/stat procs_running minus this process's running threads), read before and after "
                       "the loop"}


def busy_warnings(section: dict[str, Any]) -> list[str]:
    """The CPU counterpart of "GPU busy": other programs competing for the cores, named with the evidence."""
    cores, threads = section["cores"], section["threads"]
    share, others = section.get("cpu_pressure_share"), section.get("other_runnable_max")
    evidence = f"{others} runnable task(s) of other programs on {cores} core(s)" if others is not None else ""
    warnings = []
    before_others = section["before"].get("other_runnable")
    if section.get("device_type") != "cuda" and before_others is not None and threads > max(0, cores - before_others):
        warnings.append(f"--threads {threads} exceeds the {max(0, cores - before_others)} core(s) free when the "
                        f"timed loop started ({before_others} runnable task(s) of other programs on {cores} "
                        f"core(s)): its threads wait for each other; lower --threads or stop the other programs")
    contended = (share >= BUSY_PRESSURE_SHARE if share is not None
                 else others is not None and others + threads > cores)
    if not contended or threads > cores:
        return warnings
    measured = f"tasks waited for a core during {100 * share:.0f} % of the timed loop" if share else ""
    if others:
        warnings.append(f"CPU busy: {measured + '; ' if measured else ''}{evidence}; other programs compete with "
                        f"the benchmark, so latency may be inflated: benchmark on an idle machine")
    else:  # waiting measured, but no other program runnable at either reading: it came between them
        seen = ("no other program was runnable when the loop started and ended" if others == 0
                else "other programs' runnable tasks could not be read")
        warnings.append(f"CPU contended: {measured}, though {seen}: something ran in bursts between those "
                        f"readings (another program, or this run's own threads beyond the {cores} core(s)), so "
                        f"latency may be inflated: benchmark on an idle machine")
    return warnings
