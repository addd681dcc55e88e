"""The HTML page (`detbench report`): its table equals the comparison's model cell by cell, text from reports is
escaped, the plots are inline with alt text, the Pareto front is not drawn as decided when nothing is, whiskers on
both axes with several seeds, no legend over a label, and bad input writes nothing. The page in a real browser,
on a real demo's results: tests/e2e/test_demo.py."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import make_report, one_line_error, save, spread, study_report

from detbench.comparison.accuracy import Accuracy
from detbench.comparison.analysis import build_comparison, load_entries, report_files
from detbench.comparison.tables import MINUS
from detbench.errors import DetbenchError
from detbench.page import charts
from detbench.page.content import RowView, comparison_content, map_label
from detbench.page.render import breakable, exact, gflops, num, render, signed
from detbench.page.run import comparison_page, run_report
from detbench.report.model import Statistics
from detbench.report.schema import load_report

MAX_PAGE_BYTES = 2 * 2**20


class Cells(HTMLParser):
    """Every cell of the tables with a row per model (table class -> model -> column -> (data-value, text); the
    ablation table's as `cells`), every <img> and every <script>."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, dict[str, dict[str, tuple[str | None, str]]]] = {}
        self.images: list[dict[str, str | None]] = []
        self.scripts = 0
        self._table = ""
        self._model: str | None = None
        self._cell: tuple[str, str | None] | None = None
        self._text: list[str] = []

    @property
    def cells(self) -> dict[str, dict[str, tuple[str | None, str]]]:
        return self.tables.get("ablation", {})

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = (attrs.get("class") or "").split(" ")[0]
        elif tag == "tr" and "data-model" in attrs:
            self._model = attrs["data-model"]
            self.tables.setdefault(self._table, {})[self._model] = {}
        elif tag in ("td", "th") and self._model is not None and "data-col" in attrs:
            self._cell, self._text = (attrs["data-col"], attrs.get("data-value")), []
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "script":
            self.scripts += 1

    def handle_data(self, data):
        if self._cell is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            column, value = self._cell
            self.tables[self._table][self._model][column] = (value, "".join(self._text))
            self._cell = None
        elif tag == "tr":
            self._model = None


def parsed(html: str) -> Cells:
    cells = Cells()
    cells.feed(html)
    return cells


def study_folder(tmp_path: Path) -> Path:
    """Three reports of one interleaved study (two worker processes, 60 rounds), with the statistics, warm-up,
    seeds and machine a study's reports carry."""
    for name, factor, seed in (("baseline", 1.0, 1), ("p2", 1.6, 2), ("twin", 1.0, 3)):
        report = study_report(name, factor, seed=seed)
        report["statistics"] = Statistics.from_samples(report["samples"]["latency_ms"]).to_dict()
        report["metadata"].update(warmup=10, seed=42)
        report["study"].update(workers_per_model=2, turn_warmup=1, order_seed=7)
        report["environment"].update(cpu_count=8, memory_total_MB=16384.0)
        report["latency"]["scope"] = "model forward only; batch already on the device and normalised"
        report["settings"]["fused"] = True
        save(tmp_path / "study", report)
    return tmp_path / "study"


def comparison_of(folder: Path):
    entries = load_entries(report_files([folder]), print)
    return build_comparison(entries), entries


def test_every_cell_of_the_table_equals_the_comparison_model(tmp_path):
    folder = study_folder(tmp_path)
    assert run_report(folder, echo=lambda line: None) == 0
    html = (folder / "report.html").read_text(encoding="utf-8")
    cells = parsed(html).cells
    comparison, _ = comparison_of(folder)
    rows = comparison.groups[0].rows
    assert list(cells) == [row.name for row in rows]  # the table model's order: the baseline first
    for row in rows:
        shown = cells[row.name]
        ci = row.entry.report.statistics.median_ci95_ms
        expected = {
            "params_M": (row.metrics["params_M"], num(row.metrics["params_M"], 2)),
            "gflops": (row.metrics["gflops"], gflops(row.metrics["gflops"])),
            "median_ms": (row.median_ms, f"{num(row.median_ms, 2)}[{num(ci[0], 2)}, {num(ci[1], 2)}]"),
            "fps": (row.metrics["fps_mean"], num(row.metrics["fps_mean"], 1)),
            "mem_MB": (row.metrics["mem_MB"], num(row.metrics["mem_MB"], 1)),
            "mde_pct": (row.verdict.mde_pct if row.verdict else None,
                        num(row.verdict.mde_pct if row.verdict else None, 1)),
        }
        for column, (value, text) in expected.items():
            assert shown[column] == (exact(value), text), (row.name, column)
        assert shown["verdict"][0] == ("baseline" if row.is_baseline else row.verdict.verdict)
        delta_value, delta_text = shown["delta_pct"]
        assert delta_value == exact(row.latency_delta_pct)
        if row.is_baseline:
            assert delta_text == "0.0"
        else:
            low, high = row.latency_delta_ci_pct
            assert delta_text.startswith(f"{signed(row.latency_delta_pct)}[{signed(low)}, {signed(high)}]")
    assert rows[1].name == "p2" and cells["p2"]["verdict"][0] == "slower"
    assert "Minimum detectable effect" in html and "Equivalence margin" in html

    latency = parsed(html).tables["samples"]  # the second table: n, mean, p95, max beside the median
    assert list(latency) == [row.name for row in rows]
    for row in rows:
        summary, shown = row.entry.report.latency, latency[row.name]
        assert shown["n_samples"] == ("120", "120") and shown["rounds"] == ("60", "60")
        for column in ("mean_ms", "median_ms", "p95_ms", "max_ms"):
            value = getattr(summary, column)
            assert shown[column] == (exact(value), num(value, 2)), (row.name, column)
        decided = row.verdict.decided_at_round if row.verdict else None
        assert shown["decided_at_round"][1] == ("baseline" if row.is_baseline else str(decided))
    method = html.split('id="method-1"')[1].split("</table>")[0]
    for said in ("120 timed forwards in 60 rounds of the study by 2 worker processes",
                 "10 untimed forwards before the first timed one, then 1 untimed before each timed turn",
                 "shuffled in every round with seed 7", "200 images drawn with seed 42 (--seed); 60 of them timed",
                 "the forward pass of the Conv+BN-fused model", "no image decoding, pre- or post-processing or NMS"):
        assert said in method, said
    assert "8 logical CPUs, 16.0 GiB RAM" in html
    assert "by <code>detbench report</code>" in html


def test_text_from_reports_is_escaped_and_the_page_asks_for_nothing_outside(tmp_path):
    hostile = '<img src=x onerror=alert(1)>"&\u202e'
    save(tmp_path, make_report("baseline", spread(10.0)))
    report = make_report("ghost", spread(9.0))
    report["metadata"]["model_name"] = "ghost"
    report["environment"]["cpu"] = hostile
    report["warnings"] = [f"noisy {hostile}"]
    report["command"] = ["detbench", "bench", "--name", hostile]
    save(tmp_path, report)
    run_report(tmp_path, echo=lambda line: None)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert hostile not in html and "&lt;img src=x onerror=alert(1)&gt;&#34;&amp;\\u202e" in html
    page = parsed(html)
    assert page.scripts == 0
    assert all(image["src"].startswith("data:image/svg+xml;base64,") and image["alt"] for image in page.images)
    # nothing in the page names another place: no http(s), no protocol-relative or file URL, no @import
    assert not re.search(r"(https?:|//[a-z]|file:|@import|url\()", html.replace("http-equiv", ""), re.I)
    assert "default-src 'none'" in html
    for image in page.images:  # the plots too: SVG with no external reference
        svg = base64.b64decode(image["src"].split(",", 1)[1]).decode("utf-8")
        assert "<svg" in svg and not re.search(r"(href=\"(?!#)|https?://(?!www\.w3\.org))", svg), svg[:300]


def test_separate_runs_say_the_front_is_not_established(tmp_path):
    for name, center, gf in (("baseline", 10.0, 8.0), ("ghost", 8.0, 6.0), ("p2", 14.0, 9.0)):
        save(tmp_path, make_report(name, spread(center), gflops=gf))
    comparison, entries = comparison_of(tmp_path)
    page = comparison_content(comparison, entries, [], str(tmp_path))
    (pareto,) = [chart for chart in page.groups[0].charts if chart.title.startswith("Latency vs GFLOPs")]
    assert "not established" in pareto.caption and "separate runs" in pareto.caption
    assert {row.verdict for row in page.groups[0].rows} == {"baseline", "untested"}
    svg = base64.b64decode(pareto.uri.split(",", 1)[1]).decode("utf-8")
    assert "front of the medians: not established" in svg  # the legend names the front for what it is
    assert "ratio of medians" in render(page)


def test_the_front_is_established_only_when_the_verdicts_decide_its_membership(tmp_path):
    folder = study_folder(tmp_path)  # p2 decided slower, twin equivalent to the baseline

    def front_caption_of(gflops: dict[str, float]) -> str:
        for name, value in gflops.items():
            report = load_report(folder / f"{name}.json").to_dict()
            report["model_complexity"]["gflops"] = value
            save(folder, report)
        comparison, entries = comparison_of(folder)
        page = comparison_content(comparison, entries, [], str(folder))
        (pareto,) = [chart for chart in page.groups[0].charts if chart.title.startswith("Latency vs GFLOPs")]
        return pareto.caption

    # twin as cheap as the baseline and equivalent: no verdict says which of the two is on the front
    caption = front_caption_of({"baseline": 8.0, "p2": 8.0, "twin": 8.0})
    assert caption.startswith("Front of the medians (no other model both faster and better on the other axis), "
                              "not established: no verdict shows")
    # p2 and twin dearer, decided slower and equivalent: the baseline alone is the front, and it is decided
    caption = front_caption_of({"baseline": 8.0, "p2": 9.0, "twin": 10.0})
    assert caption.startswith("Pareto front, established by the verdicts")
    assert "Verdicts against baseline: p2 slower, twin equivalent." in caption
    assert "may overlap even when a verdict" in caption

    points = [charts.Point("baseline", 8.0, 10.0, (9.0, 11.0), is_baseline=True),
              charts.Point("ghost", 6.0, 9.5, (8.0, 11.5)), charts.Point("p2", 9.0, 10.5, (9.0, 12.0))]
    fig = charts.pareto_figure(points, "GFLOPs", False, established=False)
    (front,) = [line for line in fig.axes[0].get_lines() if line.get_label().startswith("front of the medians")]
    assert front.get_linestyle() == ":" and front.get_color() == charts.UNDECIDED_FRONT_COLOR
    established = charts.pareto_figure(points, "GFLOPs", False, established=True)
    (legend,) = established.legends
    (sample,) = [handle for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=True)
                 if text.get_text() == "Pareto front"]
    assert sample.get_drawstyle() == "default" and sample.get_linestyle() == "--"  # a visible horizontal stroke


