"""What the page shows, as plain values for the template: taken from the comparison's typed model
(`comparison.analysis`), the backend matrices (`comparison.pivot`), a sweep's results (`comparison.sweep`) and
the typed reports; nothing here parses a file.

Numbers stay numbers (the template formats them, and keeps each exact value in the cell's `data-value`); text
from reports stays as it is, bounded where `comparison` bounds it: the template escapes all of it (Jinja2's
autoescape). Plot labels go through `comparison.plots.label`.
"""

from __future__ import annotations

import datetime as _dt
import shlex
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detbench import text
from detbench.comparison import caveats
from detbench.comparison.analysis import (
    DELTA_TESTED,
    Comparison,
    Entry,
    Group,
    Row,
    front_not_established_why,
    pareto_front,
)
from detbench.comparison.pivot import Pivot, left_out
from detbench.comparison.plots import too_many
from detbench.comparison.sweep import cell_label, latency_orders, load_sweep, stability_tables
from detbench.comparison.tables import END_TO_END_NOTE, design_note
from detbench.limits import MAX_PIVOT_BACKENDS, MAX_PIVOT_MODELS, MAX_PLOT_GROUPS, MAX_SHOWN_TEXT_CHARS
from detbench.page import charts
from detbench.stats import paired

MAX_COMMANDS = 20  # distinct command lines shown in the provenance


@dataclass
class Provenance:
    """What the numbers were measured on: one value when every report agrees, else each model's."""

    label: str
    value: str | None
    per_model: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class RowView:
    """One model's line of the ablation table."""

    name: str
    is_baseline: bool
    params_M: float | None
    gflops: float | None
    median_ms: float | None
    median_ci: tuple[float, float] | None
    fps: float | None
    mem_MB: float | None
    map_mean: float | None
    map_sd: float | None
    map_seeds: int
    delta_pct: float | None  # the one latency Δ of the row: tested, or the ratio of medians
    delta_ci: tuple[float, float] | None
    delta_tested: bool
    confidence: float | None
    verdict: str  # "baseline", a paired verdict, or "-"
    mde_pct: float | None
    reason: str
    n_samples: int | None = None  # timed forwards
    rounds: int | None = None  # rounds of the study those forwards took
    mean_ms: float | None = None
    p95_ms: float | None = None
    max_ms: float | None = None
    decided_at_round: int | None = None


@dataclass
class GroupView:
    """One group of comparable reports: its table, plots and notes."""

    index: int
    setting: str
    why: str
    baseline: str | None
    study_id: str | None
    alpha: float
    min_effect_pct: float
    mem_label: str
    has_accuracy: bool
    design: str
    rows: list[RowView]
    map_label: str = ""  # the mAP column's second header line: what its cells are, over how many seeds
    map_seeds_vary: bool = False  # the models' mAP come from different numbers of seeds: each cell says its own
    method: list[Provenance] = field(default_factory=list)  # how the samples were taken
    charts: list[charts.Chart] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # plots not drawn, verdict reasons, end-to-end
    caveats: list[str] = field(default_factory=list)

    @property
    def mde_range(self) -> tuple[float, float] | None:
        """The smallest and largest minimum detectable effect of the group's tested comparisons."""
        values = [row.mde_pct for row in self.rows if row.mde_pct is not None]
        return (min(values), max(values)) if values else None


@dataclass
class PivotCellView:
    median_ms: float | None
    verdict: str
    delta_pct: float | None


@dataclass
class PivotView:
    baseline: str
    backends: list[str]
    rows: list[tuple[str, list[PivotCellView | None]]]
    notes: list[str]
    chart: charts.Chart | None = None


@dataclass
class SweepKindView:
    """One device kind of a sweep: each model's verdict cell by cell, and the latency orders."""

    kind: str
    cells: list[str]  # the column headers: study name and its settings
    rows: list[dict[str, Any]] | None  # `comparison.sweep.stability` rows; None when too big to show
    too_big: str
    orders: list[str]
    same_order: bool


@dataclass
class SweepView:
    folder: str
    studies: int
    problems: list[str]
    kinds: list[SweepKindView]


@dataclass
class PageContent:
    title: str
    folder: str
    generated: str
    writer: str = "report"  # the detbench command that wrote the page
    groups: list[GroupView] = field(default_factory=list)
    pivots: list[PivotView] = field(default_factory=list)
    sweep: SweepView | None = None
    provenance: list[Provenance] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # files skipped, plots not drawn


