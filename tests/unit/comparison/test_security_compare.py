"""`detbench compare` against hostile inputs: a sweep's index and study records that
would stall it, pivots and names that would bomb its plots and terminal, text that would act in an output, and
index shapes that would end in a traceback, all in process (the command line: tests/e2e/test_security_compare_cli.py).
Every payload here is synthetic, and every bound is checked by a count (reads, pixels, bytes), not by a clock."""

from __future__ import annotations

import csv
import json
import os
import random
import re
from pathlib import Path
from typing import Any

import pytest
from hostile_reports import ESCAPES, assert_inert, report, write_json

from detbench import limits, text
from detbench.comparison import plots, run, sweep
from detbench.comparison.pivot import Cell, Pivot, pivot_lines
from detbench.comparison.run import run_compare
from detbench.errors import DetbenchError
from detbench.report import study_record
from detbench.sweep import index as sweep_index

# ---------------------------------------------------------------- synthetic files

def link(source: Path, target: Path) -> None:
    """`target` as a hard link to `source` (a symlink where hard links cannot be made)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        target.symlink_to(source)


def a_sweep(out: Path, studies: dict[str, dict[str, Any]]) -> Path:
    """OUT/sweep.json of these studies, and for each study S: studies/S/study.json and one report per model."""
    index = {}
    for name, study in studies.items():
        models = study.get("models", ["baseline", "p2"])
        write_json(out / "studies" / name / "study.json", {"id": f"id-{name}", "status": "ok", "baseline": "baseline",
                                                             "models": models, **study.get("record", {})})
        for model in dict.fromkeys(m["name"] if isinstance(m, dict) else m for m in models):
            write_json(out / "studies" / name / f"{model}.json", report(model, 10.0 if model == "baseline" else 12.0))
        index[name] = {"status": "ok", "study_id": f"id-{name}", "cell": {"imgsz": 64}, **study.get("entry", {})}
    write_json(out / "sweep.json", {"kind": "detbench sweep", "studies": index})
    return out


class Counting:
    """Wraps `sweep.load_report` and the bounded JSON reads of the index and the study records: which files
    `compare --sweep` reads, how often."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reports: list[Path] = []
        self.files: list[Path] = []
        load = sweep.load_report
        monkeypatch.setattr(sweep, "load_report", lambda path: (self.reports.append(Path(path)), load(path))[1])
        for module in (sweep_index, study_record):
            bounded = module.read_json_bounded
            monkeypatch.setattr(module, "read_json_bounded", lambda path, *args, bounded=bounded: (
                self.files.append(Path(path)), bounded(path, *args))[1])


def compare_sweep(out: Path) -> tuple[int, list[str]]:
    lines: list[str] = []
    return sweep.run_sweep_compare(out, echo=lines.append), lines


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# ---------------------------------------------------------------- 1. compare --sweep reads each file once, bounded

def test_a_study_listing_one_model_over_and_over_reads_its_report_once(tmp_path, monkeypatch):
    # the review's payload: one model listed again and again (60,000 times took 27-35 s, one read per entry)
    out = a_sweep(tmp_path / "out", {"cell": {"models": ["baseline"] * (limits.MAX_STUDY_MODELS - 1) + ["p2"]}})
    counting = Counting(monkeypatch)
    code, lines = compare_sweep(out)
    assert code == 0 and sorted(p.name for p in counting.reports) == ["baseline.json", "p2.json"]
    assert sum(line.startswith(("baseline ", "p2 ")) for line in lines) == 2  # each model once in the table


def test_links_to_one_report_and_one_record_in_many_studies_cost_one_read_each(tmp_path, monkeypatch):
    out = a_sweep(tmp_path / "out", {"s0": {}})
    names = [f"s{i}" for i in range(1, 300)]
    index = json.loads((out / "sweep.json").read_text())
    for name in names:  # every study folder: links to s0's record and reports (the index expects s0's id)
        for file_name in ("study.json", "baseline.json", "p2.json"):
            link(out / "studies" / "s0" / file_name, out / "studies" / name / file_name)
        index["studies"][name] = {**index["studies"]["s0"], "cell": {"imgsz": 64 + len(index["studies"])}}
    write_json(out / "sweep.json", index)
    counting = Counting(monkeypatch)
    code, lines = compare_sweep(out)
    assert code == 0 and lines[0].endswith("300 studies with results, 0 without")
    assert len(counting.reports) == 2  # not 600
    assert [p.name for p in counting.files].count("study.json") == 1  # not 300


