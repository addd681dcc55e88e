"""`detbench clean`: the helper files go, results stay, a folder where a study runs is left alone."""

from __future__ import annotations

import os

from detbench.study.lock import study_lock
from detbench.workflows.clean import clean

RESULTS = ["baseline.json", "study.json", "benchmark_list.txt", "benchmark_list.txt.json", "comparison.csv"]


def make_results(folder):
    folder.mkdir(parents=True)
    for name in RESULTS:
        (folder / name).write_text("{}")
    (folder / ".detbench-cache").mkdir()
    (folder / ".detbench-cache" / "inputs.npy").write_bytes(b"x" * 2**20)
    (folder / "benchmark_list.txt.lock").write_text("")
    (folder / ".detbench-study.lock").write_text("pid 1\n")
    (folder / ".study").mkdir()
    (folder / ".study" / "baseline.w0.log").write_text("log")


def test_clean_removes_helpers_only_in_the_folder_and_a_sweeps_studies(tmp_path):
    bench, study = tmp_path / "bench", tmp_path / "sweep" / "studies" / "imgsz64"
    make_results(bench)
    make_results(study)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.npy").write_text("keep")
    os.symlink(outside, tmp_path / "sweep" / "studies" / "linked")  # a link is not followed into
    lines: list[str] = []
    assert clean([bench, tmp_path / "sweep"], lines.append) == 0
    for folder in (bench, study):
        assert sorted(p.name for p in folder.iterdir()) == sorted(RESULTS)
    assert (outside / "keep.npy").read_text() == "keep"
    assert f"✓ removed {bench / '.detbench-cache'} (1.0 MiB)" in lines
    assert lines[-1] == "cleaned: 8 helper file(s), 2.0 MiB"
    assert clean([bench], lines.append) == 0 and lines[-1] == "nothing to clean"


def test_a_folder_where_a_study_runs_is_left_alone(tmp_path):
    bench = tmp_path / "bench"
    make_results(bench)
    lines: list[str] = []
    with study_lock(bench):
        assert clean([bench], lines.append) == 1
    assert lines[0] == f"· {bench}: a study is running there; left alone"
    assert (bench / ".detbench-cache" / "inputs.npy").is_file() and (bench / ".study").is_dir()