# ---------------------------------------------------------------- the table

def row_view(row: Row) -> RowView:
    """The row as the table model (`comparison.analysis.Row`) gives it, with its median's interval."""
    verdict, latency = row.verdict, row.entry.report.latency
    return RowView(
        name=row.name, is_baseline=row.is_baseline, params_M=row.metrics["params_M"], gflops=row.metrics["gflops"],
        median_ms=row.median_ms, median_ci=row.median_ci_ms,
        fps=row.metrics["fps_mean"], mem_MB=row.metrics["mem_MB"], map_mean=row.map50_95_mean, map_sd=row.map50_95_sd,
        map_seeds=row.map_seeds or 0, delta_pct=row.latency_delta_pct, delta_ci=row.latency_delta_ci_pct,
        delta_tested=row.latency_delta_kind == DELTA_TESTED,
        confidence=verdict.confidence if verdict and row.latency_delta_ci_pct else None,
        verdict="baseline" if row.is_baseline else (verdict.verdict if verdict else "-"),
        mde_pct=verdict.mde_pct if verdict else None,
        reason=text.bounded(verdict.reason, MAX_SHOWN_TEXT_CHARS) if verdict and verdict.reason else "",
        n_samples=row.n_samples or None, rounds=_rounds(row.entry), mean_ms=latency.mean_ms,
        p95_ms=latency.p95_ms, max_ms=latency.max_ms, decided_at_round=row.decided_at_round)


def _rounds(entry: Entry) -> int | None:
    """How many rounds of a study the report's samples took (None outside a study)."""
    rounds = entry.report.samples.round
    return len(set(rounds)) if rounds else None


def map_label(rows: Sequence[RowView]) -> tuple[str, bool]:
    """The mAP column's second header line, and whether each cell must say its own seed count."""
    seeds = {row.map_seeds for row in rows if row.map_mean is not None}
    if len(seeds) > 1:
        return "mean ± sd over seeds", True
    count = seeds.pop() if seeds else 1
    return ("1 seed" if count <= 1 else f"mean ± sd (n = {count})"), False


def group_view(group: Group, with_charts: bool) -> GroupView:
    rows = [row_view(row) for row in group.rows]
    view = GroupView(index=group.index, setting=group.setting(), why=group.why,
                     baseline=group.baseline.name if group.baseline else None, study_id=group.study_id,
                     alpha=group.alpha, min_effect_pct=100.0 * group.min_effect, mem_label=group.mem_label,
                     has_accuracy=group.has_accuracy, design=design_note(group) if group.baseline else "", rows=rows)
    view.map_label, view.map_seeds_vary = map_label(rows)
    view.method = agreed([row.entry for row in group.rows], METHOD)
    if group.has_pipeline:
        view.notes.append(END_TO_END_NOTE)
    recorded = [(row.name, caveat) for row in group.rows for caveat in row.entry.caveats()]
    view.caveats = caveats.grouped(recorded, len(group.rows))
    if with_charts:
        view.charts = group_charts(group, rows, view.notes.append)
    return view


# ---------------------------------------------------------------- the plots

def verdicts_said(rows: Sequence[RowView]) -> str:
    """Each model's verdict against the baseline, in one sentence."""
    baseline = next((row.name for row in rows if row.is_baseline), None)
    said = [f"{row.name} {row.verdict}" for row in rows if not row.is_baseline]
    if baseline is None or not said:
        return "No model was compared with a baseline."
    if all(row.verdict == paired.UNTESTED for row in rows if not row.is_baseline):
        return (f"The reports come from separate runs, so no latency difference with {baseline} was tested (the "
                "table's Δ is the ratio of medians).")
    return (f"Verdicts against {baseline}: {', '.join(said)}. Only these comparisons are tested: two models that "
            f"are not {baseline} are ordered only through {baseline}'s verdicts, never against each other.")


WHISKERS_NOTE = ("Whiskers: each model's own 95 % CI of its median; two of them may overlap even when a verdict "
                 "decides the pair, since the verdict compares the two models turn by turn (paired) and the "
                 "whiskers do not.")


def front_caption(why: str, rows: Sequence[RowView], on_map: bool) -> str:
    """The Pareto plot's caption: whether the verdicts establish its front (`why` not: from
    `comparison.analysis.front_not_established_why`), which comparisons were tested, and what the whiskers say."""
    if why:
        head = ("Front of the medians (no other model both faster and better on the other axis), not established: "
                f"{why}.")
    else:
        head = ("Pareto front, established by the verdicts: each model on it is decided faster than every model "
                "at least as good on the other axis, and each model off it decided no faster than one on it.")
    seeds = " The mAP axis takes the means over seeds as they are." if on_map else ""
    return f"{head} {verdicts_said(rows)}{seeds} {WHISKERS_NOTE}"


