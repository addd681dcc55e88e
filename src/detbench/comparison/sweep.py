"""`detbench compare --sweep OUT`: a sweep's studies read back, one ablation table per device kind and setting, and
a ranking-stability summary.

Device kinds are those the reports record (the GPU's name, else the CPU's model), so studies that ran on
different hardware never share a table, whatever the sweep file called their device kind. Within a device
kind, each model's verdict against the baseline is listed cell by cell (each from its own study, at that
study's alpha), and summed up: "holds" when every cell gives the same decided verdict, "flips" when it is
faster in one cell and slower in another, "mixed" otherwise (equivalent or undecided somewhere). The latency
order of the models (by median) is shown per cell and whether it is the same in every cell; only the verdicts
are tested differences, so a change of order between models no verdict separates may be noise.
Written beside the index: sweep_comparison.csv, sweep_comparison.md and sweep_latency.png (one panel per
device kind: each model's median latency in each cell).

The index, the study records and the reports may be hostile; reading them is bounded. sweep.json is read by the
sweep's own reader (`sweep.index.load_index`) and each study.json by `report.study_record`: JSON of at most
MAX_REPORT_BYTES, MAX_RECORD_CONTAINERS lists and objects and as many values as a report (checked before they
are parsed); an index of more than MAX_SWEEP_STUDIES studies (more than a sweep plans) is refused, a study record
listing more than
MAX_STUDY_MODELS models is not compared, and at most MAX_SWEEP_REPORTS model results are read in all (the studies
beyond are named as not compared). Each file is read once, however many names, studies or links lead to it.
Only the study folder names and model names detbench makes are followed (no path from the index is). Text from
the files is bounded (`text.bounded`), printed through `text.terminal` (MAX_TERMINAL_BYTES in all) and written
through the CSV and Markdown neutralisers; the ranking-stability tables hold at most MAX_TABLE_CELLS verdicts.
"""

from __future__ import annotations

import csv
import io
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detbench import text
from detbench.comparison.tables import write_table
from detbench.errors import DetbenchError
from detbench.files.out_tree import folder_below
from detbench.files.safe_io import regular_file_status
from detbench.limits import (
    MAX_PLOT_INCHES,
    MAX_PLOT_ITEMS,
    MAX_PLOT_PANELS,
    MAX_SHOWN_TEXT_CHARS,
    MAX_STUDY_MODELS,
    MAX_SWEEP_REPORTS,
    MAX_TABLE_CELLS,
    MAX_TERMINAL_BYTES,
)
from detbench.names import check_model_name
from detbench.report.schema import load_report
from detbench.report.study_record import read_study_record
from detbench.sweep.index import INDEX_NAME, load_index
from detbench.sweep.spec import AXES
from detbench.text import Echo

AXIS_ORDER = tuple(AXES)
SAFE_FOLDER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}")
VERDICTS = {"faster", "slower", "equivalent", "undecided"}
MAX_PLOT_CELLS = MAX_PLOT_ITEMS  # per panel, and models per panel; beyond, no plot, with a note (the CSV has all)
MAX_SHOWN_PERCENT = 1e9  # a delta or CI bound beyond this is not a measurement: shown as '-'
TERMINAL_NOTE = (f"... the rest is not printed: more than {MAX_TERMINAL_BYTES // 2**20} MiB of text; "
                 "sweep_comparison.csv and .md have every result")
CSV_COLUMNS = ["device_kind", "study", "imgsz", "batch", "precision", "format", "threads", "model", "median_ms",
               "delta_pct", "ci_low_pct", "ci_high_pct", "verdict", "node"]


@dataclass
class CellResult:
    study: str
    cell: dict[str, Any]
    device_kind: str  # as the reports record it
    baseline: str
    medians: dict[str, float] = field(default_factory=dict)
    comparisons: dict[str, dict[str, Any]] = field(default_factory=dict)
    node: str | None = None


def device_kind_of(report: Any) -> str:
    gpu = report.gpu or {}
    if isinstance(gpu, dict) and gpu.get("name"):
        return text.bounded(gpu["name"])
    environment = report.environment or {}
    if environment.get("gpu_name") and str(report.metadata.device).startswith("cuda"):
        return text.bounded(environment["gpu_name"])
    return f"cpu: {text.bounded(environment.get('cpu', 'unknown'))}"


@dataclass
class ComparedStudy:
    """What compare uses of a study.json: its id, baseline, model names (each once) and cleaned comparisons."""

    id: Any
    baseline: str
    models: list[str]
    comparisons: dict[str, dict[str, Any]]


