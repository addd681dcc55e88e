"""One worker process of an interleaved study (`python -m detbench.study.worker`, started by the coordinator).

A worker holds every model of the study, so that whatever luck the process has (heap layout, thread placement,
allocator state) is the same for every model it times. Each model runs the steps of `detbench bench`
(`run_bench`: the bounded check, load and fuse, the shared benchmark list and the inputs, threads and device) in
a thread of its own, whose timed loop is a `TurnServer`: in place of timing a loop of its own, it waits for the
worker's dispatcher (the main thread) to hand it a command. The dispatcher hands one command at a time and
waits for its answer, so only one model computes at a time. Threads, rather than `run_bench` cut into phases,
because `measure` calls the loop and expects the timings back, with set-up and clean-up around it (CUDA graphs,
peak-memory readings); a thread keeps that code as it is, suspended in the loop until the study stops it.

The models load one at a time (the next thread starts once the last one waits in its loop) and warm up one at a
time, on the coordinator's command. The decoded inputs are read once per worker (`data.cache.share_in_process`)
and, on CPU, memory-mapped from the shared cache; on CUDA each turn copies its batch to the device, as `bench`
does, and each model keeps its own weights, activations and cuDNN workspace there (and, with --cuda-graph, its
graph's pool), so a GPU study holds every model's memory at once in every worker process. Each model's memory
is its own all the same: right after its warm-up (the coordinator warms one model at a time), before any turn,
its peak is reset and a few forwards of it run alone (`measure.own_memory`); the models load one at a time, so
its `model_rss_MB` is what loading it added. The process's own figures (`peak_rss_MB`, `rss_MB`) count every
model it holds.

    coordinator                                  worker
    {"start": {"models": [...], ...}}      ->    (loads each model in turn, decodes or maps the inputs)
                                           <-    {"ready": {"pid": ..., "failed": {model: why}}}
    {"warmup": MODEL}                      ->    MODEL's --warmup forwards, then its memory window
                                           <-    {"warm": {"warmup_s": ..., "warmup_ms": [the last 200 forwards]}}
    {"turn": R, "model": MODEL}            ->    `turn_warmup` untimed forwards, then one timed forward
                                           <-    {"ms": latency, "host_ms": host}
    {"run": R, "model": MODEL, "forwards": N} -> (the bias probe) `turn_warmup` untimed forwards, then N timed
                                                 forwards back to back, as bench's own loop runs them, on the
                                                 input of MODEL's turn of round R; kept out of the report
                                           <-    {"run_ms": [latency, ...]}
    {"stop": "why", "drop": [MODEL, ...]}  ->    each model in turn: the rest of its run (--pipeline if asked),
                                                 its report written (the dropped ones, failed elsewhere, only end)
                                           <-    {"done": {model: report path}, "inspection": {model: {...}},
                                                  "failed": {model: why}}

Each answer to a model's command names it ("model"). A model that fails (its load, a turn, its end) is
answered {"error": "one line", "model": MODEL}, and the worker goes on with its other models. Any other
failure is answered {"error": "one line"} and the worker exits with status 2.

A model's entry in the start message may carry the bounded check that an earlier worker made of the same bytes
(`inspection`, matched by SHA-256, imgsz and plugins); its thread then skips its own. The "done" answer returns
the checks used, for the next generation. The worker dies with the coordinator (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from detbench.errors import DetbenchError, first_line
from detbench.models.ultralytics_env import configure_process
from detbench.proc import die_with_parent, refuse_namespace_package
from detbench.report.model import Stopping, Study
from detbench.study.channel import WorkerEnd


class Dropped(BaseException):
    """The coordinator dropped the model (it failed in another worker): its thread ends without a report.
    A BaseException, so that `run_bench`'s handlers of a failing loop let it through."""


class ModelEnd:
    """A model thread's side of the dispatcher: commands from one queue, answers on another."""

    def __init__(self) -> None:
        self.commands: queue.Queue[dict[str, Any]] = queue.Queue()
        self.answers: queue.Queue[dict[str, Any]] = queue.Queue()

    def receive(self) -> dict[str, Any]:
        return self.commands.get()

    def send(self, message: dict[str, Any]) -> None:
        self.answers.put(message)

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        self.commands.put(command)
        return self.answers.get()


