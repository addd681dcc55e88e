"""The interleaved study: persistent worker processes, turns in seeded random order, looks and verdicts.

`workers_per_model` worker processes (`detbench.study.worker`) each hold every
model of the study, so that a process's luck (heap layout, thread placement,
allocator state) is the same for every model it times and cancels in each
comparison (`detbench.stats.paired` pairs the turns within each process). The
coordinator:

1. starts the first worker alone (it decodes the inputs into the shared,
   memory-mapped cache), then the others; each loads its models one at a time;
2. warms up every (worker, model) pair one at a time, so that no warm-up
   competes with another;
3. runs rounds: in each, every (worker, model) pair takes one turn (one timed
   batch), in an order drawn from a seeded generator and recorded (`model#k`:
   model in worker k); only one turn computes at a time, the others wait;
4. looks at a schedule of round counts fixed before the first round
   (`look_schedule`): the planned looks (`detbench.stats.paired`), each brought
   forward on a slow machine to the round by which its share of `max_time`
   should have run, at the round time the warm-ups give; with `until_decided`
   it stops once every comparison is decided, at the last look, or when
   `max_time` seconds of turns have run. Before the first round it says what
   the budget can decide (`detbench.study.budget`), and every `progress_every`
   seconds it prints the round, the time left and each comparison's interval
   so far;
5. with `fresh_workers` (the default when it looks more than once), replaces
   every worker by a fresh process after each look that does not end the
   study, so that one process's luck is sampled again in every generation
   (`detbench.stats.paired` tests the processes' agreement in each);
6. stops the workers one at a time; each writes one report per model.

With `bias_probe` N > 0, after each round one (worker, model) pair (drawn from its own seeded generator, so the
turn order is the same as without it) also runs N timed forwards back to back: the steady loop of an isolated
`bench`, measured beside the turns (`detbench.stats.bias`). Those forwards stay out of the reports and of the
turn time.

A model that fails to load, or whose turn fails, in any worker is failed with its reason: its turns stop in
every worker, and the others go on. A worker process that dies or hangs past its deadline is lost with all its
models' turns of its generation (no report holds them, so the analysis leaves them out from then on, as
`compare` will); the study goes on with the processes left, and fails, saying why, when none is left.
"""

from __future__ import annotations

import functools
import math
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detbench import text
from detbench.config import BenchConfig
from detbench.files.out_tree import folder_below
from detbench.limits import MAX_STUDY_GENERATIONS, MAX_STUDY_ROUNDS
from detbench.measure import host_load
from detbench.proc import kill_tree, python_module, spawn_child
from detbench.stats import bias, paired, spending
from detbench.study import budget
from detbench.study.channel import REPLY_FD_ENV, ChannelClosed, ChannelTimeout, LineReader, encode
from detbench.study.options import DEFAULT_ALPHA, DEFAULT_MIN_EFFECT, DEFAULT_MODEL_TIMEOUT_S, DEFAULT_STUDY_TIME_S
from detbench.text import Cadence, Echo

MIN_FIRST_LOOK = 40  # rounds: batch means need 4 batches of 5, and the first look should not waste alpha
LOOK_GROWTH = 1.6
MAX_LOOKS = MAX_STUDY_GENERATIONS
LOG_TAIL = 20
MIN_TURN_TIMEOUT_S = 60.0
MAX_TURN_TIMEOUT_S = 900.0  # however slow its first turn was, no turn or probe waits longer
MAX_ANSWER_MS = 3.6e6  # a latency a worker reports: positive, finite, under an hour
MAX_ANSWER_LIST = 100_000  # latencies in one answer (a probe's forwards, a warm-up's last ones)
MAX_REASON_CHARS = 500
PROGRESS_EVERY_S = 15.0
NEARLY_OUT_OF_TIME = 0.95  # a planned look after this share of --study-time is the study's last
WAIT_SLICE_S = 1.0  # while a worker loads or warms up, the coordinator looks up this often to say where it is
# untimed forwards at the start of a turn, at any thread count. Measured here (YOLOv8n, imgsz 320, one thread,
# workers pinned to one core): with none, a turn's forward ran on caches the other workers had just filled and
# took 55 ms against 34 ms in an isolated `bench`
DEFAULT_TURN_WARMUP = 1


def planned_looks(min_rounds: int, until_decided: bool) -> list[int]:
    """Round counts at which the analysis looks: once at `min_rounds`, or up to MAX_LOOKS times growing from
    there; never beyond the rounds a report may list."""
    if not until_decided:
        return [min(min_rounds, MAX_STUDY_ROUNDS)]
    first = max(min_rounds, MIN_FIRST_LOOK)
    looks = [min(int(round(first * LOOK_GROWTH ** k)), MAX_STUDY_ROUNDS) for k in range(MAX_LOOKS)]
    return sorted(set(looks))


