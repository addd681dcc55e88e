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
    make_results(outside)  # helper files of another place, reached only through links
    os.symlink(outside, tmp_path / "sweep" / "studies" / "linked")  # a study folder that is a link: not entered
    lines: list[str] = []
    assert clean([bench, tmp_path / "sweep"], lines.append) == 0
    for folder in (bench, study):
        assert sorted(p.name for p in folder.iterdir()) == sorted(RESULTS)
    assert (outside / ".detbench-cache" / "inputs.npy").is_file() and (outside / ".study").is_dir()
    assert f"✓ removed {bench / '.detbench-cache'} (1.0 MiB)" in lines
    assert lines[-1] == "cleaned: 8 helper file(s), 2.0 MiB"
    assert clean([bench], lines.append) == 0 and lines[-1] == f"nothing to clean in {bench}"


def test_a_folder_where_a_study_runs_is_left_alone(tmp_path):
    bench = tmp_path / "bench"
    make_results(bench)
    lines: list[str] = []
    with study_lock(bench):
        assert clean([bench], lines.append) == 1
    assert lines[0] == f"· {bench}: a study is running there; left alone"
    assert (bench / ".detbench-cache" / "inputs.npy").is_file() and (bench / ".study").is_dir()


def test_a_cache_that_is_a_link_goes_as_a_link_and_its_target_stays(tmp_path):
    bench, outside = tmp_path / "bench", tmp_path / "outside"
    make_results(bench)
    make_results(outside)
    for name in (".detbench-cache", ".study"):
        (bench / name).rename(tmp_path / f"old{name}")
        os.symlink(outside / name, bench / name)
    assert clean([bench], [].append) == 0
    assert not os.path.lexists(bench / ".detbench-cache") and not os.path.lexists(bench / ".study")
    assert (outside / ".detbench-cache" / "inputs.npy").is_file() and (outside / ".study" / "baseline.w0.log").is_file()


def test_a_folder_detbench_did_not_make_is_not_touched(tmp_path):
    """`detbench clean .` in a project folder that happens to hold a .study/ of its own: nothing goes."""
    (tmp_path / ".study").mkdir()
    (tmp_path / ".study" / "notes.txt").write_text("mine")
    lines: list[str] = []
    assert clean([tmp_path], lines.append) == 0 and lines == [f"nothing to clean in {tmp_path}"]
    assert (tmp_path / ".study" / "notes.txt").read_text() == "mine"


def test_a_list_lock_another_run_holds_stays(tmp_path):
    from filelock import FileLock

    bench = tmp_path / "bench"
    make_results(bench)
    lines: list[str] = []
    with FileLock(str(bench / "benchmark_list.txt.lock")):
        assert clean([bench], lines.append) == 1
    assert f"· {bench / 'benchmark_list.txt.lock'}: a run is drawing the benchmark list; left alone" in lines
    assert (bench / "benchmark_list.txt.lock").exists() and not (bench / ".detbench-cache").exists()
