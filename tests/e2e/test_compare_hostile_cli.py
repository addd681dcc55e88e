"""detbench compare on hostile folders with real reports: crafted fields, special files, injected names, unwritable
outputs, huge studies."""

from __future__ import annotations

import copy
import csv
import errno
import json
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_batch import run_cli_batch
from conftest import run_cli

from detbench import text
from detbench.comparison.analysis import report_files
from detbench.comparison.run import run_compare
from detbench.config import BenchConfig
from detbench.errors import DetbenchError
from detbench.names import bad_characters
from detbench.report.kinds import MAX_MEASURE, MIN_LATENCY_MS
from detbench.report.merge import merge_workers
from detbench.report.model import Report
from detbench.report.schema import load_report
from detbench.stats import paired
from detbench.workflows.bench import run_bench

HOSTILE_NAMES = ['=HYPERLINK("http://x")', "a|b", "<img src=x onerror=alert(1)>", "x\ny", "[evil]", "\x1b[31mred",
                 r"$\frac{1}{0}$", "u\u2028v", "n\x85m", "+1", "@SUM(A1)", "-2", "\tz", "\rw", "*star", "a\\b&c%_{}~^#"]
COMPARE_IMPORTS = "import detbench.cli, detbench.comparison.run"
HOSTILE_HARDWARE = "\x1b]0;owned\x07CPU | <b>bold</b> $x$ [y] \u202eevil"


@pytest.fixture(scope="module")
def real_report(tmp_path_factory, dataset) -> dict[str, Any]:
    """A report made by `detbench bench`'s run here (YOLOv8n from its YAML, imgsz 64, 5 iterations)."""
    out = tmp_path_factory.mktemp("real")
    argv = ["detbench", "bench", "--weights", "yolov8n.yaml", "--device", "cpu", "--imgsz", "64", "--warmup", "1",
            "--iters", "5", "--threads", "1", "--benchmark_size", "10", "--data", str(dataset), "--name", "baseline",
            "--out", str(out)]
    cfg = BenchConfig(weights="yolov8n.yaml", device="cpu", imgsz=64, warmup=1, iters=5, threads=1, benchmark_size=10,
                      data=str(dataset), name="baseline", out=str(out))
    run_bench(cfg, echo=lambda line: None, argv=argv)
    return load_report(out / "baseline.json").to_dict()


@pytest.fixture(scope="module")
def study_report(real_report) -> dict[str, Any]:
    """The real report as two workers of an interleaved study took it (24 rounds), merged as `ablate` does."""
    real = real_report["samples"]["latency_ms"]
    parts = []
    for worker in range(2):
        part = copy.deepcopy(real_report)
        part["samples"] = {"latency_ms": [real[i % len(real)] * (1 + 0.01 * ((i + worker) % 7)) for i in range(24)],
                           "round": list(range(24))}
        part["study"] = {"id": "study-1", "baseline": "baseline", "planned_looks": [24], "looks_at_rounds": [24],
                         "alpha": 0.05, "min_effect": 0.02, "models": ["baseline", "other"],
                         "finished_models": ["baseline", "other"]}
        parts.append(Report.from_dict(part))
    return merge_workers(parts, "baseline").to_dict()


def variant(report: dict[str, Any], name: str, scale: float = 1.0) -> dict[str, Any]:
    """A copy under another model name, its latencies multiplied by `scale`."""
    copied = copy.deepcopy(report)
    copied["metadata"]["model_name"] = name
    copied["samples"]["latency_ms"] = [x * scale for x in copied["samples"]["latency_ms"]]
    for key in ("mean_ms", "median_ms", "p50_ms", "p95_ms", "p99_ms", "min_ms", "max_ms"):
        copied["latency"][key] *= scale
    return copied


def put(folder: Path, file_name: str, report: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name
    path.write_text(json.dumps(report))
    return path


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.rglob("*"))}


def one_line_each(stream: str) -> list[str]:
    """The lines of a command's output; none holds a control, escape or line-separator character."""
    lines = stream.split("\n")
    for line in lines:
        assert not bad_characters(line), repr(line)
    return lines


