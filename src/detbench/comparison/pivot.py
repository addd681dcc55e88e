"""`compare --pivot backend`: a model x backend matrix, each model judged against the baseline in its own backend.

A report's backend is the one it ran in (`settings.backend.format`, else PyTorch eager); its model is its name
without a trailing `@FORMAT` (`ghost@onnx` is ghost in ONNX Runtime). In each cell: the median latency and,
where the model and that backend's baseline ran in one interleaved study (`ablate --models
ghost@onnx,baseline@onnx,...`), the paired verdict, replayed from the samples at the study's own looks (at
the levels its looks used, `detbench.stats.spending`; within a study, each backend's m comparisons get m/M of
alpha, M being all the within-backend comparisons of the study, with Holm inside each backend; so the chance of
any false verdict
among a study's cells stays at most alpha). Elsewhere: the ratio of medians, untested.

Names and backends come from reports: bounded (`text.bounded`) and printed through `text.terminal`; the matrix
shows at most MAX_PIVOT_MODELS rows and MAX_PIVOT_BACKENDS columns, with a note naming what it leaves out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from detbench import text
from detbench.backends.formats import PYTORCH, split_format
from detbench.comparison.analysis import DEFAULT_ALPHA, DEFAULT_MIN_EFFECT, Entry, base_metrics, look_levels
from detbench.comparison.tables import align_columns
from detbench.limits import MAX_PIVOT_BACKENDS, MAX_PIVOT_MODELS
from detbench.report.setting import SettingKey
from detbench.stats import paired


def model_and_backend(entry: Entry) -> tuple[str, str]:
    name = entry.model_name
    backend = entry.report.settings.backend if isinstance(entry.report.settings.backend, dict) else {}
    fmt = text.bounded(backend.get("format") or PYTORCH)
    return split_format(name)[0], fmt


@dataclass
class Cell:
    entry: Entry
    median_ms: float | None
    verdict: paired.PairResult | None = None
    is_baseline: bool = False


@dataclass
class Pivot:
    baseline: str
    models: list[str]
    backends: list[str]
    cells: dict[tuple[str, str], Cell]
    notes: list[str] = field(default_factory=list)


def _study(entry: Entry) -> dict[str, Any] | None:
    """The entry's study (`Entry.study`) when its looks are a record the verdicts can be replayed at."""
    study = entry.study()
    if study is None:
        return None
    looks, planned = study.get("looks_at_rounds"), study.get("planned_looks")
    if not isinstance(looks, list) or not looks or not isinstance(planned, list) or len(looks) > len(planned):
        return None
    if "look_alphas" in study and look_levels(study, 0.05) is None:
        return None
    return study


def planned_comparisons(study: dict[str, Any], baseline: str) -> int:
    """Within-backend comparisons the study's model list allows (its record, not the reports at hand: leaving
    a report out must not loosen the others' alpha)."""
    parsed = [(model, fmt or PYTORCH) for model, fmt in (split_format(str(name)) for name in study.get("models") or [])]
    backends = {backend for model, backend in parsed if model == baseline}
    return sum(1 for model, backend in parsed if backend in backends and model != baseline)


def _study_verdicts(cells: dict[tuple[str, str], Cell], baseline: str, alpha: float | None,
                    min_effect: float | None) -> None:
    """Fill each cell's verdict against the baseline of its backend, where both ran in one study."""
    by_study: dict[str, list[tuple[tuple[str, str], Cell]]] = {}
    for key, cell in cells.items():
        study = _study(cell.entry)
        if study is not None:
            by_study.setdefault(str(study["id"]), []).append((key, cell))
    for members in by_study.values():
        study = _study(members[0][1].entry)
        backends = {backend for (model, backend), _ in members if model == baseline}
        pairs = [(key, cell) for key, cell in members if key[1] in backends and key[0] != baseline]
        family = max(len(pairs), planned_comparisons(study, baseline))
        use_alpha = alpha if alpha is not None else float(study.get("alpha") or DEFAULT_ALPHA)
        use_effect = min_effect if min_effect is not None else float(study.get("min_effect") or DEFAULT_MIN_EFFECT)
        for backend in sorted(backends):
            base_cell = cells[(baseline, backend)]
            mine = [(model, cell) for (model, b), cell in pairs if b == backend]
            if not mine:
                continue
            series = {f"{baseline}@{backend}": base_cell.entry.worker_series()}
            series.update({f"{model}@{backend}": cell.entry.worker_series() for model, cell in mine})
            share = use_alpha * len(mine) / family
            results = paired.replay(series, f"{baseline}@{backend}", share, use_effect, study["looks_at_rounds"],
                                    len(study["planned_looks"]), len(mine), look_levels(study, share),
                                    shared=study.processes_hold_every_model is True)
            for result in results:
                model = split_format(result.model)[0]
                cells[(model, backend)].verdict = result


