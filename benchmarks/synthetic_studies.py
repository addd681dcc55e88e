"""Synthetic interleaved studies with a known true Δ, run through detbench's own analysis (`verdict_harness.py`).

`generate` makes the per-worker turn series a study gives `detbench.stats.paired`: {model: [{round: ms}, ...]}
with one entry per worker process, in the engine's order (generation by generation, worker index
generation * W + k; a worker's rounds run from its generation's first round to the next look). Log-normal turn
latency around BASELINE_MS, the true Δ applied multiplicatively to every model but the baseline, and the noise
of a `Scenario`. `series` gives the same turns as the `paired.Series` that `paired.as_series` makes of them
(the analysis converts either way; the harness skips the dicts for speed).

`run_study` then takes a study's looks and its final verdicts as `detbench.study.engine.Coordinator` does: with
`Shape.shared`, the engine's design (every worker process holds every model, the rounds paired within each
process); without, the older one (every model in W processes of its own, a process variance component).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import lfilter

from detbench.stats import paired, spending
from detbench.study.engine import StudyPlan, planned_looks
from detbench.study.options import DEFAULT_ALPHA, DEFAULT_MIN_EFFECT

BASELINE = "baseline"
BASELINE_MS = 50.0
TURN_SD = 0.10  # per-turn log sd
MIN_ROUNDS = StudyPlan.min_rounds  # the defaults of a study
WORKERS = StudyPlan.workers_per_model


@dataclass(frozen=True)
class Scenario:
    """The noise of a synthetic study, on the log scale. Every turn has noise of sd `turn_sd`: independent, or
    each process's own AR(1) over its turns (`worker_ar`, stationary sd `turn_sd`). The rest adds to it."""

    name: str
    turn_sd: float = TURN_SD
    worker_ar: float = 0.0
    machine_ar: float = 0.0  # AR(1) coefficient of a machine state shared by every turn of a round ...
    machine_sd: float = 0.0  # ... and its stationary sd
    drift_round: float = 0.0  # machine-wide trend: added in full by the last planned round
    drift_turn: float = 0.0  # trend within a round: added in full to its last turn, none to its first
    shift_rate: float = 0.0  # chance per round of a machine-wide step change ...
    shift_sd: float = 0.0  # ... and the sd of its size
    burst_rate: float = 0.0  # share of turns BURST_RANGE times slower
    slow_process: float = 0.0  # offset of the baseline's first process (generation 0, worker 0) for its life
    process_sd: float = 0.0  # each process's own offset for its life
    process_model_sd: float = 0.0  # each (process, model)'s own offset for its life: a process favours a model
    machine_scaling: float = 0.0  # the machine state (machine_ar, machine_sd) reaches every model but the
    #                               baseline (1 + this) times as strongly: it does not cancel in the ratio
    ratio_ar: float = 0.0  # AR(1) coefficient of a slow drift of every model's ratio to the baseline, common to
    ratio_sd: float = 0.0  # every process (stationary sd on the log scale), on top of the white turn noise
    episode_rate: float = 0.0  # chance per round that a (process, model) starts an episode of slow turns ...
    episode_rounds: tuple[int, int] = (5, 20)  # ... lasting this many rounds ...
    episode_range: tuple[float, float] = (1.5, 3.0)  # ... each turn this many times slower
    fresh: bool = True  # a fresh generation of processes after each look (False: one generation)


BURST_RANGE = (3.0, 10.0)

SCENARIOS = {s.name: s for s in (
    Scenario("iid"),
    Scenario("worker_ar05", worker_ar=0.5),
    Scenario("worker_ar09", worker_ar=0.9),
    Scenario("machine_ar09", machine_ar=0.9, machine_sd=0.10),
    Scenario("drift_round", drift_round=math.log(1.2)),
    Scenario("drift_turn", drift_turn=math.log(1.1)),
    Scenario("level_shift", shift_rate=1 / 150, shift_sd=0.10),
    Scenario("bursts", burst_rate=0.03),
    Scenario("slow_process", slow_process=math.log(1.1)),
    Scenario("process_luck", process_sd=0.02),
    Scenario("no_fresh", process_sd=0.02, fresh=False),
    Scenario("process_model", process_model_sd=0.01),
    Scenario("machine_scaling", machine_ar=0.9, machine_sd=0.10, machine_scaling=0.2),
    Scenario("ratio_drift", ratio_ar=0.99, ratio_sd=0.02),
    Scenario("model_episodes", episode_rate=1 / 250),
)}