def group_charts(group: Group, rows: list[RowView], note: Callable[[str], None]) -> list[charts.Chart]:
    made: list[charts.Chart] = []
    suffix = "" if group.index == 1 else f" (group {group.index})"
    with_latency = [view for view in rows if view.median_ms is not None]
    if not too_many(len(with_latency), "models", f"plot latency vs GFLOPs{suffix}", note):
        points = [charts.Point(v.name, v.gflops, v.median_ms, v.median_ci, None, v.is_baseline)
                  for v in with_latency if v.gflops is not None]
        if len(points) >= 2:
            why = front_not_established_why(group, lambda row: row.metrics["gflops"], False)
            fig = charts.pareto_figure(points, "GFLOPs (at the benchmark imgsz), lower is better", False, not why)
            made.append(charts.chart(fig, f"Latency vs GFLOPs{suffix}", _scatter_alt("GFLOPs", points, False),
                                     front_caption(why, rows, False)))
        accurate = [v for v in with_latency if v.map_mean is not None]
        if len(accurate) >= 2 and len({v.map_mean for v in accurate}) > 1:
            points = [charts.Point(v.name, v.map_mean, v.median_ms, v.median_ci,
                                   (v.map_mean - v.map_sd, v.map_mean + v.map_sd) if v.map_sd is not None else None,
                                   v.is_baseline) for v in accurate]
            why = front_not_established_why(group, lambda row: row.map50_95_mean, True)
            fig = charts.pareto_figure(points, "mAP50-95, higher is better", True, not why)
            made.append(charts.chart(fig, f"Latency vs mAP{suffix}", _scatter_alt("mAP50-95", points, True),
                                     front_caption(why, rows, True)))
        elif len(accurate) >= 2:
            note(f"plot latency vs mAP{suffix} not drawn: every model has the same mAP50-95 "
                 f"({accurate[0].map_mean:g}), as untrained or barely trained weights do")
        else:
            note(f"plot latency vs mAP{suffix} not drawn: mAP is known for fewer than two models (untrained "
                 "weights, or no results.csv beside the checkpoints)")
        made.extend(sample_charts(group, suffix))
    return made


def _scatter_alt(axis: str, points: Sequence[charts.Point], maximize_x: bool) -> str:
    front = pareto_front([(-p.x if maximize_x else p.x, p.y) for p in points])
    whiskers = ["latency (95 % CI of the median)"] if any(p.y_interval for p in points) else []
    whiskers += ["mAP (± sd over seeds)"] if any(p.x_interval for p in points) else []
    return (f"Scatter plot of median latency in ms against {axis} for {len(points)} models"
            + (f", with whiskers on {' and '.join(whiskers)}" if whiskers else "")
            + f"; on the front of the medians: {', '.join(points[i].name for i in front)}.")


def sample_charts(group: Group, suffix: str) -> list[charts.Chart]:
    """The raw samples' distribution per model, and each model's latency over the study's rounds."""
    made = []
    distributions = [charts.Series(row.name, [], row.entry.samples(), row.is_baseline) for row in group.rows
                     if row.entry.samples().size]
    limit = charts.axis_limit(distributions)
    beyond = limit.caption() if limit is not None else ""
    if distributions:
        fig = charts.distribution_figure(distributions, limit)
        made.append(charts.chart(
            fig, f"Latency distribution{suffix}",
            f"Empirical distribution functions of the raw latency samples of {len(distributions)} models: "
            + "; ".join(f"{s.name} {len(s.y)} samples, median {float(np.median(s.y)):.2f} ms" for s in distributions)
            + ".", "Each line: the share of a model's samples at or below a latency; a line further left is faster, "
                   "a flatter one spreads more." + beyond))
    series, interleaved = [], True
    for row in group.rows:
        samples = row.entry.report.samples
        values = row.entry.samples()
        if not values.size:
            continue
        if samples.round is not None and len(samples.round) == values.size:
            order, which = np.unique(np.asarray(samples.round, dtype=np.int64), return_inverse=True)
            means = np.bincount(which, weights=values) / np.bincount(which)
            series.append(charts.Series(row.name, order + 1, means, row.is_baseline))
        else:
            interleaved = False
            series.append(charts.Series(row.name, np.arange(1, values.size + 1), values, row.is_baseline))
    if series:
        x_label = "round of the study" if interleaved else "sample (in the order taken)"
        fig = charts.rounds_figure(series, x_label, limit)
        caption = ("Each model's latency per round (the mean of its turns in that round): the models took turns in "
                   "every round, so drift of the machine moves every line together and cancels in the paired "
                   "comparisons." if interleaved else
                   "Each model's samples in the order taken. These reports were not measured in one interleaved "
                   "study: drift of the machine during one model's run is not shared by the others.") + beyond
        made.append(charts.chart(fig, f"Latency over the rounds{suffix}" if interleaved else f"Latency over the "
                                 f"run{suffix}", f"Line plot of latency in ms against the {x_label} for "
                                 f"{len(series)} models: {', '.join(s.name for s in series)}.", caption))
    return made


