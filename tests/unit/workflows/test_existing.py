"""A study beside earlier `bench` reports (`detbench.workflows.existing`): which is a separate run, where it is set
aside, and a separate_runs/ folder that cannot take it."""

from __future__ import annotations

import json

from conftest import make_report

from detbench.workflows.existing import is_separate_run, separate_runs_problem, set_aside, set_aside_path


def test_a_finished_bench_report_is_set_aside_byte_for_byte_under_a_free_name(tmp_path):
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(make_report("baseline", [10.0, 11.0, 12.0])))
    original = path.read_bytes()
    assert is_separate_run(path, None) and is_separate_run(path, "pytorch") and not is_separate_run(path, "onnx")
    (tmp_path / "separate_runs").mkdir()
    (tmp_path / "separate_runs" / "baseline.json").write_text("{}")
    assert set_aside_path(path) == tmp_path / "separate_runs" / "baseline-2.json"
    kept = set_aside(path)
    assert kept.read_bytes() == original and not path.exists()


def test_what_is_no_separate_run_and_a_linked_separate_runs_folder(tmp_path):
    (tmp_path / "broken.json").write_text("{")
    assert not is_separate_run(tmp_path / "broken.json", None)
    assert not is_separate_run(tmp_path / "missing.json", None)
    assert separate_runs_problem(tmp_path) is None
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "separate_runs").symlink_to(elsewhere, target_is_directory=True)
    assert "is a symlink or not a folder" in separate_runs_problem(tmp_path)
