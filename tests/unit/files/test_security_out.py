"""One rule for every folder detbench writes below an output folder: no link is followed (files/out_tree)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from detbench.errors import DetbenchError
from detbench.files.out_tree import folder_below
from detbench.study.engine import StudyPlan, run_study


def test_a_studys_work_folder_swapped_for_a_link_after_the_checks_is_refused_before_a_worker_starts(tmp_path):
    out, victim = tmp_path / "out", tmp_path / "victim"
    out.mkdir()
    victim.mkdir()
    (out / ".study").symlink_to(victim)
    plan = StudyPlan.__new__(StudyPlan)  # only the work folder is looked at before anything starts
    plan.work_dir = out / ".study"
    with pytest.raises(DetbenchError, match=r"\.study is a symlink, and detbench follows no link below the output"):
        run_study(plan, print)
    assert list(victim.iterdir()) == []


def test_compares_own_plots_folder_is_not_followed_when_it_is_a_link(tmp_path, dataset):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "plots").symlink_to(elsewhere)
    done = subprocess.run([sys.executable, "-m", "detbench.cli", "compare", str(tmp_path / "none"), "--output",
                           str(tmp_path / "tables" / "ablation.csv")], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path.parent)
    assert done.returncode == 2 and "plots is a symlink" in done.stderr and len(done.stderr.splitlines()) == 1
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / "tables" / "ablation.csv").exists()


def test_a_link_further_down_is_refused_and_what_it_points_to_left_alone(tmp_path):
    out, victim = tmp_path / "out", tmp_path / "victim"
    (out / "studies").mkdir(parents=True)
    victim.mkdir()
    (out / "studies" / "cell").symlink_to(victim)
    with pytest.raises(DetbenchError, match=r"studies/cell is a symlink"):
        folder_below(out, "studies", "cell", "inner")
    assert list(victim.iterdir()) == []
    linked_out = tmp_path / "linked-out"
    linked_out.symlink_to(out)  # OUT itself may be a link the user made
    assert folder_below(linked_out, "studies", "real") == linked_out / "studies" / "real"
    assert (out / "studies" / "real").is_dir()