@dataclass(frozen=True)
class Shape:
    """A study's design: models (the first is the baseline), workers per model and the planned looks; `shared`:
    W worker processes each hold every model (the engine's design), else every model has W processes of its own."""

    models: int = 2
    workers: int = WORKERS
    shared: bool = False
    looks: tuple[int, ...] = tuple(planned_looks(MIN_ROUNDS, until_decided=True))  # StudyPlan.looks
    alpha: float = DEFAULT_ALPHA
    min_effect: float = DEFAULT_MIN_EFFECT

    @property
    def names(self) -> list[str]:
        return [BASELINE] + [f"m{i}" for i in range(1, self.models)]

    def generation_starts(self, fresh: bool) -> list[int]:
        """The first round of each generation: one at round 0 and, with fresh workers, one after each look but the
        last (Coordinator.run replaces the workers after every look that does not end the study)."""
        return [0, *self.looks[:-1]] if fresh else [0]


@dataclass(frozen=True)
class Turns:
    """A synthetic study's turns: log latency per (round, slot); slot s is model s // W, worker s % W."""

    logs: np.ndarray  # (rounds, models * W)
    starts: list[int]  # first round of each generation
    shape: Shape


def simulate(rng: np.random.Generator, scenario: Scenario, delta: float, shape: Shape = Shape(),
             shared_processes: bool = False) -> Turns:
    """The log latency of every turn of the planned rounds (a study that stops early uses a prefix).

    Each round gives every slot one turn in a random order (its position drives `drift_turn`; with
    `shared_processes`, also the order of a process's turns). A process is one worker of one model
    (current design), or, with `shared_processes`, worker k of every model (a process holding every model):
    its offset, its AR(1) state and `slow_process` are then common to all models in it.
    """
    rounds, models, workers = shape.looks[-1], shape.models, shape.workers
    slots = models * workers
    starts = shape.generation_starts(scenario.fresh)
    generation = np.searchsorted(starts, np.arange(rounds), side="right") - 1
    per_generation = workers if shared_processes else slots
    process = generation[:, None] * per_generation + (np.arange(slots) % per_generation)[None, :]
    position = np.argsort(rng.random((rounds, slots)), axis=1).argsort(axis=1)  # each round's random order

    model_of_slot = np.arange(slots) // workers
    logs = np.full((rounds, slots), math.log(BASELINE_MS))
    logs += np.where(model_of_slot > 0, math.log1p(delta), 0.0)[None, :]
    logs += _process_noise(rng, scenario, process, position, len(starts) * per_generation)

    machine = np.zeros(rounds)
    if scenario.machine_sd:
        machine += _ar1(rng, scenario.machine_ar, scenario.machine_sd, (1, rounds))[0]
    if scenario.drift_round:
        machine += scenario.drift_round * np.arange(rounds) / max(rounds - 1, 1)
    if scenario.shift_rate:
        machine += np.cumsum((rng.random(rounds) < scenario.shift_rate) * rng.normal(0.0, scenario.shift_sd, rounds))
    logs += machine[:, None] * np.where(model_of_slot > 0, 1.0 + scenario.machine_scaling, 1.0)[None, :]
    if scenario.ratio_sd:
        ratio = _ar1(rng, scenario.ratio_ar, scenario.ratio_sd, (1, rounds))[0]
        logs += ratio[:, None] * (model_of_slot > 0)[None, :]
    if scenario.episode_rate:
        logs += _episodes(rng, scenario, rounds, slots)
    if scenario.drift_turn:
        logs += scenario.drift_turn * position / max(slots - 1, 1)
    if scenario.burst_rate:
        bursts = rng.random((rounds, slots)) < scenario.burst_rate
        logs += bursts * np.log(rng.uniform(*BURST_RANGE, (rounds, slots)))
    offsets = rng.normal(0.0, scenario.process_sd, len(starts) * per_generation)
    offsets[0] += scenario.slow_process  # process 0: the baseline's worker 0 of generation 0
    logs += offsets[process]
    if scenario.process_model_sd:  # one offset per (generation, slot): a slot is one model in one process
        logs += rng.normal(0.0, scenario.process_model_sd, (len(starts), slots))[generation]
    return Turns(logs, starts, shape)


def _episodes(rng: np.random.Generator, scenario: Scenario, rounds: int, slots: int) -> np.ndarray:
    """Episodes of slow turns: each slot (a model in a process) starts one in a round with chance
    `episode_rate`; it lasts `episode_rounds` rounds, each of its turns `episode_range` times slower."""
    added = np.zeros((rounds, slots))
    for r, s in zip(*np.nonzero(rng.random((rounds, slots)) < scenario.episode_rate), strict=True):
        length = int(rng.integers(scenario.episode_rounds[0], scenario.episode_rounds[1] + 1))
        added[r:r + length, s] += math.log(rng.uniform(*scenario.episode_range))
    return added


