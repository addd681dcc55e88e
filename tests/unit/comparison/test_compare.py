"""`detbench compare`: deltas, grouping, verdicts (paired within a study, untested across runs), accuracy, tables,
plots. The study itself runs end to end in test_ablation.py."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from conftest import captured, make_report, save, spread, study_report, table_row

from detbench.comparison.accuracy import CURRENT_WEIGHTS, LEGACY_WEIGHTS, best_epoch, fitness_weights
from detbench.comparison.analysis import build_comparison, load_entries, report_files
from detbench.comparison.plots import pareto_front, write_plots
from detbench.comparison.tables import csv_text, design_note
from detbench.errors import DetbenchError
from detbench.report.schema import validate_report
from detbench.stats import paired


def test_reports_of_one_study_get_paired_verdicts_and_separate_runs_get_none(tmp_path):
    for name, factor, seed in (("baseline", 1.0, 1), ("p2", 1.6, 2), ("twin", 1.0, 3)):
        save(tmp_path / "study", study_report(name, factor, seed=seed))
    comparison = build_comparison(load_entries(report_files([tmp_path / "study"]), print))
    rows = {row.name: row for row in comparison.groups[0].rows}
    assert comparison.groups[0].study_id == "s1"
    assert rows["p2"].verdict.verdict == "slower" and 55 < rows["p2"].verdict.delta_pct < 65
    low, high = rows["p2"].verdict.ci_pct
    assert 2 < low < 60 < high
    assert rows["twin"].verdict.verdict in ("equivalent", "undecided")
    # only some of a study's reports: its Holm family and process pool cannot be rebuilt, so no verdicts
    partial = build_comparison(load_entries([tmp_path / "study" / "baseline.json", tmp_path / "study" / "p2.json"],
                                            print))
    assert partial.groups[0].study_id is None and "missing: twin" in partial.groups[0].untested_why
    assert {row.verdict.verdict for row in partial.groups[0].rows if row.verdict} == {"untested"}
    # a report from another study (or a plain bench run) next to the study's: no pairing, no verdict for it
    save(tmp_path / "study", study_report("stranger", 1.6, seed=4, study_id="s2"))
    mixed = build_comparison(load_entries(report_files([tmp_path / "study"]), print))
    rows = {row.name: row for row in mixed.groups[0].rows}
    assert mixed.groups[0].study_id == "s1" and rows["p2"].verdict.verdict == "slower"
    assert rows["stranger"].verdict.verdict == "untested" and "not part of the baseline's study" in \
        rows["stranger"].verdict.reason
    assert (rows["p2"].latency_delta_kind, rows["p2"].latency_delta_ci_pct) == ("tested", rows["p2"].verdict.ci_pct)
    assert rows["p2"].latency_delta_pct == rows["p2"].verdict.delta_pct and rows["baseline"].latency_delta_kind == \
        "tested"
    assert (rows["stranger"].latency_delta_kind, rows["stranger"].latency_delta_ci_pct) == ("ratio of medians", None)
    code, lines, _ = captured(report_paths_or_dir=tmp_path / "study")
    assert [line.split()[0] for line in lines[4:8]] == ["baseline", "p2", "twin", "stranger"]  # the study's order
    assert "Latency Δ (%, tested)" in lines[9] and table_row(lines, "Params Δ", "stranger")[2].endswith("†")
    assert "† ratio of medians: not part of the baseline's study s1, so not tested" in lines
    code, lines, _ = captured(report_paths_or_dir=[tmp_path / "study" / "baseline.json",
                                                   tmp_path / "study" / "stranger.json"])
    assert code == 0 and "untested" in table_row(lines, "Params Δ", "stranger")
    assert any("separate runs" in line for line in lines)


@pytest.mark.parametrize("shared", [False, True])
def test_each_study_is_replayed_with_its_own_design(tmp_path, shared):
    """Reports recorded without `processes_hold_every_model` replay the older analysis exactly as before (each
    model's workers apart, a process variance component); with it, the rounds are paired within each process,
    the processes' agreement is tested, and the footnote says so."""
    for name, factor, seed in (("baseline", 1.0, 1), ("p2", 1.6, 2), ("twin", 1.0, 3)):
        report = study_report(name, factor, seed=seed)
        if shared:
            report["study"]["processes_hold_every_model"] = True
        save(tmp_path / "study", report)
    comparison = build_comparison(load_entries(report_files([tmp_path / "study"]), print))
    group = comparison.groups[0]
    series = {row.entry.model_name: row.entry.worker_series() for row in group.rows}
    expected = {r.model: r.as_dict() for r in paired.replay(series, "baseline", 0.05, 0.02, [60], 1, 2,
                                                            shared=shared)}
    assert {row.name: row.verdict.as_dict() for row in group.rows if not row.is_baseline} == expected
    assert all(("process_agreement" in found) is shared for found in expected.values())
    assert ("paired within each process" in design_note(group)) is shared
    assert ("with a process variance component" in design_note(group)) is not shared


def test_a_studys_pairing_lists_must_match_its_samples(tmp_path):
    report = study_report("baseline", 1.0)
    report["samples"]["round"] = report["samples"]["round"][:-1]
    with pytest.raises(DetbenchError, match="samples.round is not one entry per latency sample"):
        validate_report(report, "r.json")
    report = study_report("baseline", 1.0)
    report["samples"]["worker"][0] = 10**9
    with pytest.raises(DetbenchError, match="samples.worker holds values that are not integers"):
        validate_report(report, "r.json")


def test_deltas_against_baseline_and_sorting(tmp_path):
    save(tmp_path, make_report("baseline", spread(5.0), params_m=4.0, mem=500.0))
    save(tmp_path, make_report("ghost", spread(4.5), params_m=3.0, mem=450.0))
    save(tmp_path, make_report("p2", spread(5.0 * 1.005), params_m=4.4, mem=520.0))
    code, lines, warnings = captured(report_paths_or_dir=tmp_path)
    assert code == 0 and not warnings
    assert lines[0] == "Model performance benchmark comparison"
    assert "Mem (MB, model)" in lines[3] and "GPU Mem" not in "\n".join(lines)
    base_models = [line.split()[0] for line in lines[4:7]]
    assert base_models == ["baseline", "ghost", "p2"]  # the baseline, then the zoo's ablation order
    p95 = f"{np.percentile(spread(4.5), 95):.2f}"
    median = f"{np.median(spread(4.5)):.2f}"
    n = str(len(spread(4.5)))  # the samples behind the latency columns
    assert table_row(lines, "Params (M)", "ghost")[1:9] == ["3.00", "8.00", "4.50", median, p95, n, "222.2", "450.0"]
    assert "Latency Δ (%, ratio of medians)" in lines[8]  # separate runs: one latency Δ, said what it is
    ghost = table_row(lines, "Params Δ", "ghost")
    assert ghost[1:5] == ["-25.0", "-10.0", "+11.1", "-10.0"] and ghost[-1] == "untested"  # every change signed
    assert table_row(lines, "Params Δ", "baseline")[1:5] == ["0.0"] * 4
    p2 = table_row(lines, "Params Δ", "p2")
    assert p2[2] == "+0.5" and p2[-1] == "untested"
    assert any("separate runs" in line for line in lines)

    comparison = build_comparison(load_entries(report_files([tmp_path]), print))
    rows = {row.name: row for row in comparison.groups[0].rows}
    assert rows["ghost"].deltas["fps"] == pytest.approx(100 * ((1000 / 4.5) / (1000 / 5.0) - 1))
    assert rows["ghost"].deltas["latency"] == pytest.approx(-10.0)  # the spec's change of the mean, in the CSV
    ghost = rows["ghost"]
    assert ghost.latency_delta_pct == pytest.approx(100 * (ghost.median_ms / rows["baseline"].median_ms - 1))
    assert (ghost.latency_delta_kind, ghost.latency_delta_ci_pct) == ("ratio of medians", None)
    assert rows["baseline"].latency_delta_pct == 0.0 and ghost.map_seeds is None and ghost.map50_mean is None


def test_cuda_reports_show_peak_gpu_memory(tmp_path):
    for name, latency, gpu_mem in (("baseline", 5.23, 512.5), ("ghost", 4.67, 464.8)):
        report = make_report(name, spread(latency), mem=2048.0, device="cuda:0")
        report["memory"]["peak_gpu_mem_MB"] = gpu_mem
        report["environment"]["gpu_name"] = "NVIDIA H200"
        save(tmp_path, report)
    _, lines, _ = captured(report_paths_or_dir=tmp_path)
    assert lines[3].endswith("GPU Mem (MB)") and "NVIDIA H200" in lines[1]
    assert table_row(lines, "Params (M)", "ghost")[-1] == "464.8"
    assert table_row(lines, "Params Δ", "ghost")[2:5] == ["-10.7", "+12.0", "-9.3"]  # the user's example figures


def test_incomparable_reports_are_grouped_with_reason(tmp_path):
    save(tmp_path, make_report("baseline", spread(5.0)))
    save(tmp_path, make_report("ghost", spread(4.0)))
    save(tmp_path, make_report("big", spread(9.0), imgsz=1280))
    other_inputs = make_report("eca", spread(5.1))
    other_inputs["inputs"]["decoded_sha256"] = "c" * 64
    save(tmp_path, other_inputs)
    _, lines, _ = captured(report_paths_or_dir=[tmp_path])
    text = "\n".join(lines)
    assert "3 groups of reports" in text
    assert "not comparable with group 1: imgsz 1280 vs 640" in text
    assert f"not comparable with group 1: decoded inputs {'c' * 12} vs {'b' * 12}" in text
    first_delta = lines.index("Change relative to baseline:")
    group2 = next(i for i, line in enumerate(lines) if line.startswith("Group 2"))
    assert first_delta < group2 and text.count("Change relative to baseline:") == 1
    assert text.count("No change table: no model named 'baseline'") == 2


def test_layout_tf32_and_software_versions_split_groups(tmp_path):
    """Channels-last, TF32 and another torch or driver are other settings: never one delta table."""
    def cuda(name, **settings):
        report = make_report(name, spread(5.0), device="cuda:0")
        report["settings"].update(settings)
        report["environment"].update(torch="2.14.1", torch_cuda="13.0", cudnn_version=91000)
        report["gpu"] = {"driver": "580.1"}
        return report

    save(tmp_path, cuda("baseline"))
    save(tmp_path, cuda("ghost", tf32_conv=True))  # torch's default, as a report that predates the field ran
    save(tmp_path, cuda("eca", tf32_conv=False, tf32_matmul=False))
    save(tmp_path, cuda("p2", channels_last=True))
    newer = cuda("ghost_eca")
    newer["gpu"] = {"driver": "590.2"}
    save(tmp_path, newer)
    _, lines, _ = captured(report_paths_or_dir=[tmp_path])
    text = "\n".join(lines)
    assert "4 groups of reports" in text
    assert "modes channels-last, eager, cudnn.benchmark on, TF32 conv on, matmul off vs contiguous" in text
    assert "TF32 conv off, matmul off vs contiguous, eager, cudnn.benchmark on, TF32 conv on" in text
    assert "software torch 2.14.1, CUDA 13.0, cuDNN 91000, driver 590.2 vs torch 2.14.1, CUDA 13.0, cuDNN 91000, "\
           "driver 580.1" in text
    comparison = build_comparison(load_entries(report_files([tmp_path]), print))
    assert sorted(row.name for row in comparison.groups[0].rows) == ["baseline", "ghost"]


def test_each_setting_with_its_own_baseline_gets_its_own_deltas(tmp_path):
    """The user's image-size study: the same models at 640 and at 1280, in two folders."""
    for imgsz, scale in ((640, 1.0), (1280, 4.0)):
        folder = tmp_path / f"s{imgsz}"
        save(folder, make_report("baseline", spread(5.0 * scale), imgsz=imgsz))
        save(folder, make_report("ghost", spread(4.0 * scale), imgsz=imgsz))
    _, lines, _ = captured(report_paths_or_dir=[tmp_path / "s640", tmp_path / "s1280"])
    text = "\n".join(lines)
    assert text.count("Change relative to baseline:") == 2 and "imgsz 1280 vs 640" in text
    assert "baseline [s640/baseline.json]" in text and "ghost [s1280/ghost.json]" in text
    assert table_row(lines, "Params Δ", "ghost", nth=0)[1:4] == ["[s640/ghost.json]", "0.0", "-20.0"]
    assert table_row(lines, "Params Δ", "ghost", nth=1)[1:4] == ["[s1280/ghost.json]", "0.0", "-20.0"]


def test_best_epoch_by_fitness_with_padded_headers(tmp_path):
    results = tmp_path / "results.csv"
    results.write_text("                  epoch,  metrics/mAP50(B),  metrics/mAP50-95(B)\n"
                       "                      1,           0.60,              0.30\n"
                       "                      2,           0.90,              0.31\n"
                       "                      3,           0.50,              0.32\n"
                       "                      4,           0.40,              0.32\n")
    assert fitness_weights("8.3.40") == LEGACY_WEIGHTS and fitness_weights("8.4.190") == CURRENT_WEIGHTS
    legacy = best_epoch(results, LEGACY_WEIGHTS)
    assert (legacy.epoch, legacy.map50, legacy.map50_95) == (2, 0.90, 0.31)
    current = best_epoch(results, CURRENT_WEIGHTS)
    assert (current.epoch, current.map50) == (4, 0.40)  # tie on mAP50-95: the trainer keeps the later epoch
    results.write_text("epoch,train/box_loss\n1,0.5\n")
    assert best_epoch(results) is None


def test_pareto_front():
    points = [(1.0, 5.0), (2.0, 4.0), (3.0, 4.5), (0.5, 9.0), (2.0, 4.0)]
    assert pareto_front(points) == [3, 0, 1, 4]
    assert pareto_front([(0.3, 5.0), (0.4, 6.0), (0.2, 7.0)]) == [2, 0]


def test_plots_are_written_as_png(tmp_path):
    reports = [make_report("baseline", spread(5.0), gflops=8.2), make_report("ghost", spread(4.6), gflops=6.5),
               make_report("p2", spread(7.0), gflops=12.0), make_report("eca", spread(5.3), gflops=8.3)]
    for report, (m50, m5095) in zip(reports, [(0.5, 0.3), (0.45, 0.28), (0.6, 0.36), (0.52, 0.31)], strict=True):
        run = tmp_path / "runs" / report["metadata"]["model_name"]
        (run / "weights").mkdir(parents=True)
        (run / "results.csv").write_text(f"epoch,metrics/mAP50(B),metrics/mAP50-95(B)\n1,{m50},{m5095}\n")
        report["metadata"]["weights"] = str(run / "weights" / "best.pt")
        save(tmp_path, report)
    comparison = build_comparison(load_entries(report_files([tmp_path]), print))
    paths = write_plots(comparison, tmp_path / "plots")
    assert sorted(p.name for p in paths) == ["latency_bars.png", "latency_vs_gflops.png", "latency_vs_map.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_same_map_for_every_model_skips_that_plot_with_a_note_and_legends_name_only_what_is_drawn(tmp_path,
                                                                                                  monkeypatch):
    import detbench.comparison.plots as plots

    # ghost is faster but costs more GFLOPs: a trade-off, so both are on the front and none is dominated
    reports = [make_report("baseline", spread(5.0), gflops=8.2), make_report("ghost", spread(4.6), gflops=9.0)]
    for report in reports:
        run = tmp_path / "runs" / report["metadata"]["model_name"]
        (run / "weights").mkdir(parents=True)
        (run / "results.csv").write_text("epoch,metrics/mAP50(B),metrics/mAP50-95(B)\n1,0,0\n")
        report["metadata"]["weights"] = str(run / "weights" / "best.pt")
        save(tmp_path, report)
    legends = {}

    def keep_legend(fig, path):
        legend = fig.axes[0].get_legend()
        legends[path.name] = [t.get_text() for t in legend.get_texts()] if legend else None

    monkeypatch.setattr(plots, "save", keep_legend)
    notes = []
    comparison = build_comparison(load_entries(report_files([tmp_path]), print))
    paths = write_plots(comparison, tmp_path / "plots", note=notes.append)
    assert sorted(p.name for p in paths) == ["latency_bars.png", "latency_vs_gflops.png"]
    (note,) = notes
    assert note.startswith("latency_vs_map.png not drawn: every model with an mAP has the same mAP50-95 (0)")
    # both points are on the front: no "dominated"; separate runs decide nothing, so the front is not established
    assert legends["latency_vs_gflops.png"] == ["front of the medians: not established"]


def test_a_cpu_report_without_the_models_own_memory_leaves_mem_blank_and_says_why(tmp_path):
    save(tmp_path, make_report("baseline", spread(5.0)))
    older = make_report("ghost", spread(4.5))
    del older["memory"]["model_memory_MB"]  # as a report from before the model's own memory was measured
    save(tmp_path, older)
    _, lines, _ = captured(report_paths_or_dir=tmp_path)
    assert any(line.startswith("Mem is blank for ghost: the report has no model_memory_MB") for line in lines)
    assert not any(line.startswith("Mem is blank for baseline") for line in lines)


def test_reports_with_the_pipeline_get_an_end_to_end_column_and_delta(tmp_path):
    for name, center, total in (("baseline", 5.0, 8.0), ("ghost", 4.5, 7.0), ("p2", 5.5, None)):
        report = make_report(name, spread(center))
        if total is not None:
            report["pipeline"] = {"total": {"median_ms": total, "mean_ms": total}}
        save(tmp_path, report)
    code, lines, _ = captured(report_paths_or_dir=tmp_path)
    assert code == 0
    assert table_row(lines, "End-to-end median", "ghost")[-1] == "7.00"
    assert table_row(lines, "End-to-end median", "p2")[-1] == "-"
    assert table_row(lines, "End-to-end Δ", "ghost")[5] == "-12.5"
    assert any(line.startswith("End-to-end: the median of --pipeline's total") for line in lines)
    rows = list(csv.DictReader(io.StringIO(csv_text(build_comparison(load_entries(report_files([tmp_path]),
                                                                                   print))))))
    ghost = next(row for row in rows if row["model"] == "ghost")
    assert float(ghost["end_to_end_median_ms"]) == 7.0 and float(ghost["end_to_end_delta_pct"]) == -12.5


def test_reports_without_the_pipeline_keep_the_tables_as_they_were(tmp_path):
    save(tmp_path, make_report("baseline", spread(5.0)))
    save(tmp_path, make_report("ghost", spread(4.5)))
    _, lines, _ = captured(report_paths_or_dir=tmp_path)
    assert not any("End-to-end" in line for line in lines)


def test_without_a_model_named_baseline_the_studys_own_baseline_is_taken(tmp_path):
    for name, factor in (("yolov8n", 1.0), ("yolov8s", 1.6)):
        report = study_report(name, factor)
        report["study"]["baseline"] = "yolov8n"
        save(tmp_path, report)
    comparison = build_comparison(load_entries(report_files([tmp_path])))
    assert comparison.groups[0].baseline.name == "yolov8n"
    code, lines, _ = captured(report_paths_or_dir=tmp_path, pivot="backend")  # the matrix takes the same baseline
    assert code == 0 and not any("no model named" in line for line in lines), lines
    assert any(line.startswith("yolov8s") and "slower" in line for line in lines[-6:]), lines[-6:]
    (tmp_path / "yolov8n.json").unlink()  # the study's baseline not among the reports: no guess
    with pytest.raises(DetbenchError, match="no report of a model named 'baseline'"):
        build_comparison(load_entries(report_files([tmp_path])))
