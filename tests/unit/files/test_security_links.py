"""No link followed below an output folder: the set-up cache beside a linked benchmark list, the demo's workspace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import file_tree, linked_list

from detbench.data import cache as setup_cache
from detbench.data.benchmark_list import LIST_FILENAME
from detbench.errors import DetbenchError
from detbench.workflows.demo import DemoOptions, ensure_checkpoints, ensure_dataset, run_demo


def test_cache_of_a_linked_list_stays_beside_the_link_not_its_target(tmp_path, dataset):
    other, out, paths = linked_list(tmp_path, dataset)
    before = file_tree(other)
    cache_dir = setup_cache.cache_dir_for(out / LIST_FILENAME)
    assert cache_dir == out / setup_cache.CACHE_DIRNAME
    assert not setup_cache.cached_inputs(cache_dir, paths, 64)[1]
    assert setup_cache.cached_inputs(cache_dir, paths, 64)[1]  # stored below OUT, and reused from there
    assert sorted(p.suffix for p in cache_dir.iterdir()) == [".json", ".npy"]
    assert file_tree(other) == before  # nothing written beside the list's target


def test_a_linked_cache_folder_is_still_not_used(tmp_path, dataset):
    other, out, paths = linked_list(tmp_path, dataset)
    (other / "elsewhere").mkdir()
    os.symlink(other / "elsewhere", out / setup_cache.CACHE_DIRNAME)
    cache_dir = setup_cache.cache_dir_for(out / LIST_FILENAME)
    assert "is a symlink" in setup_cache.cache_problem(cache_dir)
    assert not setup_cache.cached_inputs(cache_dir, paths, 64)[1]
    assert not setup_cache.cached_inputs(cache_dir, paths, 64)[1]
    assert list((other / "elsewhere").iterdir()) == []


def _quiet_demo(workspace: Path, **changes) -> DemoOptions:
    return DemoOptions(workspace=str(workspace), models=("baseline",), val_images=2, iters=2, warmup=1, study_time=5,
                       imgsz=64, threads=1, device="cpu", **changes)


def test_demo_refuses_a_linked_data_folder_before_writing(tmp_path):
    victim = tmp_path / "victim2"
    victim.mkdir()
    (tmp_path / "demo_ws").mkdir()
    os.symlink(victim, tmp_path / "demo_ws" / "data")
    with pytest.raises(DetbenchError, match=r"data is a symlink") as caught:
        run_demo(_quiet_demo(tmp_path / "demo_ws"), echo=lambda _: None)
    assert "\n" not in str(caught.value) and "--workspace" in str(caught.value)
    assert list(victim.iterdir()) == []
    assert not (tmp_path / "demo_ws" / "results").exists()  # refused before anything was made


def test_demo_refuses_a_linked_run_folder_before_removing_anything(tmp_path):
    victim = tmp_path / "victim3"
    (victim / "seed0").mkdir(parents=True)
    (victim / "seed0" / "important.txt").write_text("x\n")
    runs = tmp_path / "demo_ws2" / "results" / "runs"
    runs.mkdir(parents=True)
    os.symlink(victim, runs / "baseline")
    with pytest.raises(DetbenchError, match=r"runs/baseline is a symlink") as caught:
        run_demo(_quiet_demo(tmp_path / "demo_ws2", train_epochs=1), echo=lambda _: None)
    assert "\n" not in str(caught.value)
    assert file_tree(victim) == {"seed0": None, "seed0/important.txt": b"x\n"}
    assert not (tmp_path / "demo_ws2" / "data").exists()  # refused before the dataset was written


def test_demo_steps_refuse_links_below_their_folders(tmp_path):
    victim = tmp_path / "victim"
    (victim / "seed0").mkdir(parents=True)
    (victim / "seed0" / "important.txt").write_text("x\n")
    runs = tmp_path / "runs"
    runs.mkdir()
    os.symlink(victim, runs / "baseline")
    with pytest.raises(DetbenchError, match="is a symlink"):
        ensure_checkpoints(("baseline",), runs, tmp_path / "data.yaml", 1, 64, lambda _: None)
    os.symlink(victim, tmp_path / "data")
    with pytest.raises(DetbenchError, match="is a symlink"):
        ensure_dataset(tmp_path / "data", 2, lambda _: None)
    assert file_tree(victim) == {"seed0": None, "seed0/important.txt": b"x\n"}
