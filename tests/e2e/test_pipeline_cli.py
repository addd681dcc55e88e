"""The --pipeline breakdown and --rect through the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from detbench.measure.pipeline import STAGES
from detbench.report.schema import load_report


def test_cli_pipeline_section_has_each_stage_with_statistics(cli, tmp_path, yaml_checkpoint, dataset):
    result = cli("bench", "--weights", str(yaml_checkpoint), "--device", "cpu", "--imgsz", "64", "--warmup", "2",
                 "--iters", "6", "--threads", "1", "--data", str(dataset), "--pipeline", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "✓ pipeline (median): preprocess " in result.stdout
    report = load_report(tmp_path / "results/bench/yolov8n.json").to_dict()
    section, raw = report["pipeline"], report["samples"]["pipeline_ms"]
    assert section["nms"]["conf"] == 0.25 and section["nms"]["iou"] == 0.7
    assert section["n_samples"] == 6 and section["stop_reason"] == "iters"
    for stage in STAGES:
        assert len(raw[stage]) == 6
        assert section[stage]["median_ms"] == pytest.approx(float(np.median(raw[stage])))
        assert section[stage]["statistics"]["n_samples"] == 6
        assert section[stage]["statistics"]["median_ci95_ms"] is not None
    parts = np.add(np.add(raw["preprocess"], raw["inference"]), raw["postprocess"])
    assert np.allclose(parts, raw["total"], atol=1e-6)
    assert report["timing_phases_s"]["pipeline"] > 0


def test_cli_rect_records_the_shapes_of_the_list_warms_each_and_gives_per_image_stages(cli, tmp_path, yaml_checkpoint,
                                                                                     dataset):
    result = cli("bench", "--weights", str(yaml_checkpoint), "--device", "cpu", "--imgsz", "64", "--warmup", "2",
                 "--iters", "6", "--threads", "1", "--data", str(dataset), "--pipeline", "--rect", "--batch", "2",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = load_report(tmp_path / "results/bench/yolov8n.json").to_dict()
    shapes = report["inputs"]["shapes"]
    assert sum(shapes.values()) == -(-report["inputs"]["n_images"] // 2) and "--rect" in report["inputs"]["letterbox"]
    assert all(int(h) <= 64 and int(w) <= 64 and int(h) % 32 == 0 == int(w) % 32
               for h, w in (key.split("x") for key in shapes))
    assert report["config"]["rect"] is True and any("square 64x64" in note for note in report["notes"])
    assert any(f"--rect: {len(shapes)} untimed forward(s), one per input shape" in note for note in report["notes"])
    section = report["pipeline"]
    assert section["per_image_ms"]["total"]["median_ms"] == pytest.approx(section["total"]["median_ms"] / 2)
    assert section["letterbox"].startswith("--rect")


def test_rect_with_a_cuda_graph_is_refused(cli, tmp_path):
    result = cli("bench", "--weights", "yolov8n.yaml", "--rect", "--cuda-graph", cwd=tmp_path)
    assert result.returncode != 0 and "--rect gives inputs of varying shape" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
