"""Set-up reuse across two CLI runs, with identical results."""

from __future__ import annotations

import json


def test_second_cli_run_reuses_set_up_with_identical_results(cli, tmp_path, yaml_checkpoint, dataset):
    quick = ["bench", "--weights", str(yaml_checkpoint), "--device", "cpu", "--imgsz", "64", "--warmup", "1",
             "--iters", "3", "--threads", "1", "--data", str(dataset)]
    reports = []
    for name in ("a", "b"):
        result = cli(*quick, "--name", name, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        reports.append(json.loads((tmp_path / f"results/bench/{name}.json").read_text()))
    first, second = reports
    assert first["setup_cache"]["inputs_reused"] is False and second["setup_cache"]["inputs_reused"] is True
    assert second["model_complexity"] == first["model_complexity"]
    assert second["inputs"] == first["inputs"]
