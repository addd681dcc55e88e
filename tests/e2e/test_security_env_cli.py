"""The process around detbench, in processes of its own: Ultralytics' switches (offline, no auto-install, nothing
under $HOME) in detbench's processes and during an API call, the private settings folder that goes at exit, and
DETBENCH_PARENT_PID naming a parent that is gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import run_command

from detbench.proc import PARENT_ENV, python_module


def _run(code: str, env: dict[str, str | None], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return run_command([sys.executable, "-c", code, *args], env=env, cwd=cwd, timeout=300)


def _clean_env(home: Path, **extra: str | None) -> dict[str, str | None]:
    """Changes to this process's environment (None: removed) that leave no switch of Ultralytics or of detbench."""
    removed = {key: None for key in os.environ
               if key.startswith(("YOLO_", "ULTRALYTICS_", "XDG_")) or key == PARENT_ENV}
    return {**removed, "HOME": str(home), **extra}


_REPORT_CONSTANTS = ("import json, sys, logging; import ultralytics.utils as u, ultralytics.utils.checks as c; "
                     "print(json.dumps({'AUTOINSTALL': [u.AUTOINSTALL, c.AUTOINSTALL], 'ONLINE': [u.ONLINE, c.ONLINE],"
                     " 'level': logging.getLogger('ultralytics').level}))")


@dataclass
class DetbenchProcess:
    done: subprocess.CompletedProcess
    home: Path
    temp: Path  # the process's TMPDIR
    plot: Path


@pytest.fixture(scope="module")
def detbench_process(tmp_path_factory) -> DetbenchProcess:
    """One process set up as detbench's own are (`configure_process`), with a user's YOLO_OFFLINE=0 and
    YOLO_AUTOINSTALL=true, its own HOME and TMPDIR and no MPLCONFIGDIR: it draws a plot as compare does, then
    imports Ultralytics and prints its switches, its settings file and whether that file exists."""
    folder = tmp_path_factory.mktemp("process")
    home, temp = folder / "home", folder / "tmp"
    home.mkdir()
    temp.mkdir()
    code = ("import os, sys; from detbench.models.ultralytics_env import configure_process; "
            "[print('note: ' + n, file=sys.stderr) for n in configure_process()]; "
            "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt; "
            "plt.figure(); plt.plot([1, 2]); plt.savefig(sys.argv[1]); "
            + _REPORT_CONSTANTS + "; print(u.SETTINGS.file, os.path.exists(u.SETTINGS.file))")
    env = _clean_env(home, YOLO_OFFLINE="0", YOLO_AUTOINSTALL="true", TMPDIR=str(temp), MPLCONFIGDIR=None)
    done = _run(code, env, folder, str(folder / "p.png"))
    return DetbenchProcess(done, home, temp, folder / "p.png")


def test_detbench_processes_replace_a_users_online_and_autoinstall_switches_with_a_note_and_writes_nothing_under_home(
        detbench_process):
    done = detbench_process.done
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-2])
    assert seen["AUTOINSTALL"] == [False, False] and seen["ONLINE"] == [False, False]
    assert "YOLO_OFFLINE='0' in the environment is ignored" in done.stderr
    assert "YOLO_AUTOINSTALL='true' in the environment is ignored" in done.stderr
    assert list(detbench_process.home.rglob("*")) == []  # no ~/.config/Ultralytics/settings.json


def test_the_private_ultralytics_config_folder_goes_when_the_process_exits(detbench_process):
    done = detbench_process.done
    assert done.returncode == 0, done.stderr
    settings, existed = done.stdout.split()[-2:]
    assert settings.startswith(str(detbench_process.temp)) and existed == "True"
    assert list(detbench_process.temp.iterdir()) == [] and list(detbench_process.home.rglob("*")) == []


def test_compares_plots_write_nothing_under_home(detbench_process):
    assert detbench_process.done.returncode == 0, detbench_process.done.stderr
    assert list(detbench_process.home.rglob("*")) == [] and detbench_process.plot.is_file()


@pytest.mark.parametrize("imported_first", [True, False])
def test_the_api_is_offline_without_autoinstall_during_a_call_and_gives_the_callers_switches_back(
        tmp_path, imported_first):
    home = tmp_path / "home"
    home.mkdir()
    during = ("import detbench.models.ultralytics_env as e, json, sys\n"
              + ("import ultralytics.utils\n" if imported_first else "")
              + "with e.ultralytics_environment():\n"
              "    import ultralytics.utils as u, ultralytics.utils.checks as c\n"
              "    print(json.dumps([u.AUTOINSTALL, c.AUTOINSTALL, u.ONLINE, c.ONLINE]))\n")
    after = _REPORT_CONSTANTS.replace("import json, sys, logging; ", "import logging; ")
    done = _run(during + after, _clean_env(home, YOLO_AUTOINSTALL="true", YOLO_OFFLINE="1"), tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert json.loads(lines[-2]) == [False, False, False, False]  # never installs, never probes, during the call
    seen = json.loads(lines[-1])
    assert seen["AUTOINSTALL"] == [True, True]  # the caller's own YOLO_AUTOINSTALL=true, back after the call
    assert seen["ONLINE"] == [False, False] and seen["level"] == 20  # INFO: the caller did not ask for quiet
    assert imported_first or list(home.rglob("*")) == []  # an Ultralytics the caller imported wrote its own


def test_a_parent_pid_that_names_no_running_process_stops_with_one_line(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    done = run_command(python_module(sys.executable, "detbench.cli", "--help"), cwd=tmp_path,
                       env={PARENT_ENV: str(gone.pid)}, timeout=120)
    assert done.returncode == 137 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"error: the detbench process that started this one (pid {gone.pid}, {PARENT_ENV}) is gone, so this one "
        f"stops too; unset {PARENT_ENV} if you set it yourself"]


def test_a_parent_that_exited_but_is_not_yet_reaped_counts_as_gone(tmp_path):
    """A zombie: the parent died before the child's check and its own parent has not waited for it yet."""
    zombie = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 30
        while Path(f"/proc/{zombie.pid}/stat").read_bytes().rpartition(b")")[2].split()[:1] != [b"Z"]:
            assert time.monotonic() < deadline, "the child never exited"
            time.sleep(0.01)
        done = run_command(python_module(sys.executable, "detbench.cli", "--help"), cwd=tmp_path,
                           env={PARENT_ENV: str(zombie.pid)}, timeout=120)
        assert done.returncode == 137 and done.stdout == "" and "is gone, so this one stops too" in done.stderr
    finally:
        zombie.wait()