def _model_name(model: Any, source: str) -> str:
    """A model of a study record (a name, or an object with one) as a checked report name."""
    name = model.get("name") if isinstance(model, dict) else model
    if not isinstance(name, str):
        raise ValueError(f"{source}: a model is {type(name).__name__}, not a name")
    return check_model_name(name, source, "run the study again")


def compared_study(data: Any, source: str) -> ComparedStudy:
    """The parts of a study.json (an object: `read_study_record`) compare uses; ValueError or DetbenchError when
    they are not what a study writes."""
    models = data.get("models")
    if not isinstance(models, list):
        raise ValueError("its study.json lists no models")
    if len(models) > MAX_STUDY_MODELS:
        raise ValueError(f"its study.json lists {len(models):,} models, more than a study records "
                         f"({MAX_STUDY_MODELS:,})")
    names = list(dict.fromkeys(_model_name(model, source) for model in models))
    listed = data.get("comparisons")
    comparisons = {}
    for comparison in listed if isinstance(listed, list) else []:
        if isinstance(comparison, dict):
            cleaned = _clean(comparison)
            comparisons.setdefault(cleaned["model"], cleaned)
    return ComparedStudy(data.get("id"), text.bounded(data.get("baseline")), names, comparisons)


class SweepReader:
    """Reads a sweep's study records and reports: each file once (by device and inode, so that names, studies or
    links leading to one file cost one read), at most MAX_SWEEP_REPORTS model results in all."""

    def __init__(self) -> None:
        self.records: dict[tuple[int, ...], ComparedStudy | str] = {}  # a str: why it cannot be read
        self.results: dict[tuple[int, ...], tuple[float, str] | str] = {}
        self.taken = 0  # model results handed out so far
        self.reads = 0  # files read (study records and reports)

    @staticmethod
    def _identity(path: Path) -> tuple[int, ...] | None:
        info = regular_file_status(path)
        return None if info is None else (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)

    def _once(self, cache: dict[tuple[int, ...], Any], path: Path, read: Callable[[Path], Any]) -> Any:
        """`read(path)`, or what it gave (or the error it raised, as a DetbenchError) for the same file before;
        nothing is cached for a path that is not a regular file (its read fails at once, naming it)."""
        key = self._identity(path)
        if key is None or key not in cache:
            self.reads += 1
            try:
                value = read(path)
            except (DetbenchError, ValueError, TypeError) as exc:
                value = text.bounded(exc, MAX_SHOWN_TEXT_CHARS)
            if key is not None:
                cache[key] = value
        else:
            value = cache[key]
        if isinstance(value, str):
            raise DetbenchError(value)
        return value

    def record(self, folder: Path) -> ComparedStudy:
        """The study record in `folder` (study.json)."""
        return self._once(self.records, folder / "study.json",
                          lambda p: compared_study(read_study_record(p), str(p)))

    def result(self, path: Path) -> tuple[float, str]:
        """A report's median latency and device kind."""
        def read(p: Path) -> tuple[float, str]:
            report = load_report(p)
            return float(report.latency.median_ms), device_kind_of(report)

        return self._once(self.results, path, read)

    def take(self, count: int) -> bool:
        """Whether `count` more model results fit in MAX_SWEEP_REPORTS (they are then counted)."""
        if self.taken + count > MAX_SWEEP_REPORTS:
            return False
        self.taken += count
        return True


def load_sweep(out: Path, reader: SweepReader | None = None) -> tuple[dict[str, Any], list[CellResult], list[str]]:
    """The index, the finished studies' results, and a line for each study that is not there or not ok."""
    index = read_index(out)
    reader = reader or SweepReader()
    cells, problems = [], []
    for name, entry in index["studies"].items():
        if not isinstance(entry, dict) or entry.get("status") == "invalid":  # planned, never runnable: not a failure
            continue
        try:
            cells.append(load_study(out, name, entry, reader))
        except (DetbenchError, ValueError, TypeError) as exc:
            problems.append(f"{text.bounded(name)}: {text.bounded(exc, MAX_SHOWN_TEXT_CHARS)}")
    return index, cells, problems


def read_index(out: Path) -> dict[str, Any]:
    """OUT/sweep.json, read by the sweep's own reader (`sweep.index.load_index`); one line if there is none."""
    shown = text.terminal(text.bounded(out))
    index = load_index(out / INDEX_NAME, f"--sweep {shown}: {INDEX_NAME}", "pass the --out folder of a detbench sweep")
    if index is None:
        raise DetbenchError(f"--sweep {shown}: no {INDEX_NAME} there; pass the --out folder of a detbench sweep")
    return index