class TurnServer:
    """A model's timed loop: warm-up and turns on the dispatcher's command (a `measure` loop)."""

    def __init__(self, channel: ModelEnd, turn_warmup: int) -> None:
        self.channel = channel
        self.turn_warmup = turn_warmup
        self.rounds: list[int] = []
        self.stop_reason = ""
        self.last_input: Any = None  # the input of the last turn, which a bias probe reuses

    def loop(self, forward: Callable[[Any], Any], next_input: Callable[[int], Any], warmup: int, iters: int,
             device: Any, cuda: Any = None, after_warmup: Callable[[], None] | None = None, stop: Any = None,
             before_warmup: Callable[[], None] | None = None):
        # imported here, not at the top: torch is needed only once the model is loaded
        import torch

        from detbench.measure.timing import ForwardTimer, Timings, run_warmup

        cuda = cuda if cuda is not None else torch.cuda
        timer = ForwardTimer(device, cuda)
        timings = Timings(timer=timer.name, stop_reason="study")
        self.channel.send({"ready": {"pid": os.getpid()}})
        self._expect("warmup")
        if before_warmup is not None:
            before_warmup()
        with torch.inference_mode():
            run_warmup(forward, next_input, warmup, device, cuda, timings)
            if after_warmup is not None:
                after_warmup()
            # the last warm-up forwards: the coordinator's estimate of what the study's time can decide
            self.channel.send({"warm": {"warmup_s": timings.warmup_s, "warmup_ms": timings.warmup_ms[-200:]}})
            self._serve(forward, next_input, timer, timings)  # the dispatcher keeps the collector off
        return timings

    def _serve(self, forward, next_input, timer, timings) -> None:
        iteration, busy_ns = 0, 0
        while True:
            command = self.channel.receive()
            if "drop" in command:
                raise Dropped
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
        times, measured beside the turns, on the input of this model's last turn (the same image, so the same
        shape with --rect); not added to the report's samples."""
        if self.last_input is None:
            raise DetbenchError("study protocol: a bias probe before any turn")
        x = self.last_input
        self._rewarm(forward, x, timer)
        return [timer(forward, x)[0] for _ in range(forwards)]

    def _expect(self, key: str) -> dict[str, Any]:
        command = self.channel.receive()
        if "drop" in command:
            raise Dropped
        if key not in command:
            raise DetbenchError(f"study protocol: expected {key!r}, got {sorted(command)}")
        return command


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def error_line(exc: BaseException) -> str:
    """A failure as the one line the coordinator records: detbench's own message whole, another's first 300
    characters after its type."""
    if isinstance(exc, DetbenchError):
        return first_line(exc, limit=len(str(exc)))
    return f"{type(exc).__name__}: {first_line(exc, limit=300) if str(exc).strip() else ''}"


def run_model(spec: dict[str, Any], start: dict[str, Any], end: ModelEnd) -> None:
    """One model's run in its thread, its turns served; its report written where the coordinator asked. Its last
    message: {"done": path, "inspection": ...}, {"dropped": true} or {"error": line}."""
    # imported here, not at the top: these load torch and Ultralytics, after configure_process has run
    from detbench.checkpoint.model_check import KnownCheck
    from detbench.config import BenchConfig
    from detbench.report.schema import write_report
    from detbench.workflows.bench import run_bench

    try:
        cfg = BenchConfig.from_dict(spec["config"])
        server = TurnServer(end, int(start["turn_warmup"]))
        known = KnownCheck.from_dict(spec.get("inspection"))  # the previous generation's check of these bytes
        report, _ = run_bench(cfg, echo=_stderr, argv=list(spec["command"]), write=False, loop=server.loop,
                              known=known)
        measured = report.stopping or Stopping()
        report.samples.round = server.rounds
        report.stopping = Stopping(rule="interleaved study: the coordinator gives each worker one turn of each "
                                        "model per round", reason=server.stop_reason, iterations=len(server.rounds),
                                   turn_warmup=server.turn_warmup, timed_s=measured.timed_s,
                                   warmup_s=measured.warmup_s)
        report.study = Study(start.get("study") or {}, worker=int(start["worker"]), pid=os.getpid(),
                             cpus=sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None)
        path = write_report(report, Path(spec["report_path"]))
        end.send({"done": str(path), "inspection": known.to_dict() if known.inspection else None})
    except Dropped:
        end.send({"dropped": True})
    except Exception as exc:  # noqa: BLE001  (the model fails; the worker and its other models go on)
        _stderr(f"{spec['name']} failed: {error_line(exc)}")
        end.send({"error": error_line(exc)})


