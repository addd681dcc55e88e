"""Statistics, stopping and phases in a report written by a real CLI run."""

from __future__ import annotations

import numpy as np
import pytest

from detbench.report.schema import load_report
from detbench.stats import summary as stats

QUICK = ["--device", "cpu", "--imgsz", "64", "--warmup", "2", "--threads", "1"]


def test_cli_rejects_max_time_without_target_ci(cli, tmp_path):
    result = cli("bench", "--weights", "baseline", "--max-time", "5", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: --max-time bounds the --target-ci extension")


def test_report_carries_statistics_stopping_and_phases(cli, tmp_path, yaml_checkpoint, dataset):
    result = cli("bench", "--weights", str(yaml_checkpoint), *QUICK, "--iters", "8", "--min-time", "0.3",
                 "--data", str(dataset), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = load_report(tmp_path / "results/bench/yolov8n.json").to_dict()
    samples = report["samples"]["latency_ms"]
    section = report["statistics"]
    assert section["n_samples"] == len(samples) == report["latency"]["n_samples"] >= 8
    low, high = stats.quantile_ci_ranks(len(samples), 0.5)
    assert section["median_ci95_ms"] == [sorted(samples)[low - 1], sorted(samples)[high - 1]]
    assert section["iqr_ms"] == pytest.approx(np.subtract(*np.percentile(samples, [75, 25])))
    assert section["outliers"]["count"] == len(section["outliers"]["indices"])
    stopping = report["stopping"]
    assert stopping["reason"] in {"iters", "min_time"} and stopping["timed_s"] >= 0.3
    assert stopping["iterations"] == len(samples) and stopping["min_time_s"] == 0.3
    phases = report["timing_phases_s"]
    assert set(phases) >= {"import", "load", "list", "decode", "warmup", "timed"}
    assert phases["timed"] == pytest.approx(stopping["timed_s"], abs=1e-3)
    printed = [line for line in result.stdout.splitlines() if line.startswith("  warning: ")]
    for warning in section["warnings"]:
        assert f"  warning: {warning}" in printed
    assert set(section["warnings"]) <= set(report["warnings"])
    assert f"{len(samples)} samples, stopped by {stopping['reason']}" in result.stdout