# ---------------------------------------------------------------- backend matrix

def pivot_view(pivot: Pivot) -> PivotView:
    backends = pivot.backends[:MAX_PIVOT_BACKENDS]
    rows = []
    for model in pivot.models[:MAX_PIVOT_MODELS]:
        cells: list[PivotCellView | None] = []
        for backend in backends:
            cell = pivot.cells.get((model, backend))
            if cell is None:
                cells.append(None)
                continue
            verdict = "baseline" if cell.is_baseline else (cell.verdict.verdict if cell.verdict else "-")
            cells.append(PivotCellView(cell.median_ms, verdict, cell.verdict.delta_pct if cell.verdict else None))
        rows.append((model, cells))
    view = PivotView(pivot.baseline, backends, rows, [*left_out(pivot), *pivot.notes])
    if 1 < len(backends) and not too_many(len(rows) * len(backends), "bars", "plot latency by backend",
                                          view.notes.append, "the matrix has its cells"):
        bars = {b: [(cells[k].median_ms if cells[k] else None) for _, cells in rows] for k, b in enumerate(backends)}
        fig = charts.bars_figure([model for model, _ in rows], bars, "median latency (ms)")
        view.chart = charts.chart(fig, "Median latency per model and backend",
                                  f"Bar chart of median latency in ms for {len(rows)} models in "
                                  f"{len(backends)} backends: {', '.join(backends)}.")
    return view


# ---------------------------------------------------------------- provenance

def _one_line(value: Any) -> str | None:
    return None if value is None or value == "" else text.bounded(value, MAX_SHOWN_TEXT_CHARS)


def _backend(entry: Entry) -> str:
    backend = entry.report.settings.backend
    if not isinstance(backend, dict) or not backend.get("format"):
        return "pytorch (eager)"
    parts = [backend.get("format"), backend.get("runtime"), backend.get("version")]
    return " ".join(str(part) for part in parts if part)


def _gpu(entry: Entry) -> str | None:
    gpu = entry.report.gpu if isinstance(entry.report.gpu, dict) else {}
    return gpu.get("name") or entry.report.environment.get("gpu_name")


def _driver(entry: Entry) -> str | None:
    gpu = entry.report.gpu if isinstance(entry.report.gpu, dict) else {}
    return gpu.get("driver")


def _versions(entry: Entry) -> str:
    env = entry.report.environment
    commit = env.get("detbench_commit")
    parts = [("python", env.get("python")), ("torch", env.get("torch")), ("CUDA", env.get("torch_cuda")),
             ("cuDNN", env.get("cudnn_version")), ("ultralytics", env.get("ultralytics")),
             ("numpy", env.get("numpy")),
             ("detbench", f"{env.get('detbench')}" + (f" ({commit})" if commit else "") if env.get("detbench")
              else None)]
    return ", ".join(f"{name} {value}" for name, value in parts if value not in (None, ""))


def _threads(entry: Entry) -> str | None:
    settings = entry.report.settings
    if settings.threads is None:
        return None
    interop = f", {settings.interop_threads} inter-op" if settings.interop_threads is not None else ""
    return f"{settings.threads}{interop}"


def _inputs(entry: Entry) -> str | None:
    inputs = entry.report.inputs
    if not inputs.list_sha256:
        return None
    return (f"list sha256 {inputs.list_sha256}, {inputs.n_images} images"
            + (f", decoded sha256 {inputs.decoded_sha256}" if inputs.decoded_sha256 else ""))