class Dispatcher:
    """The worker's main thread: starts the model threads one at a time and hands each command to its model."""

    def __init__(self, channel: WorkerEnd, start: dict[str, Any]) -> None:
        self.channel, self.start = channel, start
        self.models: dict[str, ModelEnd] = {}  # the models still served
        self.failed: dict[str, str] = {}
        self.threads: list[threading.Thread] = []

    def load(self) -> None:
        """Each model's thread in turn, until it waits in its loop (or failed)."""
        for spec in self.start["models"]:
            end = ModelEnd()
            self.threads.append(threading.Thread(target=run_model, args=(spec, self.start, end), name=spec["name"],
                                                 daemon=True))
            self.threads[-1].start()
            answer = end.answers.get()
            if "ready" in answer:
                self.models[spec["name"]] = end
            else:
                self.failed[spec["name"]] = str(answer.get("error", "its thread ended before it was ready"))
        self.channel.send({"ready": {"pid": os.getpid(), "failed": self.failed}})

    def serve(self) -> dict[str, Any]:
        """Commands until "stop"; returns it."""
        while True:
            command = self.channel.receive()
            if "stop" in command:
                return command
            name = str(command.get("model"))
            end = self.models.get(name)
            answer = end.ask(command) if end is not None else {"error": f"study protocol: no model {name!r} here"}
            if "error" in answer:
                self.models.pop(name, None)
            self.channel.send({**answer, "model": name})

    def finish(self, stop: dict[str, Any]) -> None:
        """Each model in turn ends its run (or is dropped); the reports' paths and the checks they used."""
        done, inspections, dropped = {}, {}, set(stop.get("drop") or [])
        for name, end in self.models.items():
            answer = end.ask({"drop": True} if name in dropped else {"stop": stop["stop"]})
            if "done" in answer:
                done[name], inspections[name] = answer["done"], answer.get("inspection")
            elif "error" in answer:
                self.failed[name] = str(answer["error"])
        for thread in self.threads:  # every one has said its last: let each end before the process does
            thread.join(timeout=60)
        self.channel.send({"done": done, "inspection": inspections, "failed": self.failed})


def serve(channel: WorkerEnd) -> int:
    """Every model's run, their turns served; the reports written where the coordinator asked."""
    # imported here, not at the top: loads torch, after configure_process has run
    from detbench.data.cache import share_in_process
    from detbench.measure.timing import collector_paused

    start = channel.receive()["start"]
    _stderr(f"study worker {start['worker']} of {', '.join(m['name'] for m in start['models'])}: pid {os.getpid()}")
    cpus = start.get("cpus")
    if cpus and hasattr(os, "sched_setaffinity"):  # every worker on the same cores: no placement luck
        os.sched_setaffinity(0, cpus)
    share_in_process()
    dispatcher = Dispatcher(channel, start)
    dispatcher.load()
    with collector_paused():  # over every model's warm-up and turns (the threads' loops leave it alone)
        stop = dispatcher.serve()
    dispatcher.finish(stop)
    return 0


def main() -> int:
    refuse_namespace_package()
    die_with_parent()
    configure_process()
    channel = WorkerEnd(sys.stdin.buffer)
    try:
        return serve(channel)
    except DetbenchError as exc:
        channel.send({"error": error_line(exc)})
        return 2
    except Exception as exc:
        channel.send({"error": error_line(exc)})
        raise


if __name__ == "__main__":
    sys.exit(main())
