"""The reaper of `--ray local` (`detbench.sweep.reaper`): it finds and kills the processes working in the sweep's
Ray folder, and only those."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from detbench.sweep.reaper import ray_pids, reap


def test_processes_working_in_the_folder_are_found_and_killed_and_others_are_not(tmp_path):
    folder = tmp_path / "ray"
    folder.mkdir()
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    inside = subprocess.Popen(sleep, cwd=folder)
    outside = subprocess.Popen(sleep, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 10
        while inside.pid not in ray_pids(str(folder)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ray_pids(str(folder)) == [inside.pid]
        assert ray_pids(str(folder), spare=frozenset({inside.pid})) == []
        assert reap(str(folder), limit_s=5) == 1
        assert inside.wait(5) == -9 and outside.poll() is None
        assert os.getpid() not in ray_pids(os.getcwd())  # never itself
    finally:
        for process in (inside, outside):
            process.kill()
            process.wait()
