"""The typed report and the single source of bench settings, on reports and configs built in memory."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields

import numpy as np
import pytest

from detbench.config import BenchConfig
from detbench.errors import DetbenchError
from detbench.flags import add_bench_arguments, bench_config_from_args, bench_fields, config_argv
from detbench.report.model import SCHEMA_VERSION, Report, Statistics
from detbench.report.schema import load_report, validate_report, write_report
from detbench.stats import diagnostics, summary


def v1_report(samples: list[float]) -> dict:
    """A report as detbench wrote it with schema version 1: intervals it could not compute were strings."""
    statistics = diagnostics.statistics_section(samples)
    for key, _ in statistics.pop("unavailable").items():
        statistics[key] = "insufficient samples"
    return {
        "schema_version": 1, "status": "ok",
        "metadata": {"model_name": "m", "imgsz": 64, "batch": 1, "device": "cpu"},
        "model_complexity": {"params": 10, "gflops": 1.0},
        "latency": summary.summarize(samples),
        "throughput": {"fps_mean": 100.0, "fps_p50": 100.0},
        "memory": {"peak_rss_MB": 10.0, "unit": "MiB"},
        "statistics": statistics,
        "samples": {"latency_ms": samples},
        "a_future_section": {"kept": True},
    }


def test_a_version_1_report_is_read_with_nulls_and_reasons(tmp_path):
    samples = [10.0 + 0.1 * k for k in range(40)]  # too few for p99's CI and upper bound
    path = tmp_path / "m.json"
    path.write_text(json.dumps(v1_report(samples)))
    report = load_report(path)
    assert report.schema_version == SCHEMA_VERSION
    assert report.statistics.p99_upper95_ms is None and report.statistics.p99_ci95_ms is None
    assert report.statistics.unavailable["p99_upper95_ms"] == "insufficient samples"
    assert report.statistics.median_ci95_ms is not None  # 40 samples are enough for the median
    assert report.extra == {"a_future_section": {"kept": True}}  # unknown sections pass through unchanged
    written = write_report(report, tmp_path / "again" / "m.json")
    on_disk = json.loads(written.read_text())
    assert on_disk["schema_version"] == SCHEMA_VERSION and on_disk["a_future_section"] == {"kept": True}
    assert not any(value == "insufficient samples" for value in on_disk["statistics"].values())


def test_numeric_fields_of_a_version_2_report_refuse_text():
    report = v1_report([1.0] * 10)
    report["schema_version"] = SCHEMA_VERSION
    report["statistics"] = {"median_ci_half_width_rel": "insufficient samples"}
    with pytest.raises(DetbenchError, match="statistics.median_ci_half_width_rel not numeric"):
        validate_report(report, "r.json")


def test_too_few_samples_give_null_intervals_with_a_reason():
    section = diagnostics.statistics_section([5.0, 6.0, 7.0])
    assert section["median_ci95_ms"] is None and section["median_ci_half_width_rel"] is None
    assert section["unavailable"]["median_ci95_ms"] == "insufficient samples (3 taken)"
    typed = Statistics.from_dict(section)
    assert typed.to_dict() == section  # every key is declared or kept
    assert diagnostics.format_ci(typed.median_ci95_ms) == "n/a (insufficient samples)"


def test_sections_round_trip_and_keep_their_layout():
    samples = list(np.linspace(9.0, 11.0, 300))
    raw = v1_report(samples)
    raw["schema_version"] = SCHEMA_VERSION
    raw["statistics"] = diagnostics.statistics_section(samples)
    report = Report.from_dict(validate_report(raw))
    assert report.latency.median_ms == pytest.approx(10.0) and report.metadata.imgsz == 64
    again = report.to_dict()
    assert list(again)[:8] == ["schema_version", "status", "metadata", "model_complexity", "latency", "throughput",
                               "memory", "gpu"]
    assert Report.from_dict(again) == report


# ---------------------------------------------------------------- one source of settings

def parsed(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    add_bench_arguments(parser)
    return parser.parse_args(argv)


def test_every_setting_is_a_flag_and_the_flags_make_the_same_config():
    args = parsed(["--weights", "w.pt"])
    assert {item.name for item in fields(BenchConfig)} <= set(vars(args))
    assert bench_config_from_args(args) == BenchConfig(weights="w.pt")


def test_non_default_settings_survive_the_child_command_line():
    wanted = BenchConfig(weights="w.pt", imgsz=96, device="cpu", cudnn_benchmark=False, pipeline=True,
                         plugins=["a.py", "-b.py"], min_time=0.5, list_path="l.txt", load_memory_mb=512.0, threads=1)
    argv = config_argv(wanted.to_dict())
    assert "--batch" not in " ".join(argv) and "--no-cudnn_benchmark" in argv and "--plugin=-b.py" in argv
    assert bench_config_from_args(parsed(argv)) == wanted


def test_a_config_dict_round_trips_and_unknown_settings_are_named():
    cfg = BenchConfig(weights="w.pt", threads=1, target_ci=0.02, max_time=30.0)
    assert BenchConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(DetbenchError, match="unknown setting\\(s\\) imgsize"):
        BenchConfig.from_dict({**cfg.to_dict(), "imgsize": 320})


def test_study_pass_through_settings_exclude_the_per_model_ones():
    names = {item.name for item in bench_fields(pass_through=True)}
    assert {"weights", "name", "out", "list_path", "use_benchmark_list"}.isdisjoint(names)
    assert {"imgsz", "threads", "pipeline", "plugins"} <= names
