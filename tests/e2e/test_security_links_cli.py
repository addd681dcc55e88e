"""No link followed below an output folder by a bench run through the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from detbench.data import cache as setup_cache
from detbench.data.benchmark_list import LIST_FILENAME, sample_list, write_list


def _tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def _linked_list(tmp_path: Path, dataset: Path) -> tuple[Path, Path, list[str]]:
    """OUT/benchmark_list.txt -> ../other/benchmark_list.txt (a valid list with its sidecar beside both)."""
    other, out = tmp_path / "other", tmp_path / "OUT"
    other.mkdir()
    out.mkdir()
    blist = sample_list(dataset, 4, 42)
    write_list(blist, other / LIST_FILENAME)
    os.symlink(f"../other/{LIST_FILENAME}", out / LIST_FILENAME)
    os.symlink(f"../other/{LIST_FILENAME}.json", out / f"{LIST_FILENAME}.json")
    return other, out, list(blist.paths)


@pytest.mark.slow
def test_bench_with_a_linked_default_list_writes_nothing_outside_out(cli, tmp_path, dataset, yaml_checkpoint):
    other, out, _ = _linked_list(tmp_path, dataset)
    before = _tree(other)
    result = cli("bench", "--weights", str(yaml_checkpoint), "--imgsz", "64", "--iters", "5", "--warmup", "1",
                 "--out", "OUT", "--use_benchmark_list", "--device", "cpu", "--threads", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _tree(other) == before
    assert list((out / setup_cache.CACHE_DIRNAME).glob("inputs-*.npy"))
