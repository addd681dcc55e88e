"""Set-up reuse across processes: decoded inputs and FLOPs counts, keyed by content, never stale."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from detbench import setup_cache
from detbench.benchmark_list import sample_list
from detbench.inputs import decode_images
from detbench.models import load_model


@pytest.fixture(scope="module")
def paths(dataset) -> list[str]:
    return [str(p) for p in sample_list(dataset, 8, 42).paths]


def test_inputs_are_reused_only_while_files_and_array_are_unchanged(tmp_path, paths):
    fresh = decode_images(paths, 64)
    first, reused = setup_cache.cached_inputs(tmp_path, paths, 64)
    assert not reused and first.decoded_sha256 == fresh.decoded_sha256
    second, reused = setup_cache.cached_inputs(tmp_path, paths, 64)
    assert reused and torch.equal(second.images, fresh.images)
    assert (second.files_sha256, second.decoded_sha256) == (fresh.files_sha256, fresh.decoded_sha256)
    assert not setup_cache.cached_inputs(tmp_path, paths, 96)[1]  # another imgsz: another entry

    for path in tmp_path.glob("inputs-*.npy"):  # one pixel changed in every stored array: none may be used
        data = np.load(path)
        data.flat[0] ^= 1
        np.save(path, data)
    third, reused = setup_cache.cached_inputs(tmp_path, paths, 64)
    assert not reused and third.decoded_sha256 == fresh.decoded_sha256


def test_gflops_are_counted_once_per_model_and_imgsz(tmp_path, yaml_checkpoint):
    source = setup_cache.source_digest(str(yaml_checkpoint), str(yaml_checkpoint))
    model, counts, hit = setup_cache.fuse_and_count(load_model(str(yaml_checkpoint)).model, 64, tmp_path, source)
    assert not hit and counts["gflops_unfused"] > counts["gflops"] > 0
    assert model.is_fused()
    again, counts_again, hit = setup_cache.fuse_and_count(load_model(str(yaml_checkpoint)).model, 64, tmp_path,
                                                          source)
    assert hit and counts_again == counts and again.is_fused()
    other = setup_cache.fuse_and_count(load_model(str(yaml_checkpoint)).model, 128, tmp_path, source)
    assert not other[2] and other[1]["gflops"] > counts["gflops"]
    assert len(json.loads((tmp_path / "gflops.json").read_text())) == 2


def test_second_cli_run_reuses_set_up_with_identical_results(cli, tmp_path, yaml_checkpoint, dataset):
    quick = ["bench", "--weights", str(yaml_checkpoint), "--device", "cpu", "--imgsz", "64", "--warmup", "1",
             "--iters", "3", "--threads", "1", "--data", str(dataset)]
    reports = []
    for name in ("a", "b"):
        result = cli(*quick, "--name", name, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        reports.append(json.loads((tmp_path / f"results/bench/{name}.json").read_text()))
    first, second = reports
    assert first["setup_cache"]["gflops_reused"] is False and first["setup_cache"]["inputs_reused"] is False
    assert second["setup_cache"]["gflops_reused"] is True and second["setup_cache"]["inputs_reused"] is True
    assert second["model_complexity"] == first["model_complexity"]
    assert second["inputs"] == first["inputs"]
