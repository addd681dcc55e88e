"""detbench compare on the command line: tables beside the reports, formats, bad files, the baseline, accuracy of a
real Ultralytics run."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import captured, make_report, save, spread, table_row


def test_bad_files_are_skipped_with_a_warning_and_none_left_is_an_error(tmp_path, cli):
    save(tmp_path, make_report("baseline", spread(5.0)))
    save(tmp_path, make_report("ghost", spread(4.0)))
    save(tmp_path, make_report("ablation_v2", spread(4.5)))  # a model's report, whatever its name starts with
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "benchmark_list.json").write_text("[]")  # detbench's own names: not reports, never read
    (tmp_path / "ablation_summary.json").write_text(json.dumps({"kind": "detbench ablation summary"}))
    failed = make_report("p2", spread(5.0))
    failed.update(status="failed", error="CUDA out of memory")
    (tmp_path / "p2.json").write_text(json.dumps(failed))
    _, lines, warnings = captured(report_paths_or_dir=tmp_path)
    assert len(warnings) == 2
    assert "broken.json" in warnings[0] and "not valid JSON" in warnings[0]
    assert "p2" in warnings[1] and "CUDA out of memory" in warnings[1]
    assert "ghost" in "\n".join(lines) and table_row(lines, "Params Δ", "ablation_v2")[2] == "-10.0"

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "x.json").write_text("{}")
    result = cli("compare", "--dir", str(empty))
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()
    assert error[-1].startswith("error: no readable benchmark report") and "x.json" in error[0]


def test_missing_baseline_is_one_clear_line_and_baseline_flag_works(tmp_path, cli):
    save(tmp_path, make_report("yolov8n", spread(5.0)))
    save(tmp_path, make_report("yolov8s", spread(9.0)))
    result = cli("compare", "--dir", str(tmp_path))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == ("error: no report of a model named 'baseline' (models: yolov8n, yolov8s); "
                                     "pass --baseline NAME")
    result = cli("compare", str(tmp_path / "yolov8n.json"), str(tmp_path / "yolov8s.json"), "--baseline", "yolov8n",
                 "--output", str(tmp_path / "out" / "cmp.csv"), "--table-format", "md", "--table-format", "latex")
    assert result.returncode == 0, result.stderr
    assert "yolov8s" in result.stdout and "Change relative to baseline:" in result.stdout
    with open(tmp_path / "out" / "cmp.csv", newline="") as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    assert float(rows["yolov8s"]["latency_delta_pct"]) == pytest.approx(80.0)
    assert rows["yolov8s"]["verdict"] == "untested" and rows["yolov8n"]["verdict"] == "baseline"
    assert rows["yolov8s"]["statistic"] == "ratio of medians" and rows["yolov8s"]["p_value"] == ""
    assert "mAP50" not in rows["yolov8s"]  # no run folder: no accuracy columns
    markdown = (tmp_path / "out" / "cmp.md").read_text()
    n = len(spread(9.0))  # the samples behind the median
    assert f"| yolov8s | 3.00 | 8.00 | 9.00 | {n} | +80.0 |" in markdown  # separate runs: ratio of medians
    assert "Δ: ratio of medians against yolov8n, from separate runs (not tested)." in markdown
    latex = (tmp_path / "out" / "cmp.tex").read_text()
    assert r"\toprule" in latex and f"\\texttt{{yolov8s}} & 3.00 & 8.00 & 9.00 & {n} & +80.0 \\" in latex
    assert r"$\Delta$ latency & " not in latex and r"& $\Delta$ latency \\" in latex
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_formats_without_output_go_into_dir(tmp_path, cli):
    save(tmp_path, make_report("baseline", spread(5.0)))
    save(tmp_path, make_report("ghost", spread(4.0)))
    result = cli("--table-format", "csv", "--table-format", "md", cwd=tmp_path, script="compare_benchmarks.py")
    assert result.returncode == 2  # the default --dir does not exist here
    assert result.stderr == ("error: results/bench: no such folder of reports; run `detbench bench` first or "
                             "pass --dir\n")
    bench = tmp_path / "results" / "bench"
    bench.mkdir(parents=True)
    for name in ("baseline.json", "ghost.json"):
        (tmp_path / name).rename(bench / name)
    # the old spelling still works, with one warning line
    result = cli("--format", "csv", "--format", "md", cwd=tmp_path, script="compare_benchmarks.py")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "warning: --format is deprecated for compare; use --table-format\n"
    assert (bench / "comparison.csv").is_file() and (bench / "comparison.md").is_file()
    again = cli(cwd=tmp_path, script="compare_benchmarks.py")  # its own outputs are not reports
    assert again.returncode == 0 and again.stderr == ""


def test_tables_go_next_to_the_reports_compared(tmp_path, cli):
    """Without --output: into the folder compared (not the --dir default), or the common folder of the files."""
    default = tmp_path / "results" / "bench"
    save(default, make_report("baseline", spread(5.0)))
    study = tmp_path / "study"
    for imgsz, scale in ((640, 1.0), (1280, 4.0)):
        save(study / f"s{imgsz}", make_report("baseline", spread(5.0 * scale), imgsz=imgsz))
        save(study / f"s{imgsz}", make_report("ghost", spread(4.0 * scale), imgsz=imgsz))
    result = cli("compare", str(study / "s640"), "--table-format", "md", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == [f"✓ saved: {study / 's640' / 'comparison.md'}",
                                               f"✓ saved: {study / 's640' / 'report.html'}"]
    assert sorted(p.name for p in default.iterdir()) == ["baseline.json"]
    result = cli("compare", str(study / "s640" / "baseline.json"), str(study / "s1280" / "ghost.json"),
                 "--table-format", "latex", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == [f"✓ saved: {study / 'comparison.tex'}",
                                               f"✓ saved: {study / 'report.html'}"]


def test_accuracy_joined_from_a_real_ultralytics_run(tmp_path, trained_run):
    weights = trained_run / "weights" / "best.pt"
    save(tmp_path, make_report("baseline", spread(5.0), weights=str(weights)))
    save(tmp_path, make_report("ghost", spread(4.0)))
    with open(trained_run / "results.csv", newline="") as handle:
        last = [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(handle)][-1]
    _, lines, _ = captured(report_paths_or_dir=tmp_path, output=tmp_path / "c.csv", plots_dir=tmp_path / "plots")
    header = lines[3].split("  ")
    assert header[-2:] == ["mAP50", "mAP50-95"]
    baseline = table_row(lines, "Params (M)", "baseline")
    assert baseline[-2:] == [f"{float(last['metrics/mAP50(B)']):.3f}", f"{float(last['metrics/mAP50-95(B)']):.3f}"]
    assert table_row(lines, "Params (M)", "ghost")[-2:] == ["-", "-"]
    with open(tmp_path / "c.csv", newline="") as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    assert rows["baseline"]["map_source"] == str(trained_run / "results.csv") and rows["ghost"]["mAP50"] == ""
