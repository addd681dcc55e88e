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
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detbench import text
from detbench.errors import DetbenchError
from detbench.files.atomic import write_text_atomic
from detbench.files.safe_io import read_text_file
from detbench.limits import MAX_REPORT_BYTES
from detbench.names import check_model_name
from detbench.report.schema import load_report
from detbench.text import Echo, terminal_echo

AXIS_ORDER = ("imgsz", "batch", "precision", "format", "threads", "device_kind")
SAFE_FOLDER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}")
VERDICTS = {"faster", "slower", "equivalent", "undecided"}
MAX_PLOT_CELLS = 60  # per panel; beyond, the plot is skipped with a note (the CSV has every cell)
MAX_PLOT_PANELS = 8
MAX_PLOT_INCHES = 30.0  # at 120 dpi: at most 3600 x 3600 pixels
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


def _read_json(path: Path) -> Any:
    return json.loads(read_text_file(path, str(path), MAX_REPORT_BYTES))


def device_kind_of(report: Any) -> str:
    gpu = report.gpu or {}
    if isinstance(gpu, dict) and gpu.get("name"):
        return str(gpu["name"])
    environment = report.environment or {}
    if environment.get("gpu_name") and str(report.metadata.device).startswith("cuda"):
        return str(environment["gpu_name"])
    return f"cpu: {environment.get('cpu', 'unknown')}"


def load_sweep(out: Path) -> tuple[dict[str, Any], list[CellResult], list[str]]:
    """The index, the finished studies' results, and a line for each study that is not there or not ok."""
    index_path = out / "sweep.json"
    if not index_path.is_file():
        raise DetbenchError(f"--sweep {text.terminal(out)}: no sweep.json there; pass the --out folder of a "
                            f"detbench sweep")
    try:
        index = _read_json(index_path)
    except ValueError as exc:
        raise DetbenchError(f"--sweep {text.terminal(out)}: sweep.json is not valid JSON ({exc}); run the sweep "
                            f"again") from None
    if not isinstance(index, dict) or not isinstance(index.get("studies"), dict):
        raise DetbenchError(f"--sweep {text.terminal(out)}: sweep.json is not a detbench sweep index")
    cells, problems = [], []
    for name, entry in index["studies"].items():
        if not isinstance(entry, dict) or entry.get("status") == "invalid":  # planned, never runnable: not a failure
            continue
        if entry.get("status") != "ok":
            problems.append(f"{name}: {entry.get('status')}" + (f" ({entry['reason']})" if entry.get("reason") else ""))
            continue
        if not SAFE_FOLDER.fullmatch(str(name)):
            problems.append(f"{text.terminal(str(name)[:80])}: not a study folder name")
            continue
        folder = out / "studies" / str(name)
        try:
            study = _read_json(folder / "study.json")
            if not isinstance(study, dict) or study.get("id") != entry.get("study_id"):
                raise ValueError("its study.json is not the one the sweep recorded")
            result = CellResult(str(name), dict(entry.get("cell") or {}), "", str(study.get("baseline")),
                                node=(entry.get("node") or {}).get("hostname"))
            for model in study.get("models") or []:
                model_name = check_model_name(str(model if isinstance(model, str) else (model or {}).get("name")),
                                              f"{name}: study.json")
                report = load_report(folder / f"{model_name}.json")
                result.medians[str(model_name)] = float(report.latency.median_ms)
                result.device_kind = result.device_kind or device_kind_of(report)
            result.comparisons = {str(c.get("model")): _clean(c) for c in study.get("comparisons") or []
                                  if isinstance(c, dict)}
        except (DetbenchError, ValueError, TypeError, AttributeError) as exc:
            problems.append(f"{name}: its results are unreadable ({text.terminal(exc)})")
            continue
        cells.append(result)
    return index, cells, problems


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _clean(comparison: dict[str, Any]) -> dict[str, Any]:
    """A study's comparison with only what is shown, numbers as numbers (a tampered one shows '-')."""
    ci = comparison.get("ci_pct")
    ci = [_number(v) for v in ci[:2]] if isinstance(ci, list) and len(ci) >= 2 else [None, None]
    verdict = comparison.get("verdict")
    return {"model": str(comparison.get("model")), "delta_pct": _number(comparison.get("delta_pct")), "ci_pct": ci,
            "verdict": verdict if verdict in VERDICTS else "?"}


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


