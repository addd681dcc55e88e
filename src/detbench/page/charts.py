"""The page's plots: matplotlib figures (Agg canvas, no pyplot) saved as SVG and inlined as base64 data URIs.

The SVG keeps its text as text (`svg.fonttype` "none"): no glyph outlines, no font file, and the page stays
small; the browser draws it with a font it has. Every plot gets an alt text that says what it shows. Names are
drawn through `comparison.plots.label` (bounded, no mathtext). Legends sit outside the axes, below them, so
that no legend covers a model's label; the labels beside the points are placed so that none covers another
(`comparison.plots.label_spots`). A series longer than MAX_SERIES_POINTS is drawn from that many summaries
(quantiles of a distribution, medians of consecutive rounds), so that the page's size does not grow with the
samples.
"""

from __future__ import annotations

import base64
import io
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detbench.comparison.analysis import pareto_front
from detbench.comparison.plots import LABEL_SIZE, figure, label, label_spots

MAX_SERIES_POINTS = 400  # points drawn per model in the distribution and rounds plots
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")
CLIP_FACTOR = 1.5  # a latency axis stops at the p99 when the largest sample is beyond this times it
FRONT_COLOR = "#c0392b"
UNDECIDED_FRONT_COLOR = "#888888"
# the DOCTYPE and the RDF metadata block name URLs (never fetched, but a page that names none is easier to check)
WITHOUT_PROLOGUE = re.compile(rb"<!DOCTYPE[^>]*>\s*|\s*<metadata>.*?</metadata>", re.S)
SVG_RC = {"svg.fonttype": "none", "svg.hashsalt": "detbench", "font.size": 9}


@dataclass(frozen=True)
class Chart:
    """One plot as the page inlines it."""

    title: str
    alt: str
    uri: str  # data:image/svg+xml;base64,...
    caption: str = ""


@dataclass(frozen=True)
class Point:
    """A model in a scatter plot: x (cost or accuracy), median latency, and their intervals where known."""

    name: str
    x: float
    y: float
    y_interval: tuple[float, float] | None = None  # the median's 95 % CI
    x_interval: tuple[float, float] | None = None  # mean ± sd over seeds
    is_baseline: bool = False


@dataclass(frozen=True)
class Series:
    """A model's values in order: latency samples, or latency per round."""

    name: str
    x: Sequence[float]
    y: Sequence[float]
    is_baseline: bool = False


def color(index: int) -> str:
    return COLORS[index % len(COLORS)]


def svg_uri(fig) -> str:
    """The figure as an SVG data URI (its legend and labels inside the picture)."""
    import matplotlib  # imported here: matplotlib, only for a plot

    buffer = io.BytesIO()
    with matplotlib.rc_context(SVG_RC), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # e.g. a glyph a name uses is missing from the font
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    svg = WITHOUT_PROLOGUE.sub(b"", buffer.getvalue(), count=2)
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


def _figure(size: tuple[float, float]):
    import matplotlib  # imported here: matplotlib, only for a plot

    with matplotlib.rc_context(SVG_RC):
        fig, ax = figure(size)
    fig.set_layout_engine("constrained")
    return fig, ax


