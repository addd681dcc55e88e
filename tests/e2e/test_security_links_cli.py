"""No link followed below an output folder by a bench run through the CLI."""

from __future__ import annotations

import pytest
from conftest import file_tree, linked_list

from detbench.data import cache as setup_cache


@pytest.mark.slow
def test_bench_with_a_linked_default_list_writes_nothing_outside_out(cli, tmp_path, dataset, yaml_checkpoint):
    other, out, _ = linked_list(tmp_path, dataset)
    before = file_tree(other)
    result = cli("bench", "--weights", str(yaml_checkpoint), "--imgsz", "64", "--iters", "5", "--warmup", "1",
                 "--out", "OUT", "--use_benchmark_list", "--device", "cpu", "--threads", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert file_tree(other) == before
    assert list((out / setup_cache.CACHE_DIRNAME).glob("inputs-*.npy"))
