"""A busy CPU is detected: pressure and runnable tasks around the timed loop, and the warnings they give."""

from __future__ import annotations

from pathlib import Path

import pytest

from detbench.measure import host_load


def fake_proc(root: Path, pressure_total: int | None, running: int, own_states: list[str]) -> Path:
    """A /proc with the three files host_load reads."""
    if pressure_total is not None:
        (root / "pressure").mkdir(parents=True)
        (root / "pressure" / "cpu").write_text(f"some avg10=0.00 avg60=0.00 avg300=0.00 total={pressure_total}\n"
                                               "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    root.mkdir(parents=True, exist_ok=True)
    (root / "stat").write_text(f"cpu  1 2 3 4\nctxt 99\nprocs_running {running}\nprocs_blocked 0\n")
    for k, state in enumerate(own_states):
        task = root / "self" / "task" / str(100 + k)
        task.mkdir(parents=True)
        # a command name with ") " in it must not shift the state field
        (task / "stat").write_text(f"{100 + k} (py) thon) {state} 1 1 1 0 -1\n")
    return root


def test_snapshot_reads_pressure_runnable_and_own_threads(tmp_path):
    proc = fake_proc(tmp_path / "proc", 123456, running=5, own_states=["R", "S", "R"])
    snap = host_load.snapshot(proc)
    assert snap["cpu_pressure_some_total_us"] == 123456
    assert (snap["procs_running"], snap["own_running_threads"], snap["other_runnable"]) == (5, 2, 3)


def test_pressure_share_and_busy_warning_name_the_cause(tmp_path):
    before = host_load.snapshot(fake_proc(tmp_path / "a", 1_000_000, running=4, own_states=["R"]))
    after = dict(host_load.snapshot(fake_proc(tmp_path / "b", 1_500_000, running=4, own_states=["R"])),
                 monotonic_s=before["monotonic_s"] + 1.0)
    section = host_load.host_load_section(before, after, threads=1, cores=2)
    assert section["cpu_pressure_share"] == pytest.approx(0.5)
    assert section["other_runnable_max"] == 3
    warnings = host_load.busy_warnings(section)
    assert any(w.startswith("CPU busy: tasks waited for a core during 50 % of the timed loop; 3 runnable task(s) "
                            "of other programs on 2 core(s)") for w in warnings), warnings
    # two free cores taken by three other tasks: one thread is more than the cores left
    assert any(w.startswith("--threads 1 exceeds the 0 core(s) free") for w in warnings), warnings


def test_pressure_without_other_runnable_tasks_does_not_blame_other_programs(tmp_path):
    """40 % of the loop waited for a core, but no other program was runnable at either reading: the warning says
    the competition came between the readings, not that '0 runnable task(s) of other programs' compete."""
    before = host_load.snapshot(fake_proc(tmp_path / "a", 1_000_000, running=1, own_states=["R"]))
    after = dict(host_load.snapshot(fake_proc(tmp_path / "b", 1_400_000, running=1, own_states=["R"])),
                 monotonic_s=before["monotonic_s"] + 1.0)
    section = host_load.host_load_section(before, after, threads=2, cores=2)
    assert section["other_runnable_max"] == 0
    (warning,) = host_load.busy_warnings(section)
    assert warning.startswith("CPU contended: tasks waited for a core during 40 % of the timed loop, though no other "
                              "program was runnable when the loop started and ended"), warning
    assert "0 runnable" not in warning and "other programs compete" not in warning


def test_quiet_machine_gives_no_warning(tmp_path):
    before = host_load.snapshot(fake_proc(tmp_path / "a", 1_000_000, running=2, own_states=["R", "R"]))
    after = dict(host_load.snapshot(fake_proc(tmp_path / "b", 1_010_000, running=2, own_states=["R", "R"])),
                 monotonic_s=before["monotonic_s"] + 1.0)
    section = host_load.host_load_section(before, after, threads=2, cores=2)
    assert section["cpu_pressure_share"] == pytest.approx(0.01)
    assert host_load.busy_warnings(section) == []


def test_without_pressure_the_runnable_count_decides(tmp_path):
    quiet = host_load.snapshot(fake_proc(tmp_path / "a", None, running=1, own_states=["R"]))
    busy = host_load.snapshot(fake_proc(tmp_path / "b", None, running=3, own_states=["R"]))
    assert quiet["cpu_pressure_some_total_us"] is None
    assert host_load.busy_warnings(host_load.host_load_section(quiet, quiet, threads=1, cores=2)) == []
    section = host_load.host_load_section(quiet, busy, threads=1, cores=2)
    assert section["cpu_pressure_share"] is None
    (warning,) = host_load.busy_warnings(section)
    assert warning.startswith("CPU busy: 2 runnable task(s) of other programs on 2 core(s)")


def test_unreadable_proc_gives_nulls_not_errors(tmp_path):
    snap = host_load.snapshot(tmp_path / "nothing")
    assert snap["cpu_pressure_some_total_us"] is None and snap["procs_running"] is None
    assert snap["other_runnable"] is None
    assert host_load.busy_warnings(host_load.host_load_section(snap, snap, threads=1)) == []