@dataclass
class StudyModel:
    name: str
    config: BenchConfig  # this model's run: weights, name, the shared list


@dataclass
class StudyPlan:
    models: list[StudyModel]
    baseline: str
    work_dir: Path  # worker reports and logs
    workers_per_model: int = 2
    turn_warmup: int = 1
    seed: int = 0
    until_decided: bool = True
    min_rounds: int = 150
    max_time: float = DEFAULT_STUDY_TIME_S  # seconds of turns
    alpha: float = DEFAULT_ALPHA
    min_effect: float = DEFAULT_MIN_EFFECT
    setup_timeout: float = DEFAULT_MODEL_TIMEOUT_S  # seconds for one worker to load and warm up
    python: str = "python"
    study_id: str = ""
    cpus: list[int] | None = None  # the cores every worker is pinned to (None: not pinned)
    fresh_workers: bool = True  # replace every worker by a fresh process after each look (needs W >= 2 to help)
    bias_probe: int = 0  # forwards of the probe run after each round (0: no probe)
    device_type: str = "cpu"  # of the device the workers compute on ("cpu", "cuda")
    progress_every: float | None = PROGRESS_EVERY_S  # seconds between progress lines (None: looks only)

    @property
    def total_timeout(self) -> float:
        """Seconds one worker may take to load (or finish) all its models."""
        return self.setup_timeout * len(self.models)

    @property
    def rotates(self) -> bool:
        return self.fresh_workers and self.until_decided and self.workers_per_model >= 2

    @property
    def looks(self) -> list[int]:
        return planned_looks(self.min_rounds, self.until_decided)

    @property
    def look_times(self) -> list[float]:
        """Seconds of turns by which each planned look should come: the share of `max_time` that its rounds are
        of the last planned look's, so that a look comes at the same fraction of the study (and spends the same
        alpha, `detbench.stats.spending`) on a slow machine as on a fast one (none without `until_decided`);
        `look_schedule` turns them into rounds."""
        looks = self.looks
        if not self.until_decided:
            return [math.inf] * len(looks)
        return [self.max_time * rounds / looks[-1] for rounds in looks]

    def look_schedule(self, round_s: float | None) -> list[int]:
        """The rounds of the looks, fixed before the first round: each planned look, or, when rounds of `round_s`
        seconds would reach it only after its share of `max_time` (`look_times`), the round where that share
        runs out; at least MIN_FIRST_LOOK rounds, and LOOK_GROWTH times the previous look's. As many looks as
        planned, so each keeps its share of alpha; the timed samples cannot move a look."""
        looks = self.looks
        if round_s is None or round_s <= 0 or not self.until_decided:
            return looks
        schedule: list[int] = []
        for planned, seconds in zip(looks, self.look_times, strict=True):
            rounds = min(planned, max(MIN_FIRST_LOOK, math.ceil(seconds / round_s)))
            if schedule:  # never closer to the previous look than the plan's growth (nor beyond the planned look)
                rounds = max(rounds, min(planned, math.ceil(LOOK_GROWTH * schedule[-1])))
            schedule.append(min(rounds, MAX_STUDY_ROUNDS))
        return sorted(set(schedule))

    def describe(self) -> dict[str, Any]:
        return {"id": self.study_id, "baseline": self.baseline, "models": [m.name for m in self.models],
                "workers_per_model": self.workers_per_model, "turn_warmup": self.turn_warmup,
                "order_seed": self.seed, "until_decided": self.until_decided, "min_rounds": self.min_rounds,
                "max_time_s": self.max_time, "alpha": self.alpha, "min_effect": self.min_effect,
                "planned_looks": self.looks,
                "alpha_spending": "O'Brien-Fleming-type (Lan-DeMets), union bound", "cpus": self.cpus,
                "fresh_workers_each_look": self.rotates, "bias_probe_forwards": self.bias_probe,
                "formats": sorted({m.config.format for m in self.models}), "processes_hold_every_model": True,
                "design": paired.design(self.rotates, shared=True)}


class WorkerFailed(Exception):
    """A worker's failure: of one of its models (`model`), or of the process itself (None)."""

    def __init__(self, worker: Worker, reason: str, model: str | None = None) -> None:
        super().__init__(reason)
        self.worker, self.reason, self.model = worker, reason, model