def _cores_and_memory(entry: Entry) -> str | None:
    env = entry.report.environment
    cores, memory = env.cpu_count, env.memory_total_MB
    parts = ([f"{cores} logical CPUs"] if isinstance(cores, int) else []) + (
        [f"{memory / 1024:.1f} GiB RAM"] if isinstance(memory, (int, float)) and memory > 0 else [])
    return ", ".join(parts) or None


PROVENANCE: tuple[tuple[str, Callable[[Entry], Any]], ...] = (
    ("Machine", lambda e: e.report.environment.get("hostname")),
    ("Operating system", lambda e: e.report.environment.get("os")),
    ("CPU", lambda e: e.report.environment.cpu),
    ("CPU cores, memory", _cores_and_memory),
    ("GPU", _gpu),
    ("Driver", _driver),
    ("Device", lambda e: e.report.metadata.device),
    ("Versions", _versions),
    ("Threads", _threads),
    ("Precision", lambda e: e.report.settings.precision),
    ("Backend", _backend),
    ("Image size, batch", lambda e: f"imgsz {e.report.metadata.imgsz}, batch {e.report.metadata.batch}"),
    ("Benchmark list", _inputs),
    ("Study", lambda e: (e.report.study or {}).get("id")),
)


# ---------------------------------------------------------------- method: how the samples were taken

def _samples_taken(entry: Entry) -> str | None:
    report, n = entry.report, entry.samples().size
    if not n:
        return None
    rounds, study = _rounds(entry), report.study or {}
    workers = study.get("workers_per_model")
    if rounds is None:
        return f"{n} timed forwards in one run"
    processes = f" by {workers} worker process{'' if workers == 1 else 'es'}" if isinstance(workers, int) else ""
    return f"{n} timed forwards in {rounds} rounds of the study{processes}, one turn per process per round"


def _warmup(entry: Entry) -> str | None:
    warmup = entry.report.metadata.warmup
    turn = (entry.report.study or {}).get("turn_warmup")
    if turn is None and entry.report.stopping is not None:
        turn = entry.report.stopping.turn_warmup
    if warmup is None:
        return None
    again = f", then {turn} untimed before each timed turn (the re-warm)" if isinstance(turn, int) else ""
    return f"{warmup} untimed forwards before the first timed one{again}"


def _order(entry: Entry) -> str | None:
    seed = (entry.report.study or {}).get("order_seed")
    return None if seed is None else f"the models' turns shuffled in every round with seed {seed} (--order-seed)"


def _images(entry: Entry) -> str | None:
    report = entry.report
    size, seed, batch = report.inputs.n_images, report.metadata.seed, report.metadata.batch or 1
    if not size:
        return None
    population = report.inputs.population_size
    if population and population == size:
        drawn = f"{size} images, every one the data set has"
    elif seed is not None:
        drawn = f"{size} images drawn with seed {seed} (--seed)" + (f" from {population}" if population else "")
    else:
        drawn = f"{size} images"
    workers = report.samples.worker
    turns = (max(Counter(workers).values()) if workers and len(workers) == entry.samples().size
             else entry.samples().size)
    timed = min(size, turns * batch)
    return (f"{drawn}; {timed} of them timed (each timed forward takes the list's next batch of {batch}, from "
            f"its start{', in every worker process' if workers and len(set(workers)) > 1 else ''})")


FORWARD_SCOPE = "model forward only"  # how `bench` names the scope of its latency (`workflows.bench.LATENCY_SCOPE`)


def _covers(entry: Entry) -> str | None:
    report = entry.report
    scope, letterbox = report.latency.scope, report.inputs.letterbox
    if not scope:
        return None
    if not scope.startswith(FORWARD_SCOPE):
        return scope
    fused = "Conv+BN-fused " if report.settings.fused else ""
    shape = f" (letterbox {letterbox})" if letterbox else ""
    stages = ("; --pipeline also timed the whole path apart (letterbox, transfer, forward, NMS): the end-to-end "
              "note under the table" if report.pipeline else "")
    return (f"the forward pass of the {fused}model on a batch of {report.metadata.batch} letterboxed images{shape}, "
            f"already on the device and normalised to [0, 1]; no image decoding, pre- or post-processing or NMS"
            f"{stages}")


METHOD: tuple[tuple[str, Callable[[Entry], Any]], ...] = (
    ("Samples (n)", _samples_taken),
    ("Warm-up", _warmup),
    ("Turn order", _order),
    ("Images", _images),
    ("Latency covers", _covers),
    ("Timer", lambda e: e.report.latency.timer),
)