def test_the_caption_names_the_decided_comparisons_and_what_whiskers_say(tmp_path):
    folder = study_folder(tmp_path)
    comparison, entries = comparison_of(folder)
    page = comparison_content(comparison, entries, [], str(folder))
    (pareto,) = [chart for chart in page.groups[0].charts if chart.title.startswith("Latency vs GFLOPs")]
    assert "Verdicts against baseline: p2 slower, twin " in pareto.caption
    assert "never against each other" in pareto.caption and "may overlap even when a verdict" in pareto.caption


def test_several_seeds_put_whiskers_on_both_axes_and_no_legend_covers_a_label(tmp_path):
    folder = study_folder(tmp_path)
    comparison, entries = comparison_of(folder)
    for index, entry in enumerate(entries):
        entry.accuracy = Accuracy(map50=0.5, map50_95=0.30 + 0.02 * index, epoch=None, source=folder,
                                  fitness="mAP50-95", map50_sd=0.01, map50_95_sd=0.004 + 0.001 * index, n_seeds=3)
    page = comparison_content(comparison, entries, [], str(folder))
    group = page.groups[0]
    assert group.has_accuracy and all(row.map_seeds == 3 and row.map_sd is not None for row in group.rows)
    (accuracy,) = [chart for chart in group.charts if chart.title.startswith("Latency vs mAP")]
    assert "whiskers on latency (95 % CI of the median) and mAP (± sd over seeds)" in accuracy.alt
    html = render(page)
    cells = parsed(html).cells
    for row in comparison.groups[0].rows:
        value, text = cells[row.name]["map"]
        assert value == exact(row.map50_95_mean) and text == (f"{num(row.map50_95_mean, 3)} ± "
                                                              f"{num(row.map50_95_sd, 3)}")
    assert "mean ± sd (n = 3)" in html

    points = [charts.Point(row.name, row.map_mean, row.median_ms, row.median_ci,
                           (row.map_mean - row.map_sd, row.map_mean + row.map_sd), row.is_baseline)
              for row in group.rows]
    fig = charts.pareto_figure(points, "mAP50-95", True, established=True)
    (bars,) = [container for container in fig.axes[0].containers if hasattr(container, "has_xerr")][:1]
    assert bars.has_xerr and bars.has_yerr
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [text.get_window_extent(renderer) for text in fig.axes[0].texts]
    assert len(labels) == len(points)
    for legend in fig.legends + ([fig.axes[0].get_legend()] if fig.axes[0].get_legend() else []):
        box = legend.get_window_extent(renderer)
        assert not any(box.overlaps(label) for label in labels)
    assert not any(a.overlaps(b) for i, a in enumerate(labels) for b in labels[i + 1:])