def test_hostile_names_and_hardware_are_inert_in_every_output(tmp_path, real_report):
    folder = tmp_path / "bench"
    names = ["baseline", *HOSTILE_NAMES]
    for i, name in enumerate(names):
        report = variant(real_report, name, 1.0 + 0.05 * i)
        report["environment"]["cpu"] = HOSTILE_HARDWARE
        put(folder, f"m{i:02d}.json", report)
    result = run_cli("compare", str(folder), "--table-format", "csv", "--table-format", "md", "--table-format", "latex",
                     "--plots", str(tmp_path / "plots"))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    lines = one_line_each(result.stdout)
    assert "\\x1b]0;owned\\x07CPU" in lines[1] and "\\u202e" in lines[1]
    start = lines.index("Base metrics:") + 2
    shown = ["baseline", *sorted(HOSTILE_NAMES, key=text.bounded)]  # the baseline, then names outside the zoo
    assert [line.split("  ")[0].rstrip() for line in lines[start:start + len(names)]] == \
           [text.terminal(name) for name in shown]

    csv_text = (folder / "comparison.csv").read_text()
    assert len(csv_text.splitlines()) == len(names) + 1 and not bad_characters(csv_text.replace("\n", ""))
    rows = list(csv.DictReader(csv_text.splitlines()))
    for row in rows:
        assert not any(cell.startswith(text.CSV_FORMULA_STARTS) for cell in row.values() if not _number(cell))
    assert {row["model"] for row in rows} == {text.csv_cell(name) for name in names}

    markdown = (folder / "comparison.md").read_text()
    table = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len(table) == len(names) + 2 and "<img" not in markdown and "<b>" not in markdown
    assert not bad_characters(markdown.replace("\n", ""))
    pipes = {len(re.findall(r"(?<!\\)\|", line)) for line in table}
    assert pipes == {table[0].count("|")}  # every row has the header's cells

    latex = (folder / "comparison.tex").read_text()
    body = latex.split("\\midrule\n")[1].split("\\bottomrule")[0].splitlines()
    assert len(body) == len(names) and all(line.startswith("\\texttt{") for line in body)
    assert not bad_characters(latex.replace("\n", ""))
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["latency_bars.png", "latency_vs_gflops.png"]

    page = (folder / "report.html").read_text(encoding="utf-8")  # compare's page, beside the tables
    assert "<img src=x" not in page and "<b>bold" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert not bad_characters(page.replace("\n", "")) and "\\u202eevil" in page
    assert page.count('<tr data-model="') == 2 * len(names)  # a row in the ablation table and in the latency one


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def field_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """The place of every key at every depth, and of the first element of every list."""
    paths = []
    if isinstance(value, dict):
        children = list(value.items())
    else:
        children = [(0, value[0])] if isinstance(value, list) and value else []
    for key, child in children:
        paths.append((*prefix, key))
        paths.extend(field_paths(child, (*prefix, key)))
    return paths


def wrong_values(original: Any) -> list[Any]:
    """Values of another type, or of the right type but out of range, for a field holding `original`."""
    if isinstance(original, bool):
        return ["yes", 2]
    if isinstance(original, (int, float)):
        return ["1", None, -1.0, 0, 1e-300, 1e300, 10**30, [], True]
    if isinstance(original, str):
        return [1, None, [], "\x1b[31m=1|<b>\n"]
    if isinstance(original, list):
        return [{}, "x", None, [None], [{"a": 1}], ["x"], [-1]]
    if isinstance(original, dict):
        return [[], "x", None, 1]
    return ["x", -1, [], {}]