def agreed(entries: Sequence[Entry], items: Sequence[tuple[str, Callable[[Entry], Any]]]) -> list[Provenance]:
    """Each item once when every report agrees (or only one has it), else each model's value."""
    shown = []
    for name, read in items:
        values = [(entry.name, _one_line(read(entry))) for entry in entries]
        known = [(model, value) for model, value in values if value is not None]
        if not known:
            continue
        distinct = {value for _, value in known}
        if len(distinct) == 1:
            shown.append(Provenance(name, distinct.pop()))
        else:
            shown.append(Provenance(name, None, known))
    return shown


def provenance(entries: Sequence[Entry]) -> list[Provenance]:
    """Each item once when every report agrees (or only one has it), else each model's value."""
    items = agreed(entries, PROVENANCE)
    stamps = sorted(str(entry.report.metadata.timestamp) for entry in entries if entry.report.metadata.timestamp)
    if stamps:
        items.append(Provenance("Measured", _one_line(stamps[0] if stamps[0] == stamps[-1]
                                                      else f"{stamps[0]} to {stamps[-1]}")))
    return items


@dataclass(frozen=True)
class StudyCommand:
    """The study record beside the reports: its id and the command line that ran it."""

    id: str | None
    command: Sequence[str]


def command_lines(entries: Sequence[Entry], study: StudyCommand | None) -> list[str]:
    """Every command line that produced the reports, each once, in the reports' order (at most MAX_COMMANDS): a
    study's reports by the study's command (their own are its workers'), any other report by its own."""
    lines = []
    for entry in entries:
        study_id = (entry.report.study or {}).get("id")
        if study is not None and study.command and (study.id is None or study_id == study.id):
            lines.append(shlex.join(str(part) for part in study.command))
        elif entry.report.command:
            lines.append(shlex.join(str(part) for part in entry.report.command))
    unique = list(dict.fromkeys(text.bounded(line, MAX_SHOWN_TEXT_CHARS) for line in lines))
    if len(unique) > MAX_COMMANDS:
        unique = unique[:MAX_COMMANDS] + [f"… and {len(unique) - MAX_COMMANDS} more command lines"]
    return unique


# ---------------------------------------------------------------- the page

def comparison_content(comparison: Comparison, entries: Sequence[Entry], pivots: Sequence[Pivot], folder: str,
                       study: StudyCommand | None = None, warnings: Sequence[str] = (),
                       writer: str = "report") -> PageContent:
    """The page of a comparison: every group's table, the first MAX_PLOT_GROUPS groups' plots, the matrices.
    `writer`: the detbench command that writes it."""
    page = PageContent(title=f"detbench: {text.bounded(folder)}", folder=text.bounded(folder), generated=now(),
                       writer=writer, warnings=list(warnings))
    if len(comparison.groups) > MAX_PLOT_GROUPS:
        page.warnings.append(f"plots of the first {MAX_PLOT_GROUPS} groups only, of {len(comparison.groups)}")
    for group in comparison.groups:
        page.groups.append(group_view(group, group.index <= MAX_PLOT_GROUPS))
    page.pivots = [pivot_view(pivot) for pivot in pivots if len(pivot.backends) > 1]
    page.provenance = provenance(entries)
    page.commands = command_lines(entries, study)
    return page


def now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


# ---------------------------------------------------------------- a sweep

def sweep_content(out: Path) -> PageContent:
    """The page of a sweep's folder: per device kind, each model's verdict cell by cell and the latency orders."""
    _, cells, problems = load_sweep(out)
    kinds: dict[str, list[Any]] = {}
    for cell in cells:
        kinds.setdefault(cell.device_kind, []).append(cell)
    tables = stability_tables(kinds)
    views = []
    for kind, kind_cells in kinds.items():
        orders, same = latency_orders(kind_cells)
        rows = tables[kind]
        models = len({m for c in kind_cells for m in c.comparisons})
        views.append(SweepKindView(
            kind=kind, cells=[f"{c.study}: {cell_label(c.cell)}" for c in kind_cells], rows=rows,
            too_big="" if rows is not None else f"{models:,} models x {len(kind_cells):,} cells: more verdicts "
                                                "than the page shows; sweep_comparison.csv has every one",
            orders=[" < ".join(order) for order in orders], same_order=same))
    folder = text.bounded(out)
    return PageContent(title=f"detbench sweep: {folder}", folder=folder, generated=now(),
                       sweep=SweepView(folder, len(cells), problems, views))