def _ar1(rng: np.random.Generator, phi: float, sd: float, size: tuple[int, int]) -> np.ndarray:
    """Rows of a stationary AR(1) with coefficient `phi` and marginal sd `sd`."""
    shocks = rng.standard_normal(size)
    shocks[:, 0] *= sd
    shocks[:, 1:] *= sd * math.sqrt(1.0 - phi ** 2)
    return lfilter([1.0], [1.0, -phi], shocks, axis=1) if phi else shocks


def _process_noise(rng: np.random.Generator, scenario: Scenario, process: np.ndarray, position: np.ndarray,
                   processes: int) -> np.ndarray:
    """Per-turn noise: each process's own AR(1) over its turns in the order they ran (round, then position)."""
    if not scenario.worker_ar:
        return rng.normal(0.0, scenario.turn_sd, process.shape)
    rounds, slots = process.shape
    flat_process = process.ravel()
    when = (np.arange(rounds)[:, None] * slots + position).ravel()
    order = np.lexsort((when, flat_process))
    counts = np.bincount(flat_process, minlength=processes)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    step = np.empty(order.size, dtype=np.int64)
    step[order] = np.arange(order.size) - first[flat_process[order]]  # index of each turn in its process's run
    noise = _ar1(rng, scenario.worker_ar, scenario.turn_sd, (processes, int(counts.max())))
    return noise[flat_process, step].reshape(rounds, slots)


def series(turns: Turns) -> dict[str, list[paired.Series]]:
    """{model: [paired.Series per worker]}: the workers in the engine's order, each over its generation's rounds."""
    shape, starts = turns.shape, turns.starts
    ends = [*starts[1:], turns.logs.shape[0]]
    found: dict[str, list[paired.Series]] = {}
    for m, name in enumerate(shape.names):
        found[name] = [paired.Series(np.arange(begin, end), turns.logs[begin:end, m * shape.workers + k])
                       for begin, end in zip(starts, ends, strict=True) for k in range(shape.workers)]
    return found


def generate(rng: np.random.Generator, scenario: Scenario, delta: float, shape: Shape = Shape(),
             shared_processes: bool = False) -> dict[str, list[dict[int, float]]] | dict[str, dict[int, dict]]:
    """A synthetic study's turns (ms).

    Current design (default): {model: [{round: ms} per worker]}, the shape `Coordinator._series` gives `paired`.
    With `shared_processes` (every worker process holds every model): {model: {process_id: {round: ms}}}, where
    process_id (generation * W + k) names the same process in every model.
    """
    turns = simulate(rng, scenario, delta, shape, shared_processes)
    if not shared_processes:
        return {name: [dict(zip(s.rounds.tolist(), np.exp(s.logs).tolist(), strict=True)) for s in workers]
                for name, workers in series(turns).items()}
    found: dict[str, dict[int, dict[int, float]]] = {}
    for name, workers in series(turns).items():
        for index, s in enumerate(workers):  # worker index generation * W + k is that generation's process k
            found.setdefault(name, {})[index] = dict(zip(s.rounds.tolist(), np.exp(s.logs).tolist(), strict=True))
    return found


@dataclass
class StudyRun:
    """What one study showed: each look's analysis, and the final verdicts."""

    looks: list[paired.Look]  # the looks taken, as Coordinator.look analysed them
    final: list[paired.PairResult]  # Coordinator.final_results: paired.replay over the looks taken


def _upto(models: Mapping[str, Sequence[paired.Series]], count: int) -> dict[str, dict[int, paired.Series]]:
    """The turns of rounds before `count`, of the workers started by then (Coordinator._series at that round),
    by worker index (generation * W + k: the process, with shared processes)."""
    return {name: {k: s.before(count) for k, s in enumerate(workers) if s.rounds.size and s.rounds[0] < count}
            for name, workers in models.items()}


def run_study(models: Mapping[str, Sequence[paired.Series]], shape: Shape = Shape()) -> StudyRun:
    """One study's looks and verdicts, as `detbench.study.engine` makes them.

    Mirrors `Coordinator.run` (a look at each planned round count; the study stops at the first look where every
    comparison is decided, or at the last), `Coordinator.look` / `look_alpha` / `_analyse` (`paired.analyse_look`
    over the workers so far, at the level the spending rule gives the look, the last planned look taking what is
    left, with the family of every planned comparison, then `paired.merge_looks`) and
    `Coordinator.final_results` (`paired.replay` over the looks taken at their levels, on the turns of the rounds
    run). Not modelled: --study-time (looks brought forward, or the study cut short, on a slow machine), a
    generation kept because too little time is left for fresh workers, and failed models.
    """
    family = shape.models - 1
    looks: list[paired.Look] = []
    results: list[paired.PairResult] | None = None
    for k, count in enumerate(shape.looks):
        fraction = spending.fraction_done(count, shape.looks[-1], 0.0, math.inf)
        level = spending.look_alpha(shape.alpha, fraction, sum(look.alpha for look in looks),
                                    final=k == len(shape.looks) - 1)
        look = paired.analyse_look(_upto(models, count), BASELINE, level, shape.min_effect, count, family,
                                   shape.shared)
        looks.append(look)
        results = paired.merge_looks(results, look)
        if all(r.verdict != paired.UNDECIDED for r in results):
            break
    stop = looks[-1].round_count
    final = paired.replay(_upto(models, stop), BASELINE, shape.alpha, shape.min_effect,
                          [look.round_count for look in looks], len(shape.looks), family,
                          [look.alpha for look in looks], shape.shared)
    return StudyRun(looks, final)