def test_many_samples_keep_the_page_small(tmp_path):
    samples = [10.0 + (k * 7919 % 1000) / 100.0 for k in range(60_000)]
    for name in ("baseline", "ghost", "eca", "p2", "ghost_eca", "ghost_eca_p2"):
        save(tmp_path, make_report(name, samples))
    run_report(tmp_path, echo=lambda line: None)
    assert (tmp_path / "report.html").stat().st_size < MAX_PAGE_BYTES


def test_bad_input_is_one_line_and_writes_nothing(tmp_path):
    with pytest.raises(DetbenchError) as missing:
        run_report(tmp_path / "nowhere", echo=lambda line: None)
    assert "no such folder" in one_line_error(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(DetbenchError) as nothing:
        run_report(empty, echo=lambda line: None)
    assert "no benchmark report" in one_line_error(nothing)
    assert sorted(p.name for p in empty.iterdir()) == ["notes.txt"]
    assert not (tmp_path / "nowhere").exists()


def test_one_seed_is_said_and_has_no_sd():
    def row(seeds: int, sd: float | None) -> RowView:
        return RowView("m", False, None, None, None, None, None, None, 0.3, sd, seeds, None, None, False, None, "-",
                       None, "")

    assert map_label([row(1, None), row(1, None)]) == ("1 seed", False)
    assert map_label([row(3, 0.01), row(3, 0.02)]) == ("mean ± sd (n = 3)", False)
    assert map_label([row(3, 0.01), row(1, None)]) == ("mean ± sd over seeds", True)  # each cell says its own


def test_numbers_take_a_minus_sign_and_names_break_only_at_underscores():
    assert num(-1.234) == f"{MINUS}1.23" and signed(-3.33) == f"{MINUS}3.3" and signed(3.33) == "+3.3"
    assert num(-0.0001) == "0.00" and signed(-0.01) == "0.0" and num(None) == "-"
    assert str(breakable("ghost_eca_p2")) == "ghost_<wbr>eca_<wbr>p2"
    assert str(breakable("<b>_x\u202e")) == "&lt;b&gt;_<wbr>x\\u202e"  # escaped first, bidi shown


def test_a_few_slow_samples_do_not_squeeze_the_latency_axes(tmp_path):
    samples = spread(10.0, n=200)
    save(tmp_path, make_report("baseline", samples))
    save(tmp_path, make_report("ghost", [*spread(9.0, n=199), 300.0]))
    comparison, entries = comparison_of(tmp_path)
    page = comparison_content(comparison, entries, [], str(tmp_path))
    captions = {chart.title: chart.caption for chart in page.groups[0].charts}
    for title in ("Latency distribution", "Latency over the run"):
        assert "the 99th percentile of all 400 samples: 4 lie beyond it, the largest 300.0 ms" in captions[title]
    limit = charts.axis_limit([charts.Series("a", [], samples)])
    assert limit is None  # nothing far out: the axis shows every sample


def test_the_header_names_the_writer_and_every_command_is_listed(tmp_path):
    folder = study_folder(tmp_path)
    (folder / "study.json").write_text(json.dumps({"kind": "detbench study", "id": "s1",
                                                   "command": ["detbench", "ablate", "--runs", "r"]}))
    extra = make_report("later", spread(11.0))
    extra["command"] = ["detbench", "bench", "--weights", "later.pt"]
    save(folder, extra)
    comparison, entries = comparison_of(folder)
    page = comparison_page(comparison, entries, [], folder, writer="compare")
    assert page.commands == ["detbench ablate --runs r", "detbench bench --weights later.pt"]
    assert "by <code>detbench compare</code>" in render(page)