def _latency(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 < value < MAX_ANSWER_MS


def _latencies(value: Any) -> bool:
    return isinstance(value, list) and len(value) <= MAX_ANSWER_LIST and all(_latency(v) for v in value)


def _names(value: Any, of: Callable[[Any], bool]) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and of(v) for k, v in value.items())


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def answer_problem(key: str, message: dict[str, Any]) -> str:
    """What is wrong with a worker's answer `key` (its shape, its numbers); "" when nothing is. Optional maps
    (failed models, inspections) may be absent or empty."""
    value = message[key]
    if key == "ms":
        ok, wrong = _latency(value), "is not a latency in ms"
    elif key == "run_ms":
        ok, wrong = _latencies(value), "is not a list of latencies in ms"
    elif key == "warm":
        ok, wrong = isinstance(value, dict) and _latencies(value.get("warmup_ms", [])), "has no warm-up timings"
    elif key == "ready":
        ok = isinstance(value, dict) and _names(value.get("failed") or {}, _is_text)
        wrong = "does not list failed models by name"
    elif key == "done":
        ok = (_names(value, _is_text) and _names(message.get("failed") or {}, _is_text)
              and _names(message.get("inspection") or {}, lambda v: v is None or isinstance(v, dict)))
        wrong = "does not map model names to reports"
    else:
        return ""
    return "" if ok else wrong


@dataclass
class Worker:
    """One worker process, holding every model of the study."""

    index: int
    process: subprocess.Popen
    reader: LineReader
    log_path: Path
    turns: dict[str, dict[int, float]] = field(default_factory=dict)  # model -> round -> latency ms
    report_paths: dict[str, Path] = field(default_factory=dict)  # model -> its report, once stopped
    retired: bool = False  # stopped after a look, its reports written; a fresh worker took its place
    lost: str = ""  # why the process was lost (it died or hung): its turns of its generation are left out
    last_answer: dict[str, Any] = field(default_factory=dict)
    closed: bool = False

    def label(self, model: str) -> str:
        return f"{model}#{self.index}"

    def send(self, message: dict[str, Any]) -> None:
        try:
            self.process.stdin.write(encode(message))
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise WorkerFailed(self, self._death("its pipe closed")) from exc

    def receive(self, key: str, timeout: float, waiting: Callable[[], None] | None = None,
                model: str | None = None) -> Any:
        """The answer `key` about `model`, within `timeout` s; `waiting` is called every WAIT_SLICE_S while there
        is none. The worker runs a checkpoint's code (with --unsafe-load, anyone's), so its answers are checked:
        one of another shape, or about another model, loses the worker."""
        deadline = time.monotonic() + timeout
        while True:
            slice_s = timeout if waiting is None else min(WAIT_SLICE_S, max(0.0, deadline - time.monotonic()))
            try:
                message = self.reader.read(slice_s)
                break
            except ChannelTimeout as exc:
                if waiting is None or time.monotonic() >= deadline:
                    raise WorkerFailed(self, f"no answer within {timeout:g} s") from exc
                waiting()
            except ChannelClosed as exc:
                raise WorkerFailed(self, self._death(str(exc))) from exc
        if "error" in message:  # a model's failure only when it names the model asked about; else the process's
            named = message.get("model") if model is not None and message.get("model") == model else None
            raise WorkerFailed(self, text.bounded(str(message["error"]), MAX_REASON_CHARS), named)
        if key not in message:
            raise WorkerFailed(self, f"study protocol: expected {key!r}, got {sorted(map(str, message))[:8]}")
        if model is not None and message.get("model") != model:
            raise WorkerFailed(self, f"study protocol: an answer about another model to a command about {model}")
        wrong = answer_problem(key, message)
        if wrong:
            raise WorkerFailed(self, f"study protocol: {key!r} answer {wrong}")
        self.last_answer = message
        return message[key]

    def _death(self, what: str) -> str:
        """Why the worker went away: its exit status or signal, and the last line of its log."""
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        cause = what if code is None else (f"killed by signal {-code}" if code < 0 else f"exit status {code}")
        last = self.log_tail()[-1:] or [""]
        return f"{cause}: {last[0]}" if last[0] else cause

    def log_tail(self) -> list[str]:
        """The last lines of the worker's log (read from its last 64 KiB, however much it wrote)."""
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(max(0, handle.seek(0, os.SEEK_END) - 65536))
                lines = handle.read().decode(errors="replace").splitlines()
        except OSError:
            return []
        return [line for line in lines if line.strip()][-LOG_TAIL:]

    def kill(self) -> None:
        if self.process.poll() is None:
            kill_tree(self.process)

    def close(self) -> None:
        """Release the pipes (after the process ended or was killed); only once, since the descriptor's number
        may be reused afterwards."""
        if self.closed:
            return
        self.closed = True
        for close in (self.process.stdin.close, lambda: os.close(self.reader.fd)):
            try:
                close()
            except OSError:
                pass