def build_pivots(entries: Sequence[Entry], baseline: str | None, alpha: float | None = None,
                 min_effect: float | None = None) -> list[Pivot]:
    """One matrix per setting (image size, batch, device, threads, inputs, ...): reports measured under another
    setting are never put in one matrix, exactly as `compare` never puts them in one table."""
    by_setting: dict[SettingKey, list[Entry]] = {}
    for entry in entries:  # the comparison's groups, the backend aside
        by_setting.setdefault(SettingKey.of_report(entry.report).grouped().without("backend"), []).append(entry)
    return [build_pivot(group, baseline, alpha, min_effect) for group in by_setting.values()]


def build_pivot(entries: Sequence[Entry], baseline: str | None, alpha: float | None = None,
                min_effect: float | None = None) -> Pivot:
    """`baseline` may carry an @FORMAT (the main table's baseline); the matrix's baseline is the model. The
    entries must share one setting (`build_pivots`)."""
    baseline = split_format(text.bounded(baseline or "baseline"))[0]
    cells: dict[tuple[str, str], Cell] = {}
    notes: list[str] = []
    for entry in entries:
        key = model_and_backend(entry)
        if key in cells:
            notes.append(f"{entry.path}: a second report of {key[0]} in {key[1]} under this setting; the one "
                         f"from {cells[key].entry.path} is shown")
            continue
        cells[key] = Cell(entry, base_metrics(entry, on_gpu=False)["latency_median_ms"])
    models = sorted({model for model, _ in cells}, key=lambda m: (m != baseline, m))
    backends = sorted({backend for _, backend in cells}, key=lambda b: (b != PYTORCH, b))
    for (model, _), cell in cells.items():
        cell.is_baseline = model == baseline
    _study_verdicts(cells, baseline, alpha, min_effect)
    for (model, backend), cell in cells.items():
        base = cells.get((baseline, backend))
        if cell.is_baseline or cell.verdict is not None or base is None:
            continue
        cell.verdict = paired.untested(model, baseline, cell.median_ms, base.median_ms)
    if baseline not in models:
        notes.append(f"no model named {baseline!r}: no verdicts (pass --baseline)")
    return Pivot(baseline, models, backends, cells, notes)


def _cell_text(cell: Cell | None) -> str:
    if cell is None or cell.median_ms is None:
        return "-"
    shown = f"{cell.median_ms:.2f} ms"
    if cell.is_baseline:
        return f"{shown} (baseline)"
    verdict = cell.verdict
    if verdict is None or verdict.delta_pct is None:
        return shown
    return f"{shown} ({verdict.delta_pct:+.1f} % {verdict.verdict})"


def left_out(pivot: Pivot) -> list[str]:
    """Notes for the rows and columns beyond the matrix's bounds (MAX_PIVOT_MODELS, MAX_PIVOT_BACKENDS)."""
    notes = []
    for count, bound, what in ((len(pivot.models), MAX_PIVOT_MODELS, "models"),
                               (len(pivot.backends), MAX_PIVOT_BACKENDS, "backends")):
        if count > bound:
            notes.append(f"{count - bound} more {what} not shown: a matrix shows at most {bound} (baseline and "
                         f"PyTorch first); compare fewer reports at a time to see them")
    return notes


def pivot_lines(pivot: Pivot) -> list[str]:
    """The matrix for the console: median latency, and the verdict against the baseline of the same backend."""
    models, backends = pivot.models[:MAX_PIVOT_MODELS], pivot.backends[:MAX_PIVOT_BACKENDS]
    header = ["Model", *(text.terminal(backend) for backend in backends)]
    rows = [[text.terminal(model), *(_cell_text(pivot.cells.get((model, b))) for b in backends)] for model in models]
    lines = ["Median latency per model and backend; each model against "
             f"{text.terminal(pivot.baseline)} in the same backend:", *align_columns(header, rows)]
    lines.append("Verdicts where the model and that backend's baseline ran in one interleaved study (alpha shared "
                 "over every comparison of the matrix within that study); 'untested' elsewhere (ratio of medians).")
    lines += [f"note: {text.terminal(note)}" for note in [*left_out(pivot), *pivot.notes]]
    return lines
