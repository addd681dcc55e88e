"""A --rect run through the CLI with a forged set-up cache entry times the true shapes."""

from __future__ import annotations

import json

import pytest
from rect_forgery import IMGSZ, forge_original_sizes

from detbench.data import cache as setup_cache
from detbench.data.synthetic import make_dataset


@pytest.fixture(scope="module")
def images(rect_images) -> list[str]:
    return rect_images


@pytest.mark.slow
def test_cli_rect_run_with_a_forged_entry_times_the_true_shapes_and_says_so(cli, tmp_path, yaml_checkpoint):
    data = make_dataset(tmp_path / "data", n_train=0, n_val=6, seed=4)
    quick = ["bench", "--weights", str(yaml_checkpoint), "--device", "cpu", "--imgsz", str(IMGSZ), "--warmup", "1",
             "--iters", "3", "--threads", "1", "--data", str(data), "--rect"]
    first = cli(*quick, "--name", "a", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    forge_original_sizes(tmp_path / "results" / "bench" / setup_cache.CACHE_DIRNAME)
    second = cli(*quick, "--name", "b", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    a, b = (json.loads((tmp_path / f"results/bench/{name}.json").read_text()) for name in "ab")
    assert b["setup_cache"]["inputs_reused"] is False
    assert b["inputs"]["shapes"] == a["inputs"]["shapes"] and b["inputs"] == a["inputs"]
    assert "set-up cache entry" in second.stdout + second.stderr and "not used" in second.stdout + second.stderr