# ---------------------------------------------------------------- measures over many studies

AA, MISS_DELTA, POWER_DELTA, EQUIVALENCE_DELTA = 0.0, 0.05, 0.02, 0.03


@dataclass(frozen=True)
class Rate:
    """A Monte-Carlo rate: `hits` of `n` studies, and its standard error sqrt(p (1 - p) / n)."""

    hits: int
    n: int

    @property
    def p(self) -> float:
        return self.hits / self.n if self.n else math.nan

    @property
    def se(self) -> float:
        return math.sqrt(self.p * (1.0 - self.p) / self.n) if self.n else math.nan


def misses(interval: tuple[float, float] | None, truth_log: float) -> bool:
    """The interval excludes the true value (no interval shown claims nothing, so misses nothing)."""
    return interval is not None and not interval[0] <= truth_log <= interval[1]


@dataclass
class Tally:
    """What the studies of one scenario at one true Δ showed."""

    delta: float
    looks: int  # planned
    outcomes: list[frozenset[str]] = field(default_factory=list)  # per study: the final verdicts it gave
    any_look_miss: int = 0  # studies in which some look's interval excluded the true Δ
    look_misses: list[int] = field(default_factory=list)  # per planned look: studies that took it and missed
    look_nominal: list[list[float]] = field(default_factory=list)  # per planned look: 1 - confidence shown
    final_covered: int = 0  # studies whose final intervals all held the true Δ
    taken: list[int] = field(default_factory=list)  # per study: the looks it took

    def __post_init__(self) -> None:
        self.look_misses = [0] * self.looks
        self.look_nominal = [[] for _ in range(self.looks)]

    @property
    def studies(self) -> int:
        return len(self.outcomes)

    def add(self, run: StudyRun) -> None:
        truth = math.log1p(self.delta)
        self.outcomes.append(frozenset(r.verdict for r in run.final))
        self.taken.append(len(run.looks))
        missed = False
        for index, look in enumerate(run.looks):
            self.look_nominal[index] += [1.0 - r.confidence for r in look.results if r.confidence is not None]
            if any(misses(r.ci_log, truth) for r in look.results):
                self.look_misses[index] += 1
                missed = True
        self.any_look_miss += missed
        self.final_covered += all(r.ci_log is not None and not misses(r.ci_log, truth) for r in run.final)

    @property
    def looks_taken(self) -> float:
        """The mean number of looks a study took."""
        return float(np.mean(self.taken)) if self.taken else math.nan

    def claim_rate(self, *verdicts: str) -> Rate:
        """Studies in which some comparison's final verdict was one of `verdicts`."""
        return Rate(sum(bool(outcome.intersection(verdicts)) for outcome in self.outcomes), self.studies)

    def look_miss_ratios(self) -> list[tuple[Rate, float]]:
        """Per look with an interval shown: (studies that took it and whose interval missed, of all studies; the
        look's nominal miss rate, the mean of 1 - confidence over its intervals). Each look's part of the any-look
        miss, so a calibrated interval stays at or below its nominal rate whichever studies stop before it."""
        return [(Rate(missed, self.studies), float(np.mean(nominal)))
                for missed, nominal in zip(self.look_misses, self.look_nominal, strict=True) if nominal]


def tally(scenario: Scenario, delta: float, trials: int, seed: int, shape: Shape = Shape()) -> Tally:
    """`trials` studies of `scenario` at true Δ `delta`. Study i draws its turns from the seed (seed, scenario,
    i) whatever Δ is (common random numbers: the Δs of a scenario differ by Δ alone)."""
    index = list(SCENARIOS).index(scenario.name) if scenario.name in SCENARIOS else len(SCENARIOS)
    found = Tally(delta, len(shape.looks))
    for trial in range(trials):
        rng = np.random.default_rng([seed, index, trial])
        found.add(run_study(series(simulate(rng, scenario, delta, shape, shape.shared)), shape))
    return found