@dataclass
class StudyOutcome:
    plan: StudyPlan
    workers: list[Worker]
    failed: dict[str, str]  # model -> reason
    order: list[list[str]]  # per round, the workers in turn order
    looks: list[dict[str, Any]]
    results: list[paired.PairResult]
    process: paired.ProcessSpread | None
    rounds_done: int
    turn_seconds: float
    stop_reason: str
    probes: list[bias.Probe] = field(default_factory=list)
    probe_seconds: float = 0.0
    budget: budget.Budget | None = None
    look_schedule: list[int] = field(default_factory=list)  # the rounds of the looks, fixed before the first round
    host_load: dict[str, Any] | None = None  # other programs' load over the rounds (`measure.host_load`)
    busy: list[str] = field(default_factory=list)  # what the looks said of it, each line once

    def interleaving_bias(self) -> dict[str, dict[str, Any]] | None:
        """Per model, its turns against the probe's steady loop; None when the study ran no probe."""
        if not self.plan.bias_probe:
            return None
        turns = {m.name: {w.label(m.name): w.turns.get(m.name, {}) for w in self.workers}
                 for m in self.plan.models if m.name not in self.failed}
        return bias.interleaving_bias(turns, self.probes, margin=self.plan.min_effect)

    def reports(self, model: str) -> list[Path]:
        return [w.report_paths[model] for w in self.workers if model in w.report_paths]

    def timed(self, model: str) -> list[dict[int, float]]:
        """The turns the coordinator timed for `model`, per worker, in the order of `reports`."""
        return [w.turns.get(model, {}) for w in self.workers if model in w.report_paths]


