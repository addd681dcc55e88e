"""Figures of a comparison (matplotlib figures drawn by the Agg canvas, PNG; pyplot is never imported).

Per group of comparable reports:
- latency_vs_gflops.png: median latency against GFLOPs, whiskers on each
  median's 95 % CI (the report's, as the page shows it), the Pareto front (no
  other model is both faster and cheaper) as a step line: red and dashed when
  the verdicts establish it (`analysis.front_not_established_why`), grey,
  dotted and named "not established" otherwise;
- latency_vs_map.png (only when mAP50-95 is known for two or more models and
  not the same for all of them, as it is for untrained weights; a skipped plot
  is named in a note): median latency against mAP50-95, Pareto front = faster
  and more accurate;
- latency_bars.png: median latency per model, error bars from the 25th to the
  75th percentile of the raw samples (IQR: the spread, not a CI), the baseline
  highlighted.
With `compare --pivot backend`, latency_by_backend.png: median latency per
model, one bar per backend, each labelled with its verdict against the
baseline in the same backend.
Groups after the first get a `_group{N}` suffix. Names and settings come
from reports: they are drawn through `text.plot_label` (no mathtext, no
control characters), names cut to MAX_PLOT_LABEL_CHARS (`text.bounded`).
Sizes are bounded whatever the reports hold: every figure at most
MAX_PLOT_INCHES wide and high; a plot of more than MAX_PLOT_ITEMS models
(bars or points) is not drawn, and only the first MAX_PLOT_GROUPS groups are
plotted, each with a note.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from detbench import text
from detbench.comparison.analysis import Comparison, Group, front_not_established_why, pareto_front
from detbench.errors import DetbenchError
from detbench.files.atomic import write_atomic
from detbench.limits import MAX_PLOT_GROUPS, MAX_PLOT_INCHES, MAX_PLOT_ITEMS, MAX_PLOT_LABEL_CHARS

FRONT_COLOR = "#d62728"
UNESTABLISHED_FRONT_COLOR = "#888888"
WHISKER_COLOR = "0.45"
POINT_COLOR = "#1f77b4"
BASELINE_COLOR = "#ff7f0e"
Note = Callable[[str], None]  # hears of a plot not drawn


LABEL_SIZE = 9  # points
# (dx, dy, horizontal alignment) in points from the marker, tried in this order
LABEL_SPOTS = ((7, 0, "left"), (7, 10, "left"), (7, -10, "left"), (-7, 0, "right"), (-7, 10, "right"),
               (-7, -10, "right"), (7, 20, "left"), (7, -20, "left"))


def label_spots(anchors_pt: Sequence[tuple[float, float]], names: Sequence[str]) -> list[tuple[int, int, str]]:
    """Greedy label placement: the first spot whose box overlaps no label placed so far."""
    placed: list[tuple[float, float, float, float]] = []
    spots = []
    for (x, y), name in zip(anchors_pt, names, strict=True):
        width, height = 0.62 * LABEL_SIZE * len(name), 1.25 * LABEL_SIZE
        chosen = LABEL_SPOTS[0]
        for spot in LABEL_SPOTS:
            dx, dy, ha = spot
            left = x + dx if ha == "left" else x + dx - width
            box = (left, y + dy - height / 2, left + width, y + dy + height / 2)
            if all(box[2] <= o[0] or box[0] >= o[2] or box[3] <= o[1] or box[1] >= o[3] for o in placed):
                chosen = spot
                break
        dx, dy, ha = chosen
        left = x + dx if ha == "left" else x + dx - width
        placed.append((left, y + dy - height / 2, left + width, y + dy + height / 2))
        spots.append(chosen)
    return spots


def label(value: Any) -> str:
    """A name or value from a report as a plot draws it: at most MAX_PLOT_LABEL_CHARS, no mathtext."""
    return text.plot_label(text.bounded(value, MAX_PLOT_LABEL_CHARS))


def too_many(count: int, what: str, name: str, note: Note, instead: str = "the tables have every row") -> bool:
    """Whether the plot `name` is not drawn (`count` `what` is more than MAX_PLOT_ITEMS in one plot); `note`
    hears why."""
    if count <= MAX_PLOT_ITEMS:
        return False
    note(f"{name} not drawn: {count} {what}, more than the {MAX_PLOT_ITEMS} one plot shows; {instead} (compare "
         "fewer reports at a time for the plot)")
    return True


def figure(figsize: tuple[float, float], rows: int = 1):
    """A figure drawn by the Agg canvas directly (no pyplot, so the caller's matplotlib backend is left alone), and
    its axes: one, or a list of `rows` stacked. Width and height are at most MAX_PLOT_INCHES."""
    # imported here, not at the top: loads matplotlib, which only this path needs
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figsize = (min(figsize[0], MAX_PLOT_INCHES), min(figsize[1], MAX_PLOT_INCHES))
    fig = Figure(figsize=figsize, dpi=120)
    FigureCanvasAgg(fig)
    return fig, (fig.subplots() if rows == 1 else list(fig.subplots(rows, 1)))


def _scatter(group: Group, x_key: str, x_label: str, title: str, path: Path, maximize_x: bool,
             note: Note) -> Path | None:
    rows = [r for r in group.rows if r.metrics[x_key] is not None and r.median_ms is not None]
    if len(rows) < 2 or too_many(len(rows), "models", path.name, note):
        return None
    from matplotlib.lines import Line2D  # imported here, not at the top: matplotlib, only for a plot

    # x: the cost or accuracy axis, y: median latency (lower is better), as the tables' median column
    points = [(r.metrics[x_key], r.median_ms) for r in rows]
    keyed = [(-x if maximize_x else x, y) for x, y in points]
    front = pareto_front(keyed)
    why = front_not_established_why(group, lambda row: row.metrics[x_key], maximize_x)
    fig, ax = figure((7.0, 5.2))
    handles = []
    intervals = [r.median_ci_ms for r in rows]
    for (x, y), interval in zip(points, intervals, strict=True):
        if interval is not None:  # the same 95 % CI of the median as the page's whiskers
            ax.errorbar([x], [y], yerr=[[max(0.0, y - interval[0])], [max(0.0, interval[1] - y)]], fmt="none",
                        ecolor=WHISKER_COLOR, elinewidth=1, capsize=3, zorder=2)
    color, style = (FRONT_COLOR, "--") if not why else (UNESTABLISHED_FRONT_COLOR, ":")
    others = [i for i in range(len(rows)) if i not in front]
    if others:  # a legend entry only for what is drawn
        ax.scatter([points[i][0] for i in others], [points[i][1] for i in others], s=42, color=POINT_COLOR,
                   zorder=3)
        handles.append(Line2D([], [], ls="none", marker="o", color=POINT_COLOR, label="dominated"))
    ax.scatter([points[i][0] for i in front], [points[i][1] for i in front], s=60, color=color, zorder=4)
    order = sorted(front, key=lambda i: points[i][0])
    ax.plot([points[i][0] for i in order], [points[i][1] for i in order], color=color, lw=1.6 if not why else 1.4,
            ls=style, drawstyle="steps-post" if not maximize_x else "steps-pre", zorder=2)
    # the legend's own line (a step line's handle can be a short vertical segment)
    handles.append(Line2D([], [], ls=style, lw=1.6, marker="o", color=color,
                          label="Pareto front (established by the verdicts)" if not why
                          else "front of the medians: not established"))
    if any(interval is not None for interval in intervals):
        handles.append(Line2D([], [], ls="-", lw=1, marker="_", markersize=8, color=WHISKER_COLOR,
                              label="95 % CI of the median"))
    ax.margins(x=0.18, y=0.15)
    ax.set_xlabel(x_label)
    ax.set_ylabel("median latency (ms), lower is better")
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(handles=handles, loc="best", fontsize=8, frameon=True, framealpha=0.9, edgecolor="none",
              handlelength=3)
    footer = ("Whiskers: 95 % CI of each median; overlapping whiskers do not contradict a paired verdict. "
              + ("Front: every relation it rests on is decided by the verdicts." if not why
                 else f"Front not established: {why}."))
    fig.text(0.01, 0.045, _wrapped(text.plot_label(footer), 130), fontsize=7, color="0.25", va="bottom")
    fig.text(0.01, 0.01, text.plot_label(group.setting()), fontsize=7, color="0.35")
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    fig.canvas.draw()  # fixes limits and layout, so data can be mapped to points for label placement
    anchors = ax.transData.transform(points) * 72.0 / fig.dpi
    names = [label(r.name) for r in rows]
    for i, (dx, dy, ha) in enumerate(label_spots([tuple(a) for a in anchors], names)):
        weight = "bold" if rows[i].is_baseline else "normal"
        ax.annotate(names[i], points[i], xytext=(dx, dy), textcoords="offset points", fontsize=LABEL_SIZE,
                    fontweight=weight, va="center", ha=ha, zorder=5,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
    save(fig, path)
    return path


def _wrapped(line: str, width: int) -> str:
    import textwrap  # imported here: only a plot's footer needs it

    return "\n".join(textwrap.wrap(line, width))


def _bars(group: Group, path: Path, note: Note) -> Path | None:
    rows = [r for r in group.rows if r.median_ms is not None]
    if not rows or too_many(len(rows), "models", path.name, note):
        return None
    names = [label(r.name) for r in rows]
    medians = [r.median_ms for r in rows]  # the tables' median column
    low = [max(0.0, m - (r.metrics["latency_q25_ms"] if r.metrics["latency_q25_ms"] is not None else m))
           for m, r in zip(medians, rows, strict=True)]
    high = [max(0.0, (r.metrics["latency_q75_ms"] if r.metrics["latency_q75_ms"] is not None else m) - m)
            for m, r in zip(medians, rows, strict=True)]
    colors = [BASELINE_COLOR if r.is_baseline else POINT_COLOR for r in rows]
    fig, ax = figure((max(5.5, 1.1 * len(rows) + 2.5), 4.6))
    ax.bar(range(len(rows)), medians, color=colors, yerr=[low, high], capsize=4, ecolor="0.2", zorder=3)
    for i, row in enumerate(rows):
        delta = row.latency_delta_pct  # the tables' one latency Δ, with the verdict
        mark = (f"\nΔ {delta:+.1f} % {row.verdict.verdict}".replace("-", "\u2212")
                if row.verdict is not None and delta is not None else "")
        ax.annotate(f"{medians[i]:.2f}{mark}", (i, medians[i] + high[i]), xytext=(0, 3),
                    textcoords="offset points", ha="center", fontsize=8)
    ax.set_xticks(range(len(rows)), names, rotation=20 if len(rows) > 4 else 0, ha="right" if len(rows) > 4
                  else "center")
    ax.set_ylabel("median latency (ms); whiskers: IQR")
    title = "Median latency per model"
    if group.baseline is not None:
        title += (f" (orange: {label(group.baseline.name)}; verdicts "
                  f"{'from the interleaved study' if group.study_id else 'untested: separate runs'})")
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="y", alpha=0.3, zorder=0)
    ax.set_ylim(0, max(m + h for m, h in zip(medians, high, strict=True)) * 1.15)
    fig.text(0.01, 0.045, "Whiskers: interquartile range (25th to 75th percentile) of the raw samples, the spread "
             "of the latency, not a confidence interval.", fontsize=7, color="0.25", va="bottom")
    fig.text(0.01, 0.01, text.plot_label(group.setting()), fontsize=7, color="0.35")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    save(fig, path)
    return path


BACKEND_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")


def backend_bars(pivot: Any, path: Path, note: Note | None = None) -> Path | None:
    """Grouped bars: models along x, one bar per backend, its median latency and verdict on top. Not drawn (None,
    and a line to `note`) for more than MAX_PLOT_ITEMS bars (models x backends)."""
    models, backends = pivot.models, pivot.backends
    if too_many(len(models) * max(1, len(backends)), f"bars ({len(models)} models x {len(backends)} backends)",
                path.name, note or (lambda line: None), "the matrix printed above has its cells"):
        return None
    width = 0.8 / max(len(backends), 1)
    fig, ax = figure((max(6.0, 1.3 * len(models) * max(1, len(backends)) / 2 + 3), 4.8))
    for k, backend in enumerate(backends):
        xs, heights, marks = [], [], []
        for i, model in enumerate(models):
            cell = pivot.cells.get((model, backend))
            if cell is None or cell.median_ms is None:
                continue
            xs.append(i + (k - (len(backends) - 1) / 2) * width)
            heights.append(cell.median_ms)
            marks.append("baseline" if cell.is_baseline else (cell.verdict.verdict if cell.verdict else ""))
        ax.bar(xs, heights, width=width, color=BACKEND_COLORS[k % len(BACKEND_COLORS)],
               label=label(backend), zorder=3)
        for x, height, mark in zip(xs, heights, marks, strict=True):
            ax.annotate(f"{height:.1f}\n{text.plot_label(mark)}", (x, height), xytext=(0, 2),
                        textcoords="offset points", ha="center", fontsize=7)
    ax.set_xticks(range(len(models)), [label(m) for m in models])
    ax.set_ylabel("median latency (ms)")
    ax.set_title(f"Median latency per model and backend (verdicts against {label(pivot.baseline)} "
                 f"in the same backend)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3, zorder=0)
    fig.tight_layout()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        save(fig, path)
    return path


def save(fig, path: Path) -> None:
    """Render the figure in memory, then write it atomically; a write failure is one line naming the file."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    try:
        write_atomic(path, lambda handle: handle.write(buffer.getvalue()))
    except OSError as exc:
        raise DetbenchError(f"{text.terminal(path)}: cannot write the plot ({exc.strerror or exc}); free some "
                            "space or choose another folder with --plots") from exc


def write_plots(comparison: Comparison, folder: str | Path,
                note: Callable[[str], None] | None = None) -> list[Path]:
    """Write the PNGs of every group into `folder`; return the paths written. `note` hears of a plot skipped."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DetbenchError(f"--plots {text.terminal(folder)}: cannot make the folder ({exc.strerror}); choose "
                            "another folder") from exc
    written: list[Path] = []
    note = note or (lambda line: None)
    if len(comparison.groups) > MAX_PLOT_GROUPS:
        note(f"plots of the first {MAX_PLOT_GROUPS} groups only, of {len(comparison.groups)}; the tables have "
             "every group")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # e.g. a glyph a name uses is missing from the font
        for group in comparison.groups[:MAX_PLOT_GROUPS]:
            written.extend(_group_plots(group, folder, note))
    return written


def _group_plots(group: Group, folder: Path, note: Callable[[str], None]) -> list[Path]:
    suffix = "" if group.index == 1 else f"_group{group.index}"
    made = [_scatter(group, "gflops", "GFLOPs (at the benchmark imgsz), lower is better",
                     "Latency vs GFLOPs", folder / f"latency_vs_gflops{suffix}.png", maximize_x=False, note=note)]
    known = [r.metrics["mAP50_95"] for r in group.rows if r.metrics["mAP50_95"] is not None and r.median_ms is not None]
    accuracy = set(known)
    if len(known) >= 2 and len(accuracy) == 1:
        note(f"latency_vs_map{suffix}.png not drawn: every model with an mAP has the same mAP50-95 "
             f"({accuracy.pop():g}), as untrained or barely trained weights do; it would show latency alone")
    else:
        made.append(_scatter(group, "mAP50_95", "mAP50-95, higher is better", "Latency vs accuracy",
                             folder / f"latency_vs_map{suffix}.png", maximize_x=True, note=note))
    made.append(_bars(group, folder / f"latency_bars{suffix}.png", note))
    return [path for path in made if path is not None]
