"""One worker process of an interleaved study (`python -m detbench.study.worker`, started by the coordinator).

A worker runs the steps of `detbench bench` for one model: the bounded check,
load and fuse, the shared benchmark list and the memory-mapped inputs, threads
and device. Then, in place of a timed loop of its own, it serves turns:

    coordinator                       worker
    {"start": {...}}            ->    (loads the model, decodes or maps the inputs)
                                <-    {"ready": {"imgsz": ..., "pid": ...}}
    {"warmup": true}            ->    --warmup forwards, then the peak-memory reset
                                <-    {"warm": {"warmup_s": ..., "warmup_ms": [the last 200 forwards]}}
    {"turn": R}                 ->    `turn_warmup` untimed forwards, then one timed forward
                                <-    {"ms": latency, "host_ms": host}
    {"run": R, "forwards": N}   ->    (the bias probe) `turn_warmup` untimed forwards, then N timed forwards
                                      back to back, as bench's own loop runs them, on the input of this
                                      worker's turn of round R; kept out of the report
                                <-    {"run_ms": [latency, ...]}
    {"stop": "why"}             ->    the rest of the run (--pipeline if asked), the report written
                                <-    {"done": "path of the report", "inspection": {...}}

A start message may carry the bounded check that an earlier worker of the model made of the same bytes
(`inspection`, matched by SHA-256, imgsz and plugins); the worker then skips its own. Its "done" answer
returns the check it used, for the next generation.

Any failure is answered {"error": "one line"} and the worker exits with status 2.
The worker dies with the coordinator (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from detbench.errors import DetbenchError
from detbench.models.ultralytics_env import configure_process
from detbench.proc import die_with_parent, refuse_namespace_package
from detbench.report.model import Stopping, Study
from detbench.study.channel import WorkerEnd


class TurnServer:
    """The worker's timed loop: warm-up and turns on the coordinator's command (a `measure` loop)."""

    def __init__(self, channel: WorkerEnd, turn_warmup: int) -> None:
        self.channel = channel
        self.turn_warmup = turn_warmup
        self.rounds: list[int] = []
        self.stop_reason = ""
        self.last_input: Any = None  # the input of the last turn, which a bias probe reuses

    def loop(self, forward: Callable[[Any], Any], next_input: Callable[[int], Any], warmup: int, iters: int,
             device: Any, cuda: Any = None, after_warmup: Callable[[], None] | None = None, stop: Any = None):
        # imported here, not at the top: torch is needed only once the model is loaded
        import torch

        from detbench.measure.timing import ForwardTimer, Timings, collector_paused, run_warmup

        cuda = cuda if cuda is not None else torch.cuda
        timer = ForwardTimer(device, cuda)
        timings = Timings(timer=timer.name, stop_reason="study")
        self.channel.send({"ready": {"pid": os.getpid()}})
        self._expect("warmup")
        with torch.inference_mode():
            run_warmup(forward, next_input, warmup, device, cuda, timings)
            if after_warmup is not None:
                after_warmup()
            # the last warm-up forwards: the coordinator's estimate of what the study's time can decide
            self.channel.send({"warm": {"warmup_s": timings.warmup_s, "warmup_ms": timings.warmup_ms[-200:]}})
            with collector_paused():
                self._serve(forward, next_input, timer, timings)
        return timings

    def _serve(self, forward, next_input, timer, timings) -> None:
        iteration, busy_ns = 0, 0
        while True:
            command = self.channel.receive()
            if "stop" in command:
                self.stop_reason = str(command["stop"])
                break
            if "run" in command:
                self.channel.send({"run_ms": self._probe_run(forward, timer, int(command["forwards"]))})
                continue
            start = time.perf_counter_ns()
            x = self.last_input = next_input(iteration)
            self._rewarm(forward, x, timer)
            latency, host = timer(forward, x)
            busy_ns += time.perf_counter_ns() - start
            timings.add(timer, latency, host)
            self.rounds.append(int(command["turn"]))
            iteration += 1
            self.channel.send({"ms": latency, "host_ms": host})
        timings.timed_s = busy_ns / 1e9
        timings.stop_reason = f"study: {self.stop_reason}"

    def _rewarm(self, forward, x, timer) -> None:
        for _ in range(self.turn_warmup):  # the thread pool wakes and the caches refill, untimed
            forward(x)
            if timer.on_cuda:
                timer.cuda.synchronize(timer.device)

    def _probe_run(self, forward, timer, forwards: int) -> list[float]:
        """A turn's re-warm-up, then `forwards` timed forwards back to back: the steady loop an isolated bench
        times, measured beside the turns, on the input of this worker's turn (the same image, so the same
        shape with --rect); not added to the report's samples."""
        if self.last_input is None:
            raise DetbenchError("study protocol: a bias probe before any turn")
        x = self.last_input
        self._rewarm(forward, x, timer)
        return [timer(forward, x)[0] for _ in range(forwards)]

    def _expect(self, key: str) -> dict[str, Any]:
        command = self.channel.receive()
        if key not in command:
            raise DetbenchError(f"study protocol: expected {key!r}, got {sorted(command)}")
        return command


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def serve(channel: WorkerEnd) -> int:
    """One model's run with its turns served; the report written where the coordinator asked."""
    # imported here, not at the top: these load torch and Ultralytics, after configure_process has run
    from detbench.checkpoint.model_check import KnownCheck
    from detbench.config import BenchConfig
    from detbench.report.schema import write_report
    from detbench.workflows.bench import run_bench

    start = channel.receive()["start"]
    cfg = BenchConfig.from_dict(start["config"])
    _stderr(f"study worker {start['worker']} of {cfg.name}: pid {os.getpid()}")
    cpus = start.get("cpus")
    if cpus and hasattr(os, "sched_setaffinity"):  # every worker on the same cores: no placement luck
        os.sched_setaffinity(0, cpus)
    server = TurnServer(channel, int(start["turn_warmup"]))
    known = KnownCheck.from_dict(start.get("inspection"))  # the previous generation's check of these bytes
    report, _ = run_bench(cfg, echo=_stderr, argv=list(start["command"]), write=False, loop=server.loop, known=known)
    measured = report.stopping or Stopping()
    report.samples.round = server.rounds
    report.stopping = Stopping(rule="interleaved study: the coordinator gives each worker one turn per round",
                               reason=server.stop_reason, iterations=len(server.rounds),
                               turn_warmup=server.turn_warmup, timed_s=measured.timed_s, warmup_s=measured.warmup_s)
    report.study = Study(start.get("study") or {}, worker=int(start["worker"]), pid=os.getpid(),
                         cpus=sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None)
    path = write_report(report, Path(start["report_path"]))
    channel.send({"done": str(path), "inspection": known.to_dict() if known.inspection else None})
    return 0


def main() -> int:
    refuse_namespace_package()
    die_with_parent()
    configure_process()
    channel = WorkerEnd(sys.stdin.buffer)
    try:
        return serve(channel)
    except DetbenchError as exc:
        channel.send({"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__})
        return 2
    except Exception as exc:
        detail = (str(exc).strip().splitlines() or [""])[0][:300]
        channel.send({"error": f"{type(exc).__name__}: {detail}"})
        raise


if __name__ == "__main__":
    sys.exit(main())