def mutated(report: dict[str, Any], path: tuple, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(report)
    place = changed
    for key in path[:-1]:
        place = place[key]
    place[path[-1]] = value
    return changed


def test_every_field_of_a_report_made_wrong_is_skipped_or_compared(tmp_path, study_report, monkeypatch):
    """Each field of a real study report set to each wrong value: a warning naming the file, or a row."""
    # three tables written per case, over a thousand cases: their flushes to disk are not what is tested here
    monkeypatch.setattr("detbench.files.atomic.os.fsync", lambda fd: None)
    base = study_report
    folder = tmp_path / "bench"
    put(folder, "baseline.json", base)
    other = variant(base, "other", 1.1)
    cases = [(path, value) for path in field_paths(other) for value in wrong_values(_at(other, path))]
    assert len(cases) > 1000
    outcomes = {"skipped": 0, "compared": 0}
    for path, value in cases:
        target = put(folder, "other.json", mutated(other, path, value))
        lines: list[str] = []
        found: list[str] = []
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy or scipy complaining would be noise on the terminal
            assert run_compare(folder, output=tmp_path / "c.csv", formats=("md", "latex"), echo=lines.append,
                               warn=found.append) == 0
        assert all(not bad_characters(line) for line in lines + found), (path, value)
        with open(tmp_path / "c.csv", newline="") as handle:
            compared = len(list(csv.DictReader(handle)))
        if found:
            assert len(found) == 1 and str(target) in found[0] and compared == 1, (path, value, found)
            outcomes["skipped"] += 1
        else:
            assert compared == 2, (path, value)
            outcomes["compared"] += 1
    assert outcomes["skipped"] > 200 and outcomes["compared"] > 200, outcomes


def _at(report: dict[str, Any], path: tuple) -> Any:
    for key in path:
        report = report[key]
    return report


REPRESENTATIVE = [
    (("inputs",), None), (("settings",), []), (("samples",), "x"), (("environment",), [1]),
    (("metadata", "imgsz"), "640"), (("metadata", "batch"), 0), (("metadata", "weights"), {"p": 1}),
    (("metadata", "device"), ["cpu"]), (("metadata", "model_name"), 7), (("study",), [1]),
    (("samples", "round"), [0]), (("samples", "worker", 0), -1), (("study", "looks_at_rounds"), [0]),
    (("study", "id"), ["x"]), (("model_complexity",), []),
    (("model_complexity", "gflops"), -1), (("throughput",), 1), (("throughput", "fps_mean"), "fast"),
    (("memory",), None), (("memory", "peak_rss_MB"), 1e300), (("statistics",), "x"), (("pipeline",), [1]),
    (("gpu",), "H200"), (("warnings",), "noisy"), (("notes",), [1, 2]), (("latency", "median_ms"), 0),
    (("latency", "p95_ms"), -1.0), (("samples", "latency_ms"), [1.0, -2.0]), (("samples", "latency_ms", 0), None),
    (("samples", "latency_ms"), [True]), (("environment", "cpu"), ["x"]), (("settings", "threads"), 1.5),
]


def test_representative_bad_reports_in_one_folder_from_the_command_line(tmp_path, study_report):
    folder = tmp_path / "bench"
    put(folder, "baseline.json", study_report)
    put(folder, "fine.json", variant(study_report, "fine", 1.2))
    bad = [put(folder, f"bad{i:02d}.json", mutated(variant(study_report, f"bad{i}"), path, value))
           for i, (path, value) in enumerate(REPRESENTATIVE)]
    result = run_cli("compare", str(folder), "--table-format", "md", "--table-format", "latex", "--plots",
                     str(tmp_path / "plots"), cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    warned = [line for line in one_line_each(result.stderr) if line]
    assert all(line.startswith("warning: skipped ") for line in warned), warned
    for path in bad:
        assert sum(str(path) in line for line in warned) == 1, (path, warned)
    lines = result.stdout.splitlines()
    table = lines[lines.index("Base metrics:") + 2:lines.index("Change relative to baseline:")]
    assert sorted(line.split()[0] for line in table) == ["baseline", "fine"]


def test_extreme_values_within_the_limits_are_compared_and_plotted(tmp_path, real_report):
    """Latencies of 1 ns against 1e12 ms, zero memory and GFLOPs: no overflow, warning or error."""
    folder = tmp_path / "bench"
    for name, value in (("baseline", MIN_LATENCY_MS), ("other", MAX_MEASURE)):
        report = variant(real_report, name)
        report["latency"].update(dict.fromkeys(("mean_ms", "median_ms", "p50_ms", "p95_ms", "p99_ms", "min_ms",
                                                "max_ms"), value), std_ms=0.0)
        report["samples"]["latency_ms"] = [value] * 5
        report["throughput"] = {"fps_mean": 1e-300 if name == "baseline" else MAX_MEASURE, "fps_p50": None}
        report["memory"]["model_memory_MB"] = 0.0 if name == "baseline" else MAX_MEASURE
        report["model_complexity"].update(gflops=0.0 if name == "baseline" else MAX_MEASURE, params_M=MAX_MEASURE)
        put(folder, f"{name}.json", report)
    lines: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_compare(folder, output=tmp_path / "c.csv", formats=("md", "latex"), plots_dir=tmp_path / "plots",
                    echo=lines.append, warn=pytest.fail)
    with open(tmp_path / "c.csv", newline="") as handle:
        other = next(row for row in csv.DictReader(handle) if row["model"] == "other")
    assert other["verdict"] == "untested" and float(other["latency_delta_pct"]) == pytest.approx(1e20)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_constants_are_refused(tmp_path, real_report, constant):
    raw = json.dumps(variant(real_report, "other")).replace('"mean_ms": ', f'"mean_ms": {constant}, "was": ', 1)
    path = tmp_path / "other.json"
    path.write_text(raw)
    with pytest.raises(DetbenchError, match=rf"^{re.escape(str(path))}: holds {constant}, which JSON does not "
                                            r"allow; the file was edited or damaged"):
        load_report(path)


def test_devices_fifos_and_folders_named_json_are_skipped_without_hanging(tmp_path, real_report):
    folder = tmp_path / "bench"
    put(folder, "baseline.json", real_report)
    put(folder, "other.json", variant(real_report, "other", 1.3))
    (folder / "zero.json").symlink_to("/dev/zero")
    os.mkfifo(folder / "fifo.json")
    (folder / "folder.json").mkdir()
    (folder / "gone.json").symlink_to(tmp_path / "nothing")
    put(folder, "evil\x1b[2J.json", [1])
    result = run_cli("compare", str(folder), timeout=120)
    assert result.returncode == 0, result.stderr
    warned = one_line_each(result.stderr)
    expected = {"zero.json": "is a device, not a regular file", "fifo.json": "is a FIFO (named pipe)",
                "folder.json": "is a folder, not a regular file", "gone.json": "file not found",
                "evil\\x1b[2J.json": "not a detbench report"}
    for name, problem in expected.items():
        assert any(str(folder / name) in line and problem in line for line in warned), (name, warned)
    assert "other" in result.stdout


def test_huge_report_is_refused_by_size(tmp_path, real_report, monkeypatch):
    from detbench.report import schema as report

    monkeypatch.setattr(report, "MAX_REPORT_BYTES", 1000)
    path = put(tmp_path, "big.json", real_report)
    with pytest.raises(DetbenchError, match=r"big.json: is .* above detbench's limit of 1000 bytes"):
        load_report(path)


def test_own_files_are_left_out_and_other_skipped_files_are_named(tmp_path, real_report):
    folder = tmp_path / "bench"
    for name in ("baseline", "ablation_v2", "comparison_fast", "benchmark_list_old"):
        put(folder, f"{name}.json", variant(real_report, name))
    put(folder, "ablation_summary.json", {"kind": "detbench ablation summary", "models": []})
    put(folder, "comparison.json", [])
    put(folder, "Study.json", "not json")  # reserved stems are matched without case
    put(folder, "sweep-results.json", {"kind": "detbench sweep", "runs": []})
    put(folder, "notes.json", {"kind": "my notes"})
    put(folder, ".hidden.json", variant(real_report, "hidden"))
    found: list[str] = []
    files = report_files([folder], found.append)
    assert [p.name for p in files] == ["ablation_v2.json", "baseline.json", "benchmark_list_old.json",
                                       "comparison_fast.json", "notes.json", "sweep-results.json"]
    assert found == [f"skipped {folder / '.hidden.json'}: a hidden file; rename it without the leading '.' to "
                     "compare it"]
    lines: list[str] = []
    found.clear()
    run_compare(folder, echo=lines.append, warn=found.append)
    assert len(found) == 2 and str(folder / "notes.json") in found[1] and "schema_version" in found[1]
    shown = {line.split()[0] for line in lines if line[:1].isalpha()}
    assert {"ablation_v2", "comparison_fast", "benchmark_list_old"} <= shown


def test_accuracy_beside_hostile_weights_is_read_safely(tmp_path, real_report):
    folder = tmp_path / "bench"
    put(folder, "baseline.json", real_report)
    cases = {"device": lambda p: p.symlink_to("/dev/zero"), "fifo": lambda p: os.mkfifo(p),
             "ragged": lambda p: p.write_text("epoch,metrics/mAP50(B),metrics/mAP50-95(B)\n1,0.5,0.3,9,9\n2,x\n"),
             "binary": lambda p: p.write_bytes(b"\xff\xfe\x00")}
    for name, make in cases.items():
        run = tmp_path / "runs" / name
        (run / "weights").mkdir(parents=True)
        make(run / "results.csv")
        report = variant(real_report, name)
        report["metadata"].update(weights=str(run / "weights" / "best.pt"), model_source="checkpoint")
        put(folder, f"{name}.json", report)
    for name in ("/dev/weights/best.pt", "a\x00b/weights/best.pt", "x" * 4000 + "/weights/best.pt"):
        report = variant(real_report, f"odd{len(name)}")
        report["metadata"].update(weights=name, model_source="checkpoint")
        put(folder, f"odd{len(name)}.json", report)
    result = run_cli("compare", str(folder), "--output", str(tmp_path / "c.csv"), timeout=120)
    assert result.returncode == 0, result.stderr
    warned = one_line_each(result.stderr)
    assert any("no mAP for device:" in line and "is a device" in line for line in warned), warned
    assert any("no mAP for fifo:" in line and "is a FIFO" in line for line in warned), warned
    assert any("no mAP for binary:" in line and "is not UTF-8" in line for line in warned), warned
    with open(tmp_path / "c.csv", newline="") as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    assert float(rows["ragged"]["mAP50"]) == 0.5 and len(rows) == 8


def put_two_reports(folder: Path, real_report: dict[str, Any]) -> Path:
    put(folder, "baseline.json", real_report)
    put(folder, "other.json", variant(real_report, "other", 1.2))
    return folder


@pytest.fixture
def two_reports(tmp_path, real_report) -> Path:
    return put_two_reports(tmp_path / "bench", real_report)


OUTPUT_PLACES = [
    (["--output", "{bench}"], "error: --output {bench}: is a folder, not a file; give a file path"),
    (["--output", "{bench}/baseline.json/c.csv"],
     "error: --output {bench}/baseline.json/c.csv: {bench}/baseline.json is a file, not a folder"),
    (["--output", "/dev/null"], "error: --output /dev/null: exists and is not a regular file"),
    (["--output", "{tmp}/c.csv", "--table-format", "md", "--table-format", "latex", "--plots", "{bench}/other.json"],
     "error: --plots {bench}/other.json: {bench}/other.json is a file, not a folder; give a folder"),
    (["--table-format", "md", "--output", "{tmp}/folder.csv"], "error: --output {tmp}/folder.csv: is a folder"),
    (["--output", "{bench}/other.json"], "error: --output {bench}/other.json: is one of the reports being compared"),
    (["--output", "{tmp}/c.md"], "error: --output {tmp}/c.md: names the CSV, and the .md and .tex are written beside "
                                 "it; give a .csv path, e.g. --output {tmp}/c.csv"),
]


@pytest.fixture(scope="module")
def output_place_runs(tmp_path_factory, real_report) -> list[tuple[Path, dict[str, Path], Any, Any]]:
    """Each OUTPUT_PLACES case in a folder of its own (two reports in bench/, a folder named folder.csv beside):
    the folder, the values of its placeholders, its snapshot before, and the outcome of its `detbench compare`
    (all of them in one child, each as its own process would end)."""
    prepared, cases = [], {}
    for i, (flags, _) in enumerate(OUTPUT_PLACES):
        folder = tmp_path_factory.mktemp(f"place{i}")
        values = {"bench": put_two_reports(folder / "bench", real_report), "tmp": folder}
        (folder / "folder.csv").mkdir()
        prepared.append((folder, values, snapshot(folder)))
        cases[str(i)] = (["compare", values["bench"], *[flag.format(**values) for flag in flags]], folder)
    outcomes = run_cli_batch(cases, tmp_path_factory.mktemp("batch"), imports=COMPARE_IMPORTS)
    return [(*prepared[i], outcomes[str(i)]) for i in range(len(OUTPUT_PLACES))]


@pytest.mark.parametrize("flags, message", OUTPUT_PLACES)
def test_output_places_are_checked_before_anything_is_written(output_place_runs, flags, message):
    folder, values, before, result = output_place_runs[OUTPUT_PLACES.index((flags, message))]
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(message.format(**values)), result.stderr
    assert snapshot(folder) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in a folder without write permission")
def test_unwritable_output_folder_is_refused_up_front(tmp_path, two_reports):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = run_cli("compare", str(two_reports), "--output", str(locked / "c.csv"))
    finally:
        locked.chmod(0o755)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"error: --output {locked / 'c.csv'}: cannot write in {locked}")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_write_errors_are_one_line_naming_the_table(tmp_path, two_reports, monkeypatch, code):
    def failing(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr("detbench.files.atomic.os.fsync", failing)
    target = tmp_path / "out" / "c.csv"
    with pytest.raises(DetbenchError) as info:
        run_compare(two_reports, output=target, echo=lambda line: None)
    assert str(info.value) == (f"{target}: cannot write the table ({os.strerror(code)}); free some space or "
                               "choose another place with --output")
    assert not target.exists() and list((tmp_path / "out").iterdir()) == []


def test_write_error_from_the_command_line_has_no_traceback(tmp_path, two_reports):
    result = run_cli("compare", str(two_reports), "--output", "/proc/detbench-test/c.csv")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert re.match(r"error: (--output )?/proc/detbench-test/c.csv: cannot ", result.stderr), result.stderr


def test_plot_that_cannot_be_written_is_one_line(tmp_path, two_reports):
    plots = tmp_path / "plots"
    (plots / "latency_bars.png").mkdir(parents=True)
    result = run_cli("compare", str(two_reports), "--plots", str(plots))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == (f"error: {plots / 'latency_bars.png'}: cannot write the plot (Is a directory); free "
                             "some space or choose another folder with --plots\n")
    assert not list(plots.glob(".*.tmp"))  # the PNG was written beside it and removed, never half-written in place


@pytest.mark.slow
def test_replaying_a_huge_study_has_a_bounded_cost(tmp_path):
    """Six models of 1,000,000 samples each and 20 looks, the most a report may list: seconds, not hours."""
    rng = np.random.default_rng(0)
    n = 500_000
    models = {name: paired.worker_series(rng.lognormal(0.0, 0.05, 2 * n), list(range(n)) * 2, [0] * n + [1] * n)
              for name in ("baseline", "a", "b", "c", "d", "e")}
    start = time.process_time()  # its cost, whatever else shares the machine
    results = paired.replay(models, "baseline", 0.05, 0.02, [n * (k + 1) // 20 for k in range(20)], 20)
    assert time.process_time() - start < 60
    assert len(results) == 5 and all(r.verdict == paired.EQUIVALENT for r in results)