def load_study(out: Path, name: str, entry: dict[str, Any], reader: SweepReader) -> CellResult:
    """One study of the index, read; ValueError or DetbenchError (the problem line) when it has no results."""
    if entry.get("status") != "ok":
        reason = entry.get("reason")
        raise ValueError(f"{text.bounded(entry.get('status'))}"
                         + (f" ({text.bounded(reason, MAX_SHOWN_TEXT_CHARS)})" if reason else ""))
    if not SAFE_FOLDER.fullmatch(name):
        raise ValueError("not a study folder name")
    folder = out / "studies" / name
    try:
        folder_below(out, "studies", name, create=False, flag="--sweep")  # what a sweep wrote: no link on the way
        record = reader.record(folder)
        if record.id != entry.get("study_id"):
            raise ValueError("its study.json is not the one the sweep recorded")
    except (DetbenchError, ValueError, TypeError) as exc:
        raise ValueError(f"its results are unreadable ({text.bounded(exc, MAX_SHOWN_TEXT_CHARS)})") from None
    if not reader.take(len(record.models)):
        raise ValueError(f"not read: the studies before it hold {reader.taken:,} model results, the most compare "
                         f"--sweep reads ({MAX_SWEEP_REPORTS:,}); compare a smaller sweep")
    result = CellResult(name, _cell(entry.get("cell")), "", record.baseline, node=_node(entry.get("node")))
    try:
        for model in record.models:
            result.medians[model], kind = reader.result(folder / f"{model}.json")
            result.device_kind = result.device_kind or kind
    except (DetbenchError, ValueError, TypeError) as exc:
        raise ValueError(f"its results are unreadable ({text.bounded(exc, MAX_SHOWN_TEXT_CHARS)})") from None
    result.comparisons = {model: record.comparisons[model] for model in result.medians if model in record.comparisons}
    return result


def _value(value: Any) -> Any:
    """A cell's axis value as shown: a number, a flag or None as it is, anything else as bounded text."""
    if value is None or isinstance(value, (bool, float)) or (isinstance(value, int) and abs(value) < 10**15):
        return value
    return text.bounded(value)


def _cell(cell: Any) -> dict[str, Any]:
    """The settings of a study's cell, as the index records them (the axes compare shows)."""
    return {axis: _value(cell[axis]) for axis in AXIS_ORDER if axis in cell} if isinstance(cell, dict) else {}


def _node(node: Any) -> str | None:
    hostname = node.get("hostname") if isinstance(node, dict) else None
    return None if hostname is None else text.bounded(hostname)


def _number(value: Any) -> float | None:
    """A percent from a study record, or None (not a number, not finite, or beyond MAX_SHOWN_PERCENT)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and abs(number) <= MAX_SHOWN_PERCENT else None


def _clean(comparison: dict[str, Any]) -> dict[str, Any]:
    """A study's comparison with only what is shown, numbers as numbers (a tampered one shows '-')."""
    ci = comparison.get("ci_pct")
    ci = [_number(v) for v in ci[:2]] if isinstance(ci, list) and len(ci) >= 2 else [None, None]
    verdict = comparison.get("verdict")
    return {"model": text.bounded(comparison.get("model")), "delta_pct": _number(comparison.get("delta_pct")),
            "ci_pct": ci, "verdict": verdict if isinstance(verdict, str) and verdict in VERDICTS else "?"}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def cell_label(cell: dict[str, Any]) -> str:
    return ", ".join(f"{axis} {cell[axis]}" for axis in AXIS_ORDER if axis in cell and axis != "device_kind") \
        or "default settings"


def _verdict_text(comparison: dict[str, Any] | None) -> str:
    if not comparison:
        return "-"
    delta = comparison.get("delta_pct")
    return f"{comparison['verdict']} {delta:+.1f} %" if delta is not None else comparison["verdict"]