def _markdown(kinds: dict[str, list[CellResult]]) -> str:
    lines = ["# Sweep: ranking stability", ""]
    for kind, cells in kinds.items():
        lines += [f"## {text.markdown(kind)}", "",
                  "| model | " + " | ".join(text.markdown(c.study) for c in cells) + " | across cells |",
                  "|---" * (len(cells) + 2) + "|"]
        for row in stability(cells):
            lines.append(f"| {text.markdown(row['model'])} | " + " | ".join(text.markdown(v) for v in row["verdicts"])
                         + f" | {text.markdown(row['summary'])} |")
        orders, same = latency_orders(cells)
        lines += ["", f"Latency order {'the same' if same else 'not the same'} in every cell: "
                  + "; ".join(text.markdown(" < ".join(o)) for o in orders), ""]
    return "\n".join(lines)


def _plot(kinds: dict[str, list[CellResult]], path: Path) -> None:
    import warnings

    from detbench.comparison.plots import figure, save

    width = min(max(6.0, 0.6 * max(len(c) for c in kinds.values()) + 3), MAX_PLOT_INCHES)
    fig, axes = figure((width, min(4.2 * len(kinds), MAX_PLOT_INCHES)), len(kinds))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for ax, (kind, cells) in zip(axes if len(kinds) > 1 else [axes], kinds.items(), strict=True):
            models = list(dict.fromkeys(m for c in cells for m in c.medians))
            for model in models:
                xs = [i for i, c in enumerate(cells) if model in c.medians]
                ax.plot(xs, [cells[i].medians[model] for i in xs], marker="o", label=text.plot_label(model))
            ax.set_xticks(range(len(cells)))
            ax.set_xticklabels([text.plot_label(c.study) for c in cells], rotation=20, ha="right", fontsize=8)
            ax.set_ylabel("median latency (ms)")
            ax.set_title(text.plot_label(kind), fontsize=10)
            ax.legend(fontsize=8)
        fig.tight_layout()
    save(fig, path)


def run_sweep_compare(out: str | Path, echo: Echo = print, plots_dir: str | None = None) -> int:
    """Print the sweep's tables and stability summary, write its CSV, Markdown and plot; 1 if a study is not ok."""
    echo = terminal_echo(echo)
    out = Path(out)
    index, cells, problems = load_sweep(out)
    kinds = _by_kind(cells)
    echo(f"Sweep {out}: {len(cells)} studies with results, {len(problems)} without")
    for problem in problems:
        echo(f"  not compared: {problem}")
    for kind, kind_cells in kinds.items():
        echo("")
        echo(f"== {kind} ({len(kind_cells)} studies) ==")
        for cell in kind_cells:
            echo(f"-- {cell.study}: {cell_label(cell.cell)} (baseline {cell.baseline}"
                 + (f", on {cell.node}" if cell.node else "") + ") --")
            echo(f"{'model':<24}{'median ms':>12}  {'Δ vs baseline [CI]':<28}verdict")
            for model, median in cell.medians.items():
                comparison = cell.comparisons.get(model)
                if model == cell.baseline or not comparison:
                    echo(f"{model:<24}{median:>12.3f}  {'-':<28}{'baseline' if model == cell.baseline else '-'}")
                    continue
                ci = comparison["ci_pct"]
                delta = f"{_pct(comparison['delta_pct'])} % [{_pct(ci[0])}, {_pct(ci[1])}]"
                echo(f"{model:<24}{median:>12.3f}  {delta:<28}{comparison.get('verdict')}")
        echo("")
        echo(f"Ranking stability ({kind}): each model's verdict against the baseline, cell by cell")
        for row in stability(kind_cells):
            echo(f"  {row['model']:<22} " + " | ".join(row["verdicts"]) + f"  ->  {row['summary']}")
        orders, same = latency_orders(kind_cells)
        echo(f"  latency order {'the same in every cell' if same else 'changes between cells'}: "
             + "; ".join(" < ".join(order) for order in orders))
    if cells:
        write_text_atomic(out / "sweep_comparison.csv", _csv(cells))
        write_text_atomic(out / "sweep_comparison.md", _markdown(kinds) + "\n")
        written = [str(out / "sweep_comparison.csv"), str(out / "sweep_comparison.md")]
        if len(kinds) > MAX_PLOT_PANELS or max(len(c) for c in kinds.values()) > MAX_PLOT_CELLS:
            echo(f"note: no plot: more than {MAX_PLOT_PANELS} device kinds or {MAX_PLOT_CELLS} cells in one; the "
                 f"CSV has every cell")
        else:
            plot_path = Path(plots_dir or out) / "sweep_latency.png"
            plot_path.parent.mkdir(parents=True, exist_ok=True)
            _plot(kinds, plot_path)
            written.append(str(plot_path))
        echo("")
        echo(f"wrote {', '.join(written)}")
    invalid = sum(isinstance(e, dict) and e.get("status") == "invalid" for e in index["studies"].values())
    if invalid:
        echo(f"({invalid} invalid cell(s) of the plan were never run: see sweep.json)")
    return 1 if problems else 0