def test_a_record_listing_more_models_than_a_study_records_is_not_read(tmp_path, monkeypatch):
    out = a_sweep(tmp_path / "out", {"big": {"models": ["baseline"]}, "fine": {}})
    names = [f"m{i}" for i in range(limits.MAX_STUDY_MODELS + 1)]
    for name in names:  # every name a real report file (links), so without the bound each would be read
        link(out / "studies" / "big" / "baseline.json", out / "studies" / "big" / f"{name}.json")
    write_json(out / "studies" / "big" / "study.json", {"id": "id-big", "baseline": "baseline", "models": names})
    counting = Counting(monkeypatch)
    code, lines = compare_sweep(out)
    assert code == 1 and lines[0].endswith("1 studies with results, 1 without")
    assert f"big: its results are unreadable (its study.json lists {len(names):,} models, more than a study " \
           f"records ({limits.MAX_STUDY_MODELS:,}))" in lines[1]
    assert all(p.parent.name == "fine" for p in counting.reports)


def test_an_index_of_more_studies_than_a_sweep_plans_is_refused_before_any_study_is_read(tmp_path, monkeypatch):
    out = a_sweep(tmp_path / "out", {"s0": {}})
    entry = json.loads((out / "sweep.json").read_text())["studies"]["s0"]
    write_json(out / "sweep.json", {"kind": "detbench sweep",
                                    "studies": {f"s{i}": entry for i in range(limits.MAX_SWEEP_STUDIES + 1)}})
    counting = Counting(monkeypatch)
    with pytest.raises(DetbenchError, match=r"lists 10,001 studies, more than a sweep plans \(10,000\)") as caught:
        compare_sweep(out)
    assert "\n" not in str(caught.value) and [p.name for p in counting.files] == ["sweep.json"]
    assert counting.reports == [] and not (out / "sweep_comparison.csv").exists()


def test_the_model_results_read_in_all_are_bounded(tmp_path, monkeypatch):
    out = a_sweep(tmp_path / "out", {f"s{i}": {} for i in range(4)})
    monkeypatch.setattr(sweep, "MAX_SWEEP_REPORTS", 5)  # 2 models a study: the third study would make 6
    counting = Counting(monkeypatch)
    code, lines = compare_sweep(out)
    assert code == 1 and lines[0].endswith("2 studies with results, 2 without")
    assert any("s2: not read: the studies before it hold 4 model results, the most compare --sweep reads (5)" in line
               for line in lines)
    assert len(counting.reports) == 4


def test_the_ranking_stability_tables_are_bounded(tmp_path, monkeypatch):
    studies = {f"s{i}": {"models": ["baseline", f"only{i}"], "record": {"comparisons": [
        {"model": f"only{i}", "delta_pct": 20.0, "ci_pct": [15.0, 25.0], "verdict": "slower"}]}} for i in range(6)}
    out = a_sweep(tmp_path / "out", studies)
    monkeypatch.setattr(sweep, "MAX_TABLE_CELLS", 30)  # 6 models x 6 cells: 36 verdicts, of which 30 are '-'
    code, lines = compare_sweep(out)
    assert code == 0 and any("not shown: 6 models x 6 cells, more than the 30 verdicts" in line for line in lines)
    markdown = (out / "sweep_comparison.md").read_text()
    assert "| model |" not in markdown and "not shown: 6 models x 6 cells" in markdown
    assert len((out / "sweep_comparison.csv").read_text().splitlines()) == 1 + 12  # every result still in the CSV


def test_a_record_of_more_lists_than_detbench_writes_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    out = a_sweep(tmp_path / "out", {"long": {}, "bomb": {}})
    order = [["baseline/0", "p2/0"]] * 300_000  # a long study: one list a round, beyond a report's bound (200,000)
    write_json(out / "studies" / "long" / "study.json", {"id": "id-long", "baseline": "baseline",
                                                         "models": ["baseline", "p2"], "order": order})
    bomb = b'{"id": "id-bomb", "models": ["baseline"], "x": [' + b"[]," * limits.MAX_RECORD_CONTAINERS + b"[]]}"
    (out / "studies" / "bomb" / "study.json").write_bytes(bomb)  # parsed whole at 128 MiB: 3 GB of empty lists
    parsed, loads = [], json.loads
    monkeypatch.setattr(json, "loads", lambda data, **kw: parsed.append(len(data)) or loads(data, **kw))
    code, lines = compare_sweep(out)
    assert code == 1 and lines[0].endswith("1 studies with results, 1 without")
    assert f"holds {limits.MAX_RECORD_CONTAINERS + 4:,} lists and objects and" in lines[1]
    assert "more than detbench writes in one (4,000,000 and 16,000,000)" in lines[1]
    assert max(parsed) < len(bomb)  # the long study's record parsed, never the bomb


