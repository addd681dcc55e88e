"""The model's own memory on CPU, measured in real runs of two model sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_yolov8x_weighs_at_least_200_mb_more_than_yolov8n_on_cpu(cli, tmp_path, dataset):
    """The model's own memory, not the process's: YOLOv8x has 65 M parameters (248 MiB in fp32) more than v8n."""
    memory = {}
    for model in ("yolov8n.yaml", "yolov8x.yaml"):
        result = cli("bench", "--weights", model, "--device", "cpu", "--imgsz", "64", "--warmup", "1", "--iters",
                     "3", "--threads", "1", "--data", str(dataset), "--benchmark_size", "6", "--out",
                     str(tmp_path))
        assert result.returncode == 0, result.stderr
        memory[model] = json.loads((tmp_path / f"{Path(model).stem}.json").read_text())["memory"]
    small, large = memory["yolov8n.yaml"], memory["yolov8x.yaml"]
    assert large["model_memory_MB"] - small["model_memory_MB"] >= 200, (small, large)
    assert 240 < large["weights_MB"] - small["weights_MB"] < 256  # (68.2 M - 3.2 M parameters) x 4 B = 248 MiB
    assert small["activation_peak_rss_MB"] >= 0 and small["loop_peak_rss_MB"] > 0
