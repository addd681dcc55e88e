"""Wall time of each phase of a run, for `timing_phases_s` in the report.

`import` is, for the first run of a process, the time from the process's start
(read from /proc on Linux: interpreter start-up, torch and the other imports)
to the moment Ultralytics is imported; for a `detbench bench` process that is
all start-up cost. For later runs in the same process, and where /proc is not
available, it covers only the imports done inside the run. The phases after it
are consecutive: each lasts from the end of the previous one to its mark.
"""

from __future__ import annotations

import os
import time


def process_age_s() -> float | None:
    """Seconds since this process started, from /proc (None where /proc is not available)."""
    try:
        with open("/proc/self/stat") as stat_file:
            fields = stat_file.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as uptime_file:
            uptime = float(uptime_file.read().split()[0])
        start_ticks = int(fields[19])  # field 22 of proc(5), counted after the ")" of the command name
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


_first_run = True


def first_run_of_process() -> bool:
    """True once per process: whether the process age is this run's start-up cost."""
    global _first_run
    first, _first_run = _first_run, False
    return first


class PhaseClock:
    """Marks the end of each phase; `phases` maps name -> seconds."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.phases: dict[str, float] = {}

    def mark(self, name: str, since_process_start: bool = False) -> float:
        now = time.perf_counter()
        elapsed = now - self.last
        if since_process_start:
            age = process_age_s()
            elapsed = age if age is not None else elapsed
        self.phases[name] = self.phases.get(name, 0.0) + elapsed
        self.last = now
        return elapsed

    def add(self, name: str, seconds: float) -> None:
        """Record a phase measured elsewhere (e.g. the warm-up inside the timed loop)."""
        self.phases[name] = self.phases.get(name, 0.0) + seconds

    def mark_parts(self, parts: dict[str, float], rest: str) -> None:
        """End a phase made of parts timed elsewhere; what they leave of its wall time goes to `rest`."""
        now = time.perf_counter()
        elapsed = now - self.last
        for name, seconds in parts.items():
            self.add(name, seconds)
        self.add(rest, max(0.0, elapsed - sum(parts.values())))
        self.last = now

    def report(self) -> dict[str, float]:
        return {name: round(seconds, 4) for name, seconds in self.phases.items()}