class Coordinator:
    def __init__(self, plan: StudyPlan, echo: Echo) -> None:
        self.plan = plan
        self.progress = Cadence(plan.progress_every)  # counted from the last line of any kind

        def echo_and_mark(line: str) -> None:
            echo(line)
            self.progress.said()

        self.echo = echo_and_mark
        self.workers: list[Worker] = []
        self.failed: dict[str, str] = {}
        self.order: list[list[str]] = []
        self.looks: list[dict[str, Any]] = []
        self.results: list[paired.PairResult] | None = None
        self.process: paired.ProcessSpread | None = None
        self.turn_seconds = 0.0
        self.typical_turn_s: dict[str, float] = {}
        self.checked: dict[str, dict[str, Any]] = {}  # per model: the bounded check its workers' bytes passed
        self.probes: list[bias.Probe] = []
        self.probe_seconds = 0.0
        self.probe_rng = np.random.default_rng([plan.seed, 1])  # apart from the order's generator
        self.warmup_ms: dict[str, list[list[float]]] = {}  # per model: each first-generation worker's warm-up
        self.budget: budget.Budget | None = None
        self.schedule: list[int] = plan.looks  # the rounds of the looks, fixed after the warm-up (look_schedule)
        self.setup_seconds = 0.0  # what the last generation of workers took to start and warm up
        self.load_marks: list[dict[str, Any]] = []  # host load read before the first round and at each look
        self.busy: list[str] = []

    # ------------------------------------------------------------ workers

    def _spawn(self, index: int) -> Worker:
        plan = self.plan
        log_path = plan.work_dir / f"w{index}.log"
        read_fd, write_fd = os.pipe()
        with open(log_path, "wb") as log:
            process = spawn_child(python_module(plan.python, "detbench.study.worker"),
                                  {"PYTHONUNBUFFERED": "1", REPLY_FD_ENV: str(write_fd)},
                                  stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, pass_fds=(write_fd,))
        os.close(write_fd)
        worker = Worker(index, process, LineReader(read_fd), log_path)
        self.workers.append(worker)  # before anything can fail: kill_all must know every process
        models = [{"name": m.name, "config": m.config.to_dict(), "inspection": self.checked.get(m.name),
                   "report_path": str(plan.work_dir / f"{m.name}.w{index}.json"),
                   "command": ["detbench", "study-worker", m.name, str(index)]} for m in self.models_left()]
        try:
            worker.send({"start": {"models": models, "worker": index, "cpus": plan.cpus,
                                   "turn_warmup": plan.turn_warmup, "study": plan.describe()}})
        except WorkerFailed as failure:
            self.fail(failure)
        return worker

    def models_left(self) -> list[StudyModel]:
        return [m for m in self.plan.models if m.name not in self.failed]

    def active(self) -> list[Worker]:
        return [w for w in self.workers if not w.retired and not w.lost]

    def fail(self, failure: WorkerFailed) -> None:
        """A model's failure fails the model in every worker; any other loses the process."""
        worker = failure.worker
        if failure.model is None:
            self.lose(worker, failure.reason)
        elif failure.model not in self.failed:
            self.failed[failure.model] = f"worker {worker.index}: {failure.reason}"
            self.echo(f"  ✗ {failure.model} failed (worker {worker.index}): {failure.reason}; its turns stop in "
                      f"every worker, the other models go on")

    def lose(self, worker: Worker, reason: str) -> None:
        """The process is gone with its turns of this generation; with none left, every model fails."""
        if worker.lost:
            return
        worker.lost = reason
        worker.kill()
        worker.close()
        left = len(self.active())
        self.echo(f"  ✗ worker {worker.index} lost: {reason}; its turns of this generation are left out"
                  + (f", {left} worker process(es) go on" if left else ""))
        if not left:
            for model in self.models_left():
                self.failed[model.name] = f"every worker process was lost (the last, worker {worker.index}: {reason})"

    def start(self, generation: int = 0) -> None:
        """A generation of workers: the first study worker alone (it fills the input cache), then all others;
        each loads its models one at a time and must answer ready; then each (worker, model) warms up in turn,
        alone."""
        plan = self.plan
        indices = [generation * plan.workers_per_model + k for k in range(plan.workers_per_model)]
        began, ready = time.monotonic(), 0
        for group in ((indices[:1], indices[1:]) if generation == 0 else (indices,)):
            started = [self._spawn(index) for index in group if self.models_left()]
            for worker in started:
                waiting = functools.partial(self._setup_progress, generation, began,
                                            f"{ready}/{len(indices)} workers loaded, worker {worker.index} loading "
                                            f"its models")
                answer = self._call(worker, None, "ready", plan.total_timeout, waiting)
                ready += answer is not None
                for model, reason in ((answer or {}).get("failed") or {}).items():
                    self.fail(WorkerFailed(worker, str(reason), str(model)))
        warm, total = 0, len(self.active()) * len(self.models_left())
        for worker in self.active():
            for model in self.models_left():
                waiting = functools.partial(self._setup_progress, generation, began,
                                            f"{warm}/{total} warm, {worker.label(model.name)} warming up")
                answer = self._call(worker, {"warmup": model.name, "model": model.name}, "warm", plan.setup_timeout,
                                    waiting, model.name)
                warm += answer is not None
                if generation == 0 and isinstance(answer, dict) and isinstance(answer.get("warmup_ms"), list):
                    self.warmup_ms.setdefault(model.name, []).append([float(ms) for ms in answer["warmup_ms"]])
        fresh = f"generation {generation + 1}: " if plan.rotates else ""
        self.setup_seconds = time.monotonic() - began
        self.echo(f"✓ {fresh}{len(self.active())} worker processes ready and warm, each holding "
                  f"{len(self.models_left())} models ({self.setup_seconds:.0f} s)")
        if generation == 0:
            self._estimate_budget()

    def _setup_progress(self, generation: int, began: float, what: str) -> None:
        if self.progress.due():
            self.echo(f"  generation {generation + 1} starting: {what} ({time.monotonic() - began:.0f} s)")

    def _estimate_budget(self) -> None:
        """What the study's time can decide, and the rounds of its looks, from the first generation's warm-ups
        (said before the first round)."""
        plan = self.plan
        if not plan.until_decided or plan.baseline in self.failed:
            return
        warmups = {name: runs for name, runs in self.warmup_ms.items() if name not in self.failed}
        self.budget = budget.estimate(warmups, plan.baseline, plan.workers_per_model, plan.turn_warmup,
                                      plan.max_time, plan.looks, plan.alpha, plan.min_effect,
                                      comparisons=len(plan.models) - 1, first_look=MIN_FIRST_LOOK)
        if self.budget is None:
            self.echo(f"· budget: not estimated (too few warm-up forwards timed for every model: --warmup "
                      f"{2 * budget.MIN_NOISE_FORWARDS - 1} or more); the looks come at the planned rounds "
                      f"({', '.join(map(str, plan.looks))}) or at --study-time")
            return
        self.schedule = plan.look_schedule(self.budget.round_s)
        for line in self.budget.lines(len(warmups)):
            self.echo(line)
        if self.schedule != plan.looks:
            self.echo(f"  looks at rounds {', '.join(map(str, self.schedule))} (the planned "
                      f"{', '.join(map(str, plan.looks))}, brought within --study-time at {self.budget.round_s:.2f} s "
                      f"a round)")

    def replace_workers(self, generation: int) -> None:
        """Stop every worker (each writes its reports) and start fresh ones in their place."""
        began = time.perf_counter()
        self.stop_workers("replaced by fresh workers after a look")
        for worker in self.workers:
            worker.retired = True
        stopped = time.perf_counter()
        self.start(generation)
        self.looks[-1]["replace_s"] = {"stop": round(stopped - began, 3),
                                       "start": round(time.perf_counter() - stopped, 3)}

    def _call(self, worker: Worker, message: dict[str, Any] | None, key: str, timeout: float,
              waiting: Callable[[], None] | None = None, model: str | None = None) -> Any:
        """The worker's answer `key` to `message` (about `model`); None when the model or the worker failed."""
        if worker.lost or model in self.failed:
            return None
        try:
            if message is not None:
                worker.send(message)
            return worker.receive(key, timeout, waiting, model)
        except WorkerFailed as failure:
            self.fail(failure)
            return None

    # ------------------------------------------------------------ rounds

    def _turn_timeout(self, model: str) -> float:
        typical = self.typical_turn_s.get(model)
        return MIN_TURN_TIMEOUT_S if typical is None else min(MAX_TURN_TIMEOUT_S,
                                                              max(MIN_TURN_TIMEOUT_S, 50.0 * typical))

    def run_round(self, round_index: int, rng: np.random.Generator) -> None:
        pairs = [(worker, model.name) for worker in self.active() for model in self.models_left()]
        order = [pairs[i] for i in rng.permutation(len(pairs))]
        self.order.append([worker.label(model) for worker, model in order])
        for worker, model in order:
            if worker.lost or model in self.failed:
                continue
            began = time.perf_counter()
            answer = self._call(worker, {"turn": round_index, "model": model}, "ms", self._turn_timeout(model),
                                model=model)
            elapsed = time.perf_counter() - began
            self.turn_seconds += elapsed
            if answer is None:
                continue
            worker.turns.setdefault(model, {})[round_index] = float(answer)
            self.typical_turn_s.setdefault(model, elapsed)
        if self.plan.bias_probe:
            self.probe(round_index)

    def probe(self, round_index: int) -> None:
        """One drawn (worker, model) pair's back-to-back forwards, after the round (the bias probe)."""
        pairs = [(worker, model.name) for worker in self.active() for model in self.models_left()
                 if round_index in worker.turns.get(model.name, {})]
        if not pairs:
            return
        worker, model = pairs[int(self.probe_rng.integers(len(pairs)))]
        forwards = self.plan.bias_probe
        typical = self.typical_turn_s.get(model, MIN_TURN_TIMEOUT_S / 50.0)
        began = time.perf_counter()
        try:
            worker.send({"run": round_index, "model": model, "forwards": forwards})
            deadline = min(MAX_TURN_TIMEOUT_S, self._turn_timeout(model) + 50.0 * typical * forwards)
            answer = worker.receive("run_ms", deadline, model=model)
        except WorkerFailed as failure:
            failure.reason = f"bias probe: {failure.reason}"
            self.fail(failure)
            return
        finally:
            self.probe_seconds += time.perf_counter() - began
        if isinstance(answer, list):
            self.probes.append(bias.Probe(round_index, worker.label(model), model, [float(ms) for ms in answer]))

    def _series(self) -> dict[str, dict[int, dict[int, float]]]:
        """Each model still in the study: {worker index: {round: latency}} over the workers not lost (a lost
        worker wrote no report, so `compare` will not see its turns either)."""
        return {m.name: {w.index: w.turns.get(m.name, {}) for w in self.workers if not w.lost}
                for m in self.models_left()}

    def _analyse(self, rounds_done: int, alpha_look: float) -> paired.Look | None:
        """The analysis of a look at `rounds_done` over the models still in the study; None without the baseline."""
        plan, series = self.plan, self._series()
        if plan.baseline not in series:
            return None
        return paired.analyse_look(series, plan.baseline, alpha_look, plan.min_effect, rounds_done,
                                   family_size=len(plan.models) - 1, shared=True)

    def look_alpha(self, rounds_done: int, final: bool) -> float:
        """This look's level by the spending rule: the share of the study done (rounds of the last scheduled look,
        or seconds of --study-time), less what earlier looks used; all that is left when the look ends the study
        by its plan (the last scheduled look, or the study time reached)."""
        plan = self.plan
        fraction = spending.fraction_done(rounds_done, self.schedule[-1], self.turn_seconds,
                                          plan.max_time if plan.until_decided else math.inf)
        return spending.look_alpha(plan.alpha, fraction, sum(look["alpha"] for look in self.looks), final)

    def look(self, rounds_done: int, final: bool = True) -> bool:
        """Analyse; True when every comparison is decided (or nothing is left to compare)."""
        plan = self.plan
        alpha_look = self.look_alpha(rounds_done, final)
        current = self._analyse(rounds_done, alpha_look)
        if current is None:
            return True
        self.results = paired.merge_looks(self.results, current)
        self.process = current.process
        decided = sum(r.verdict != paired.UNDECIDED for r in self.results)
        self.looks.append({"rounds": rounds_done, "turn_seconds": round(self.turn_seconds, 3),
                           "alpha": alpha_look, "decided": decided, "comparisons": len(self.results),
                           "host_load": self._load_since_last_look()})
        self.echo(f"  look {len(self.looks)} of {len(plan.looks)} at round {rounds_done}: {decided}/"
                  f"{len(self.results)} decided ({self.turn_seconds:.0f} s of turns); "
                  + ", ".join(_shown(result, verdict=True) for result in self.results))
        return decided == len(self.results)

    def load_section(self, first: int) -> dict[str, Any] | None:
        """Other programs' load from load mark `first` to now (a new mark); None before the first round. The
        threads that compute: one worker's torch pool on CPU, its one launching thread on CUDA."""
        if not self.load_marks:
            return None
        start = self.load_marks[first]
        self.load_marks.append(host_load.snapshot())
        threads = 1 if self.plan.device_type == "cuda" else self.plan.models[0].config.threads or 1
        return host_load.host_load_section(start, self.load_marks[-1], threads, device_type=self.plan.device_type)

    def _load_since_last_look(self) -> dict[str, Any] | None:
        """The rounds since the last look: the share of time some task waited for a core and other programs'
        runnable tasks (the workers wait on their pipes while the coordinator looks); what it warns of is said
        once, here, and kept for the reports."""
        section = self.load_section(-1)
        if section is None:
            return None
        for warning in host_load.busy_warnings(section):
            if warning not in self.busy:
                self.busy.append(warning)
                self.echo(f"  ! look {len(self.looks) + 1}: {warning}")
        return {"cpu_pressure_share": section["cpu_pressure_share"],
                "other_runnable_max": section["other_runnable_max"]}

    def report_progress(self, rounds_done: int, next_look: int) -> None:
        """One line: the round, the time, when the next look comes, and each comparison's interval so far."""
        plan = self.plan
        left = (f", {max(0.0, plan.max_time - self.turn_seconds):.0f} s left" if plan.until_decided else "")
        line = (f"  round {rounds_done}: {self.turn_seconds:.0f} s of turns{left}; next look at round "
                f"{self.schedule[next_look]}" + self._interim(rounds_done))
        self.echo(line)

    def _interim(self, rounds_done: int) -> str:
        """Each comparison's estimate and interval now, at the level of a final look (no verdict is made here)."""
        current = self._analyse(rounds_done, self.look_alpha(rounds_done, final=True))
        if current is None or not current.results:
            return ""
        shown = [_shown(result) for result in current.results if result.delta_pct is not None]
        missing = "" if all(r.ci_pct for r in current.results) else (
            f"; intervals from round {paired.MIN_BATCHES * paired.MIN_ROUNDS_PER_BATCH}")
        return (f"; so far (interim, no verdict): {', '.join(shown)}" if shown else "") + missing

    def run(self) -> tuple[int, str]:
        """The rounds and looks; (rounds done, why they stopped)."""
        plan = self.plan
        rng = np.random.default_rng(plan.seed)
        self.load_marks.append(host_load.snapshot())  # last: the first round follows
        rounds_done, next_look = 0, 0
        while self.active():
            if plan.baseline in self.failed:
                return rounds_done, f"the baseline {plan.baseline} failed: nothing left to compare with"
            self.run_round(rounds_done, rng)
            rounds_done += 1
            out_of_time = plan.until_decided and self.turn_seconds >= plan.max_time
            if not (out_of_time or rounds_done >= self.schedule[next_look]):
                if self.progress.due():
                    self.report_progress(rounds_done, next_look)
                continue
            # a planned look this close to the study time ends the study: a look after it would test with the
            # crumbs of alpha it left, and show its intervals at that level
            out_of_time = out_of_time or (plan.until_decided
                                          and self.turn_seconds >= NEARLY_OUT_OF_TIME * plan.max_time)
            final = out_of_time or next_look + 1 == len(self.schedule)
            all_decided = self.look(rounds_done, final)
            next_look += 1
            if next_look == len(self.schedule):
                return rounds_done, "last planned look" if plan.until_decided else "rounds done"
            if plan.until_decided and all_decided:
                return rounds_done, "every comparison decided"
            if out_of_time:
                return rounds_done, f"--study-time {plan.max_time:g} s of turns reached"
            if plan.rotates and self._worth_a_generation():
                self.replace_workers(next_look)
        lost = [w.lost for w in self.workers if w.lost]
        return rounds_done, (f"every worker process was lost (the last: {lost[-1]})" if lost and not self.active()
                             else "no model left")

    def _worth_a_generation(self) -> bool:
        """Fresh workers only where the turns left are worth their start: a generation that would take longer to
        start than the seconds of turns left would sample process luck for a handful of rounds."""
        left = self.plan.max_time - self.turn_seconds
        if left >= self.setup_seconds:
            return True
        self.echo(f"  the same workers go on: {left:.0f} s of turns left, less than fresh ones take to start "
                  f"({self.setup_seconds:.0f} s)")
        return False

    def stop_workers(self, reason: str) -> None:
        """Stop the workers one at a time (each may still run --pipeline, model by model); collect their
        reports."""
        for worker in self.active():
            paths = self._call(worker, {"stop": reason, "drop": sorted(self.failed)}, "done", self.plan.total_timeout)
            if isinstance(paths, dict):  # the reports are where the coordinator asked for them, not where told
                expected = {m: self.plan.work_dir / f"{m}.w{worker.index}.json" for m in paths}
                worker.report_paths = {m: where for m, where in expected.items() if Path(paths[m]) == where}
                for model, inspection in (worker.last_answer.get("inspection") or {}).items():
                    if isinstance(inspection, dict):
                        self.checked.setdefault(model, inspection)
                for model, why in (worker.last_answer.get("failed") or {}).items():
                    self.fail(WorkerFailed(worker, str(why), str(model)))
                try:
                    worker.process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    worker.kill()
            worker.close()

    def kill_all(self) -> None:
        for worker in self.workers:
            worker.kill()
            worker.close()

    def final_results(self) -> list[paired.PairResult]:
        """The looks replayed over the models that finished, as `compare` will replay them from their reports:
        the same verdicts in study.json and in every table, even when a model failed during the study."""
        plan = self.plan
        series = self._series()
        if plan.baseline not in series or not self.looks:
            return self.results or []
        return paired.replay(series, plan.baseline, plan.alpha, plan.min_effect,
                             [look["rounds"] for look in self.looks], len(plan.looks), len(plan.models) - 1,
                             [look["alpha"] for look in self.looks], shared=True)