def stability(cells: list[CellResult]) -> list[dict[str, Any]]:
    """Per model (baseline aside): its verdict in each cell and the summary across cells."""
    models = sorted({m for c in cells for m in c.comparisons})
    rows = []
    for model in models:
        verdicts = [(c.comparisons.get(model) or {}).get("verdict") for c in cells]
        decided = {v for v in verdicts if v in {"faster", "slower"}}
        if decided == {"faster", "slower"}:
            summary = "flips: faster in some cells, slower in others"
        elif len(set(verdicts)) == 1 and verdicts[0] in {"faster", "slower", "equivalent"}:
            summary = f"holds: {verdicts[0]} in every cell"
        else:
            summary = "mixed: " + ", ".join(f"{v or 'missing'} in {verdicts.count(v)}" for v in dict.fromkeys(verdicts))
        rows.append({"model": model, "verdicts": [_verdict_text(c.comparisons.get(model)) for c in cells],
                     "summary": summary})
    return rows


def latency_orders(cells: list[CellResult]) -> tuple[list[list[str]], bool]:
    orders = [sorted(c.medians, key=c.medians.get) for c in cells]
    return orders, all(order == orders[0] for order in orders)


def _by_kind(cells: list[CellResult]) -> dict[str, list[CellResult]]:
    kinds: dict[str, list[CellResult]] = {}
    for cell in cells:
        kinds.setdefault(cell.device_kind, []).append(cell)
    return kinds


def stability_tables(kinds: dict[str, list[CellResult]]) -> dict[str, list[dict[str, Any]] | None]:
    """Each device kind's ranking-stability rows (`stability`), or None for a kind whose table would take the
    verdicts shown past MAX_TABLE_CELLS (models x cells, all device kinds together)."""
    left, tables = MAX_TABLE_CELLS, {}
    for kind, cells in kinds.items():
        size = len({m for c in cells for m in c.comparisons}) * len(cells)
        tables[kind] = stability(cells) if size <= left else None
        left -= size if size <= left else 0
    return tables


def _too_big(kind_cells: list[CellResult]) -> str:
    models = len({m for c in kind_cells for m in c.comparisons})
    return (f"not shown: {models:,} models x {len(kind_cells):,} cells, more than the {MAX_TABLE_CELLS:,} verdicts "
            "the stability tables show; sweep_comparison.csv has every verdict")


