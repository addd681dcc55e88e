"""Reports written by earlier versions of detbench are read: schema version 1 (upgraded) and version 2 (as is).

data/report_v2.json and data/report_v1.json are a CPU --pipeline report as the previous code wrote it (five
samples), and the same report in version 1's form: no `config`, and every interval that needed more samples
the string "insufficient samples" with no `unavailable`.
"""

from __future__ import annotations

import json
from pathlib import Path

from detbench.report.model import SCHEMA_VERSION, Report
from detbench.report.schema import dumps, load_report, validate_report

DATA = Path(__file__).parent / "data"


def test_a_version_2_report_is_read_and_written_back_byte_for_byte(tmp_path):
    text = (DATA / "report_v2.json").read_text()
    report = load_report(DATA / "report_v2.json")
    assert report.schema_version == 2 and report.ok and report.latency.n_samples == 5
    assert report.pipeline.total.median_ms == sorted(report.samples.pipeline_ms["total"])[2]  # typed open sections
    assert report.stopping.iterations == 5 and report.environment.cpu
    assert report.memory.warmup_peak_gpu_mem_MB is None and "warmup_peak_gpu_mem_MB" not in report.memory.extra
    assert dumps(report.to_dict()) == text


def test_a_version_1_report_is_read_as_version_2(tmp_path):
    old = json.loads((DATA / "report_v1.json").read_text())
    report = load_report(DATA / "report_v1.json")
    assert report.schema_version == SCHEMA_VERSION and report.config is None
    assert report.statistics.median_ci95_ms is None
    assert report.statistics.unavailable["median_ci95_ms"] == "insufficient samples"
    assert report.pipeline.total.statistics["p95_upper95_ms"] is None
    assert report.pipeline.total.statistics["unavailable"]["p95_upper95_ms"] == "insufficient samples"
    assert report.latency.median_ms == old["latency"]["median_ms"]
    validate_report(report.to_dict(), "upgraded")  # what it is written back as is a valid version-2 report
    assert Report.from_dict(old).to_dict() == report.to_dict()