def _shown(result: paired.PairResult, verdict: bool = False) -> str:
    """`p2 +72.6 % [+28.4, +131.8]` (with `verdict`: `-> slower`), for the progress and look lines."""
    if result.delta_pct is None:
        return f"{result.model} n/a"
    text = f"{result.model} {result.delta_pct:+.1f} %"
    if result.ci_pct is not None:
        text += f" [{result.ci_pct[0]:+.1f}, {result.ci_pct[1]:+.1f}]"
    return f"{text} {result.verdict}" if verdict else text


def run_study(plan: StudyPlan, echo: Echo) -> StudyOutcome:
    """Run the study; on any exception (Ctrl-C included) every worker is killed before it propagates."""
    folder_below(plan.work_dir.parent, plan.work_dir.name)  # a real folder, made without following a link
    coordinator = Coordinator(plan, echo)
    try:
        coordinator.start()
        rounds_done, reason = coordinator.run()
        if coordinator.results is None and rounds_done:
            coordinator.look(rounds_done)
        coordinator.stop_workers(reason)
    finally:
        coordinator.kill_all()
    return StudyOutcome(plan, coordinator.workers, coordinator.failed, coordinator.order, coordinator.looks,
                        coordinator.final_results(), coordinator.process, rounds_done, coordinator.turn_seconds,
                        reason, coordinator.probes, coordinator.probe_seconds, coordinator.budget,
                        coordinator.schedule, coordinator.load_section(0), coordinator.busy)


def shared_cpus(threads: int) -> list[int] | None:
    """The cores every worker is pinned to: the last `threads` of those this process may use (core 0 often
    takes the interrupts), so no worker is luckier in its placement than another; None where affinity is
    not available."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    available = sorted(os.sched_getaffinity(0))
    return available[-threads:] if threads < len(available) else available


def rounds_for(iters: int, workers_per_model: int) -> int:
    """Rounds that give each model at least `iters` timed samples."""
    return max(1, math.ceil(iters / workers_per_model))