def _csv(cells: list[CellResult]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for cell in cells:
        for model, median in cell.medians.items():
            comparison = cell.comparisons.get(model) or {}
            ci = comparison.get("ci_pct") or [None, None]
            row = [cell.device_kind, cell.study, *(cell.cell.get(a) for a in ("imgsz", "batch", "precision", "format",
                                                                               "threads")),
                   model, round(median, 4), comparison.get("delta_pct"), ci[0], ci[1],
                   "baseline" if model == cell.baseline else comparison.get("verdict"), cell.node]
            writer.writerow([text.csv_cell(v) for v in row])
    return buffer.getvalue()


def _markdown(kinds: dict[str, list[CellResult]], tables: dict[str, list[dict[str, Any]] | None]) -> str:
    lines = ["# Sweep: ranking stability", ""]
    for kind, cells in kinds.items():
        lines += [f"## {text.markdown(kind)}", ""]
        rows = tables[kind]
        if rows is None:
            lines += [text.markdown(f"Ranking stability {_too_big(cells)}"), ""]
        else:
            lines += ["| model | " + " | ".join(text.markdown(c.study) for c in cells) + " | across cells |",
                      "|---" * (len(cells) + 2) + "|"]
            lines += [f"| {text.markdown(row['model'])} | " + " | ".join(text.markdown(v) for v in row["verdicts"])
                      + f" | {text.markdown(row['summary'])} |" for row in rows]
        orders, same = latency_orders(cells)
        lines += ["", f"Latency order {'the same' if same else 'not the same'} in every cell: "
                  + "; ".join(text.markdown(" < ".join(o)) for o in orders), ""]
    return "\n".join(lines)


def plot_problem(kinds: dict[str, list[CellResult]]) -> str | None:
    """Why the sweep plot is not drawn (more panels, cells or models than one plot shows), or None."""
    cells = max(len(c) for c in kinds.values())
    models = max(len({m for c in kind_cells for m in c.medians}) for kind_cells in kinds.values())
    if len(kinds) <= MAX_PLOT_PANELS and cells <= MAX_PLOT_CELLS and models <= MAX_PLOT_CELLS:
        return None
    return (f"no plot: {len(kinds)} device kinds, {cells} cells and {models} models in one, more than the "
            f"{MAX_PLOT_PANELS} panels and {MAX_PLOT_CELLS} cells or models a plot shows; the CSV has every cell")


def _plot(kinds: dict[str, list[CellResult]], path: Path) -> None:
    from detbench.comparison.plots import figure, label, save  # imported here: matplotlib, only for a plot

    width = min(max(6.0, 0.6 * max(len(c) for c in kinds.values()) + 3), MAX_PLOT_INCHES)
    fig, axes = figure((width, min(4.2 * len(kinds), MAX_PLOT_INCHES)), len(kinds))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for ax, (kind, cells) in zip(axes if len(kinds) > 1 else [axes], kinds.items(), strict=True):
            models = list(dict.fromkeys(m for c in cells for m in c.medians))
            for model in models:
                xs = [i for i, c in enumerate(cells) if model in c.medians]
                ax.plot(xs, [cells[i].medians[model] for i in xs], marker="o", label=label(model))
            ax.set_xticks(range(len(cells)))
            ax.set_xticklabels([label(c.study) for c in cells], rotation=20, ha="right", fontsize=8)
            ax.set_ylabel("median latency (ms)")
            ax.set_title(label(kind), fontsize=10)
            ax.legend(fontsize=8)
        fig.tight_layout()
    save(fig, path)


def _print_kind(say: Echo, kind: str, kind_cells: list[CellResult], rows: list[dict[str, Any]] | None) -> None:
    """One device kind: each cell's table, the ranking stability and the latency orders."""
    say("")
    say(f"== {kind} ({len(kind_cells)} studies) ==")
    for cell in kind_cells:
        say(f"-- {cell.study}: {cell_label(cell.cell)} (baseline {cell.baseline}"
            + (f", on {cell.node}" if cell.node else "") + ") --")
        say(f"{'model':<24}{'median ms':>12}  {'Δ vs baseline [CI]':<28}verdict")
        for model, median in cell.medians.items():
            comparison = cell.comparisons.get(model)
            if model == cell.baseline or not comparison:
                say(f"{model:<24}{median:>12.3f}  {'-':<28}{'baseline' if model == cell.baseline else '-'}")
                continue
            ci = comparison["ci_pct"]
            delta = f"{_pct(comparison['delta_pct'])} % [{_pct(ci[0])}, {_pct(ci[1])}]"
            say(f"{model:<24}{median:>12.3f}  {delta:<28}{comparison.get('verdict')}")
    say("")
    if rows is None:
        say(f"Ranking stability ({kind}) {_too_big(kind_cells)}")
    else:
        say(f"Ranking stability ({kind}): each model's verdict against the baseline, cell by cell")
        for row in rows:
            say(f"  {row['model']:<22} " + " | ".join(row["verdicts"]) + f"  ->  {row['summary']}")
    orders, same = latency_orders(kind_cells)
    say(f"  latency order {'the same in every cell' if same else 'changes between cells'}: "
        + "; ".join(" < ".join(order) for order in orders))


def _write_plot(kinds: dict[str, list[CellResult]], path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DetbenchError(f"--plots {text.terminal(path.parent)}: cannot make the folder ({exc.strerror or exc}); "
                            "choose another folder") from None
    _plot(kinds, path)


def run_sweep_compare(out: str | Path, echo: Echo = print, plots_dir: str | None = None) -> int:
    """Print the sweep's tables and stability summary, write its CSV, Markdown and plot; 1 if a study is not ok."""
    safe_echo = text.terminal_echo(echo)
    say = text.bounded_echo(echo, MAX_TERMINAL_BYTES, TERMINAL_NOTE)
    out = Path(out)
    index, cells, problems = load_sweep(out)
    kinds = _by_kind(cells)
    tables = stability_tables(kinds)
    say(f"Sweep {out}: {len(cells)} studies with results, {len(problems)} without")
    for problem in problems:
        say(f"  not compared: {problem}")
    for kind, kind_cells in kinds.items():
        _print_kind(say, kind, kind_cells, tables[kind])
    if cells:
        written = []
        for path, content in ((out / "sweep_comparison.csv", _csv(cells)),
                              (out / "sweep_comparison.md", _markdown(kinds, tables) + "\n")):
            write_table(path, content, fix="make the sweep folder writable")
            written.append(str(path))
        problem = plot_problem(kinds)
        if problem:
            safe_echo(f"note: {problem}")
        else:
            plot_path = Path(plots_dir or out) / "sweep_latency.png"
            _write_plot(kinds, plot_path)
            written.append(str(plot_path))
        safe_echo("")
        safe_echo(f"wrote {', '.join(written)}")
    invalid = sum(isinstance(e, dict) and e.get("status") == "invalid" for e in index["studies"].values())
    if invalid:
        safe_echo(f"({invalid} invalid cell(s) of the plan were never run: see sweep.json)")
    return 1 if problems else 0