# ---------------------------------------------------------------- 4. any shape of sweep.json / study.json

WRONG_VALUES = [None, True, -1, 10**400 // 10**100, 1e308, "", "x" * 5000, ESCAPES, "../../etc", [], [1, "a"], {},
                {"a": [None]}, [[[]]]]


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON value, leaves and containers."""
    places = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            places += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            places += _paths(item, (*prefix, index))
    return places


def _set(value: Any, place: tuple, new: Any) -> Any:
    value = json.loads(json.dumps(value))
    target = value
    for key in place[:-1]:
        target = target[key]
    target[place[-1]] = new
    return value


def _result_or_one_line(out: Path, counting: Counting) -> str:
    try:
        code, lines = compare_sweep(out)
    except DetbenchError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 3000, str(exc)[:300]
        outcome = "error"
    else:
        assert code in (0, 1)
        assert_inert(lines)
        outcome = "result"
    root = os.path.realpath(out)
    for path in counting.files + counting.reports:  # nothing named by the index is read outside the sweep
        assert os.path.realpath(path).startswith(root + os.sep), path
    return outcome


@pytest.fixture
def quick_sweep(tmp_path, monkeypatch) -> Path:
    """A valid two-study sweep; its tables are made but not written, its plot not drawn (each write and draw would
    cost more than the whole check)."""
    monkeypatch.setattr(sweep, "_write_plot", lambda kinds, path: None)
    monkeypatch.setattr(sweep, "write_table", lambda path, content, fix: content.encode("utf-8"))
    return a_sweep(tmp_path / "out", {"a": {"models": ["baseline", {"name": "p2"}], "record": {"comparisons": [
        {"model": "p2", "delta_pct": 20.0, "ci_pct": [15.0, 25.0], "verdict": "slower"}]},
        "entry": {"node": {"hostname": "h"}, "reason": None}}, "b": {}})


def test_every_place_of_the_index_and_the_record_made_wrong_gives_a_result_or_one_line(quick_sweep, monkeypatch):
    counting = Counting(monkeypatch)
    index = json.loads((quick_sweep / "sweep.json").read_text())
    record = json.loads((quick_sweep / "studies" / "a" / "study.json").read_text())
    outcomes = set()
    for file_name, original in (("sweep.json", index), ("studies/a/study.json", record)):
        for number, place in enumerate(_paths(original)):
            for wrong in WRONG_VALUES[number % 3::3]:  # each place a third of the wrong values, in turn
                write_json(quick_sweep / file_name, _set(original, place, wrong))
                outcomes.add(_result_or_one_line(quick_sweep, counting))
        write_json(quick_sweep / file_name, original)
    assert outcomes == {"result", "error"}


@pytest.mark.parametrize("content", [
    '{"kind": "detbench sweep", "studies": [{"status": "ok"}]}', '{"kind": "detbench sweep", "studies": {"a": 1}}',
    '{"kind": "detbench sweep", "studies": {"a": {"status": ["ok"], "reason": {"x": 1}}}}',
    '{"kind": "detbench sweep", "studies": {"a": {"status": "ok", "cell": "xy", "node": [1]}}}',
    "[" * 100_000 + "]" * 100_000, '{"studies": {"a": NaN}}', '"sweep"', "", "\xff", '{"a": ' + "9" * 5000 + "}",
    "[" + "[]," * 300_000 + "[]]", "[" + "0," * 16_000_000 + "0]"])
def test_an_index_of_any_shape_gives_a_result_or_one_line(quick_sweep, monkeypatch, content):
    (quick_sweep / "sweep.json").write_text(content, errors="surrogateescape")
    _result_or_one_line(quick_sweep, Counting(monkeypatch))


def test_random_indexes_and_records_give_a_result_or_one_line(quick_sweep, monkeypatch):
    rng = random.Random(23)
    keys = ["kind", "studies", "status", "study_id", "cell", "node", "reason", "id", "models", "comparisons",
            "baseline", "name", "model", "verdict", "delta_pct", "ci_pct", "hostname", "imgsz", "a", "b", "p2"]
    atoms = [*WRONG_VALUES, "ok", "invalid", "id-a", "baseline", "p2", "detbench sweep", "slower", 12.5]

    def value(depth: int) -> Any:
        roll = rng.random()
        if depth > 3 or roll < 0.4:
            return rng.choice(atoms)
        if roll < 0.7:
            return {rng.choice(keys): value(depth + 1) for _ in range(rng.randint(0, 5))}
        return [value(depth + 1) for _ in range(rng.randint(0, 4))]

    def entry(drawn: Any) -> Any:
        return {"status": "ok", "study_id": "id-a", **drawn} if isinstance(drawn, dict) and rng.random() < 0.7 \
            else drawn

    counting = Counting(monkeypatch)
    for _ in range(150):
        index = value(0) if rng.random() < 0.3 else {"kind": "detbench sweep", "studies": {
            rng.choice(["a", "b", "../a", ESCAPES]): entry(value(1)) for _ in range(rng.randint(0, 3))}}
        write_json(quick_sweep / "sweep.json", index)
        record = value(0)
        if isinstance(record, dict) and rng.random() < 0.7:
            record.update(id="id-a", models=rng.choice([["baseline", "p2"], value(1), ["../x"], [ESCAPES]]))
        write_json(quick_sweep / "studies" / "a" / "study.json", record)
        _result_or_one_line(quick_sweep, counting)


def test_text_from_a_sweep_is_inert_and_bounded_in_every_output(tmp_path, monkeypatch):
    big = ESCAPES + "=cmd|' /C calc'!A0 <b>|</b> " + "x" * 1_000_000
    out = a_sweep(tmp_path / "out", {"a": {"entry": {"cell": {"imgsz": big, "precision": "=1+1", "format": [big]},
                                                     "node": {"hostname": big}},
                                           "record": {"baseline": big, "comparisons": [
                                               {"model": "p2", "verdict": big, "delta_pct": 10**300,
                                                "ci_pct": [1e308, "x"]}, {"model": big, "verdict": "slower"}]}},
                                     "b": {"entry": {"status": big, "reason": big}}})
    write_json(out / "studies" / "a" / "p2.json", {**report("p2", 12.0), "gpu": {"name": big}})
    code, lines = compare_sweep(out)
    assert code == 1
    assert_inert(lines)
    printed = sum(len(line.encode()) + 1 for line in lines)
    assert printed < 20_000 and "\\x1b]0;owned\\x07" in "\n".join(lines)  # the review's payload: megabytes
    rows = list(csv.reader((out / "sweep_comparison.csv").read_text().splitlines()))
    assert all(not cell.startswith(text.CSV_FORMULA_STARTS) for row in rows for cell in row)
    assert all(len(cell) < 1500 for row in rows for cell in row)
    markdown = (out / "sweep_comparison.md").read_text()
    assert "<b>" not in markdown and "\x1b" not in markdown and len(markdown) < 20_000


# ---------------------------------------------------------------- 2. pivot, plots and terminal bounded

def test_the_pivot_plot_is_bounded_in_pixels_and_not_drawn_past_the_cap(tmp_path):
    def pivot(models: int, backends: int) -> Pivot:
        names, formats = [f"m{i}" for i in range(models)], [f"b{k}" for k in range(backends)]
        cells = {(m, b): Cell(None, 10.0 + i, is_baseline=i == 0) for i, m in enumerate(names) for b in formats}
        return Pivot("m0", names, formats, cells)

    notes: list[str] = []
    # the review's payload: 100 models x 100 backends drew a 780,360 px wide PNG (1.8 GiB)
    assert plots.backend_bars(pivot(100, 100), tmp_path / "big.png", note=notes.append) is None
    assert not (tmp_path / "big.png").exists()
    assert notes == ["big.png not drawn: 10000 bars (100 models x 100 backends), more than the 60 one plot shows; "
                     "the matrix printed above has its cells (compare fewer reports at a time for the plot)"]
    drawn = plots.backend_bars(pivot(12, 5), tmp_path / "edge.png")  # 60 bars: 42 inches wide unbounded
    width, height = png_size(drawn)
    assert width <= limits.MAX_PLOT_INCHES * 120 and height <= limits.MAX_PLOT_INCHES * 120


def test_every_comparison_plot_is_bounded_in_pixels_and_in_number(tmp_path, monkeypatch):
    folder = tmp_path / "bench"
    for i in range(limits.MAX_PLOT_ITEMS):
        write_json(folder / f"m{i}.json", report("baseline" if i == 0 else f"m{i}" + "n" * 300, 10.0 + i))
    lines: list[str] = []
    run_compare(folder, plots_dir=tmp_path / "plots", echo=lines.append, warn=lines.append)
    for name in ("latency_bars.png", "latency_vs_gflops.png"):  # 60 bars: 68.5 inches wide unbounded
        width, height = png_size(tmp_path / "plots" / name)
        assert width <= limits.MAX_PLOT_INCHES * 120 and height <= limits.MAX_PLOT_INCHES * 120
    write_json(folder / "one_more.json", report("one_more", 99.0))
    lines.clear()
    run_compare(folder, plots_dir=tmp_path / "more", echo=lines.append, warn=lines.append)
    assert not (tmp_path / "more" / "latency_bars.png").exists()
    assert sum("not drawn: 61 models, more than the 60 one plot shows" in line for line in lines) == 2
    monkeypatch.setattr(plots, "MAX_PLOT_GROUPS", 2)
    other = tmp_path / "groups"
    for imgsz in (320, 416, 512):
        write_json(other / f"b{imgsz}.json", report("baseline") | {"metadata": {
            **report("baseline")["metadata"], "imgsz": imgsz}})
    lines.clear()
    run_compare(other, plots_dir=tmp_path / "g", echo=lines.append, warn=lines.append)
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["latency_bars.png", "latency_bars_group2.png"]
    assert any("plots of the first 2 groups only, of 3" in line for line in lines)


def test_a_huge_backend_name_among_many_reports_prints_a_bounded_inert_matrix(tmp_path):
    folder = tmp_path / "bench"
    long_a, long_b = ESCAPES + "B" * 200_000 + "a", ESCAPES + "B" * 200_000 + "b"  # they differ at the end only
    write_json(folder / "x.json", report("baseline", 10.0, backend=long_a))
    write_json(folder / "y.json", report("baseline2", 10.0, backend=long_b))
    for i in range(60):
        write_json(folder / f"m{i}.json", report("baseline" if i == 0 else f"m{i}", 10.0 + i))
    lines: list[str] = []
    run_compare(folder, pivot="backend", echo=lines.append, warn=lines.append)
    assert_inert(lines)
    printed = sum(len(line.encode()) + 1 for line in lines)
    assert printed < 200_000  # unbounded: 61 rows x 2 columns padded to 200,000 characters, 24 MB
    header = next(line for line in lines if line.startswith("Model ") and "pytorch" in line)
    shown = re.findall(r"\\x1b\]0;owned\\x07\\x1b\[31mB+\u2026#[0-9a-f]{16}", header)
    assert len(shown) == 2 and shown[0] != shown[1]  # shortened, visibly, and still two backends
    assert all(len(name) <= limits.MAX_SHOWN_CHARS + 20 for name in shown)


def test_a_matrix_shows_at_most_its_rows_and_columns_with_a_note():
    models, backends = [f"m{i}" for i in range(250)], ["pytorch", *(f"b{k}" for k in range(11))]
    pivot = Pivot("m0", models, backends, {(m, b): Cell(None, 1.0) for m in models[:3] for b in backends})
    lines = pivot_lines(pivot)
    table = lines[1:lines.index(next(line for line in lines if line.startswith("Verdicts")))]
    assert len(table) == 1 + limits.MAX_PIVOT_MODELS and len(table[0].split()) == 1 + limits.MAX_PIVOT_BACKENDS
    assert "note: 50 more models not shown: a matrix shows at most 200" in lines[-2]
    assert "note: 4 more backends not shown: a matrix shows at most 8" in lines[-1]


def test_what_compare_prints_is_bounded_in_all(tmp_path, monkeypatch):
    folder = tmp_path / "bench"
    # 180 KB of caveats in one report, each its own (caveats that differ only in their numbers are said once)
    warnings = [f"warning {chr(65 + i % 26)}{chr(65 + i // 26)}: " + "w" * 900 for i in range(200)]
    write_json(folder / "baseline.json", report("baseline") | {"warnings": warnings})
    write_json(folder / "p2.json", report("p2", 12.0))
    monkeypatch.setattr(run, "MAX_TERMINAL_BYTES", 50_000)
    lines: list[str] = []
    run_compare(folder, formats=["csv"], echo=lines.append, warn=lines.append)
    cut = next(i for i, line in enumerate(lines) if line == run.TERMINAL_NOTE)
    assert sum(len(line.encode()) + 1 for line in lines[:cut]) <= 50_000
    assert lines[cut + 1:] == [f"✓ saved: {folder / 'comparison.csv'}"]  # what was saved is still said
    said: list[str] = []
    echo = text.bounded_echo(said.append, 10, "cut")
    for line in ("abcd", "ef\x1b", "ghij", "k"):
        echo(line)
    assert said == ["abcd", "cut"]


def test_long_names_are_shortened_visibly_and_stay_distinct():
    assert text.bounded("n" * limits.MAX_SHOWN_CHARS) == "n" * limits.MAX_SHOWN_CHARS  # every name bench accepts
    one, other = text.bounded("n" * 300 + "1"), text.bounded("n" * 300 + "2")
    assert one != other and len(one) == len(other) == limits.MAX_SHOWN_CHARS
    assert re.fullmatch(r"n+\u2026#[0-9a-f]{16}", one)
    assert text.bounded("a\ud800b") == "a\\ud800b" and len(text.bounded("x" * 10**6, 40)) == 40


# ---------------------------------------------------------------- 3. text from reports inert (every output of the
# command line: tests/e2e/test_security_compare_cli.py)

def test_a_lone_surrogate_is_shown_by_every_terminal_line_and_refused_in_a_name():
    from detbench.names import name_problem
    from detbench.text import terminal

    assert terminal("model\ud800") == "model\\ud800"
    terminal("model\ud800").encode("utf-8")  # a UTF-8 terminal takes it
    assert "control or line-separator character" in name_problem("model\udc80")


def test_a_study_folder_that_is_a_link_is_not_read(tmp_path):
    out = a_sweep(tmp_path / "out", {"a": {}, "b": {}})
    elsewhere = tmp_path / "elsewhere"
    (out / "studies" / "b").rename(elsewhere)
    (out / "studies" / "b").symlink_to(elsewhere)  # the same files, reached through a link
    code, lines = compare_sweep(out)
    shown = "\n".join(lines)
    assert code == 1 and "b: its results are unreadable" in shown and "studies/b is a symlink" in shown


def test_one_results_csv_behind_many_reports_is_read_once_and_all_of_them_are_bounded(tmp_path, monkeypatch):
    from detbench.comparison import accuracy, analysis

    run_dir = tmp_path / "run"
    (run_dir / "weights").mkdir(parents=True)
    (run_dir / "results.csv").write_text("epoch,metrics/mAP50(B),metrics/mAP50-95(B)\n" + "1,0.5,0.3\n" * 1000)
    reports = tmp_path / "reports"
    for index in range(50):
        data = report(f"m{index}", 10.0 + index)
        data["metadata"]["weights"] = str(run_dir / "weights" / "best.pt")
        write_json(reports / f"m{index}.json", data)
    reads = []
    real = accuracy.best_epoch
    monkeypatch.setattr(accuracy, "best_epoch", lambda *args: reads.append(args) or real(*args))
    entries = analysis.load_entries(analysis.report_files([reports]))
    assert len(entries) == 50 and all(entry.accuracy.map50 == 0.5 for entry in entries)
    assert len(reads) == 1  # the 16 MiB of a hostile results.csv once, not 50 times (5.7 s each)

    monkeypatch.setattr(accuracy, "MAX_RESULTS_CSV_TOTAL_BYTES", 10)
    warnings = []
    entries = analysis.name_entries(analysis.load_entries(analysis.report_files([reports])), warnings.append)
    assert all(entry.accuracy is None for entry in entries) and len(warnings) == 50
    assert "not read: the results.csv files before it hold 0 MiB, the most one compare reads" in warnings[0]