def _legend_below(fig, ax, columns: int) -> None:
    """The legend under the axes, outside them: it covers no point and no label."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=max(1, min(columns, len(handles))),
                   fontsize=8, frameon=False, handlelength=3)


def pareto_figure(points: Sequence[Point], x_label: str, maximize_x: bool, established: bool):
    """Median latency (y, lower is better) against `x`: whiskers where the intervals are known, the Pareto front
    (no other model both faster and better on x) as a step line: red and dashed where the verdicts establish it
    (`comparison.analysis.front_not_established_why`), grey and dotted, named "not established", where they do not."""
    from matplotlib.lines import Line2D  # imported here: matplotlib, only for a plot

    fig, ax = _figure((6.4, 4.6))
    keyed = [(-p.x if maximize_x else p.x, p.y) for p in points]
    front = set(pareto_front(keyed))
    whiskers = "95 % CI of the median" + ("; mAP: ± sd over seeds" if any(p.x_interval for p in points) else "")
    labelled = False
    for point in points:
        y_err = x_err = None
        if point.y_interval is not None:
            y_err = [[max(0.0, point.y - point.y_interval[0])], [max(0.0, point.y_interval[1] - point.y)]]
        if point.x_interval is not None:
            x_err = [[max(0.0, point.x - point.x_interval[0])], [max(0.0, point.x_interval[1] - point.x)]]
        if y_err is not None or x_err is not None:
            ax.errorbar([point.x], [point.y], yerr=y_err, xerr=x_err, fmt="none", ecolor="0.35", elinewidth=1,
                        capsize=3, zorder=2, label=None if labelled else whiskers)
            labelled = True
    on_front = [i for i in range(len(points)) if i in front]
    others = [i for i in range(len(points)) if i not in front]
    front_color = FRONT_COLOR if established else UNDECIDED_FRONT_COLOR
    if others:
        ax.scatter([points[i].x for i in others], [points[i].y for i in others], s=36, color=COLORS[0], zorder=3,
                   label="dominated")
    ax.scatter([points[i].x for i in on_front], [points[i].y for i in on_front], s=52, color=front_color, zorder=4,
               label="on the front" if established else "on the front of the medians")
    order = sorted(on_front, key=lambda i: points[i].x)
    style = {"color": front_color, "lw": 1.6, "ls": "--" if established else ":"}
    front_label = "Pareto front" if established else "front of the medians: not established"
    ax.plot([points[i].x for i in order], [points[i].y for i in order], **style,
            drawstyle="steps-pre" if maximize_x else "steps-post", zorder=2, label="_front")
    # the legend's sample of the front: a plain horizontal stroke (a step line's sample is a short vertical)
    ax.add_line(Line2D([], [], **style, label=front_label))
    ax.margins(x=0.2, y=0.18)
    ax.set_xlabel(x_label)
    ax.set_ylabel("median latency (ms), lower is better")
    ax.grid(True, alpha=0.3)
    _legend_below(fig, ax, 2)
    fig.canvas.draw()  # the layout is fixed: data can be mapped to points for the labels
    anchors = ax.transData.transform([(p.x, p.y) for p in points]) * 72.0 / fig.dpi
    names = [label(p.name) for p in points]
    for i, (dx, dy, ha) in enumerate(label_spots([tuple(a) for a in anchors], names)):
        ax.annotate(names[i], (points[i].x, points[i].y), xytext=(dx, dy), textcoords="offset points",
                    fontsize=LABEL_SIZE, fontweight="bold" if points[i].is_baseline else "normal", va="center",
                    ha=ha, zorder=5, bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
    return fig


def thin(values: Sequence[float], limit: int = MAX_SERIES_POINTS) -> np.ndarray:
    """At most `limit` values: the medians of consecutive equal slices when there are more."""
    array = np.asarray(values, dtype=np.float64)
    if array.size <= limit:
        return array
    return np.array([np.median(part) for part in np.array_split(array, limit)])


@dataclass(frozen=True)
class AxisLimit:
    """Where a latency axis stops: the 99th percentile of all samples, with the largest and how many lie beyond."""

    limit: float
    largest: float
    beyond: int
    samples: int

    def caption(self) -> str:
        return (f" The latency axis stops at {self.limit:.1f} ms, the 99th percentile of all {self.samples} samples: "
                f"{self.beyond} lie beyond it, the largest {self.largest:.1f} ms.")


def axis_limit(series: Sequence[Series]) -> AxisLimit | None:
    """The latency axis's end when a few slow samples would squeeze the rest (the largest sample beyond
    CLIP_FACTOR times the 99th percentile), else None (the axis shows every sample)."""
    values = np.concatenate([np.asarray(item.y, dtype=np.float64) for item in series]) if series else np.array([])
    if values.size < 2:
        return None
    p99, largest = float(np.percentile(values, 99)), float(values.max())
    if largest <= CLIP_FACTOR * p99:
        return None
    return AxisLimit(p99, largest, int(np.count_nonzero(values > p99)), int(values.size))


def _beyond_note(ax, limit: AxisLimit, y: float, va: str) -> None:
    ax.text(0.98, y, f"axis ends at the p99; {limit.beyond} beyond, up to {limit.largest:.0f} ms", ha="right",
            va=va, transform=ax.transAxes, fontsize=8, color="0.3", zorder=6,
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "0.8", "alpha": 0.9})


def distribution_figure(series: Sequence[Series], limit: AxisLimit | None = None):
    """Each model's empirical distribution function of its raw latency samples (the quantiles, when there are
    more than MAX_SERIES_POINTS samples); the x axis ends at `limit` when given."""
    fig, ax = _figure((6.4, 4.4))
    for index, item in enumerate(series):
        values = np.sort(np.asarray(item.y, dtype=np.float64))
        if values.size > MAX_SERIES_POINTS:
            probabilities = np.linspace(0.0, 1.0, MAX_SERIES_POINTS)
            values, heights = np.quantile(values, probabilities), probabilities
        else:
            heights = np.arange(1, values.size + 1) / values.size
        ax.step(values, heights, where="post", color=color(index), lw=2.2 if item.is_baseline else 1.3,
                label=label(item.name))
    if limit is not None:
        ax.set_xlim(right=limit.limit)
        _beyond_note(ax, limit, 0.05, "bottom")
    ax.set_xlabel("latency per batch (ms)")
    ax.set_ylabel("share of samples at or below")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    _legend_below(fig, ax, 3)
    return fig


def rounds_figure(series: Sequence[Series], x_label: str, limit: AxisLimit | None = None):
    """Each model's latency in order (per round of a study: the mean of its turns in that round), so that drift
    the models shared shows as lines moving together; the y axis ends at `limit` when given."""
    fig, ax = _figure((6.4, 4.4))
    for index, item in enumerate(series):
        x, y = thin(item.x), thin(item.y)
        ax.plot(x, y, color=color(index), lw=1.8 if item.is_baseline else 1.0, alpha=0.9, label=label(item.name))
    ax.set_xlabel(x_label)
    if limit is not None:
        ax.set_ylim(top=limit.limit)
        _beyond_note(ax, limit, 0.97, "top")
    ax.set_ylabel("latency (ms)")
    ax.grid(True, alpha=0.3)
    _legend_below(fig, ax, 3)
    return fig


def bars_figure(groups: Sequence[str], bars: dict[str, Sequence[float | None]], y_label: str):
    """Grouped bars: one group per model, one bar per backend (a missing value leaves a gap)."""
    fig, ax = _figure((6.4, 4.4))
    width = 0.8 / max(len(bars), 1)
    for k, (name, values) in enumerate(bars.items()):
        xs = [i + (k - (len(bars) - 1) / 2) * width for i, v in enumerate(values) if v is not None]
        ax.bar(xs, [v for v in values if v is not None], width=width, color=color(k), label=label(name), zorder=3)
    ax.set_xticks(range(len(groups)), [label(g) for g in groups], rotation=20 if len(groups) > 4 else 0,
                  ha="right" if len(groups) > 4 else "center")
    ax.set_ylabel(y_label)
    ax.grid(True, axis="y", alpha=0.3, zorder=0)
    _legend_below(fig, ax, 4)
    return fig


def chart(fig, title: str, alt: str, caption: str = "") -> Chart:
    return Chart(title=title, alt=alt, uri=svg_uri(fig), caption=caption)
