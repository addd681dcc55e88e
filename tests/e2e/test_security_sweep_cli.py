"""The sweep's protections through the command line: a killed --ray local sweep, a sweep file's plugin."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import gone_within, process_table
from sweep_files import write_spec

PLUGIN = "from pathlib import Path\nPath({marker!r}).write_text('plugin code ran')\n"


def _descendants(root: int) -> dict[int, str]:
    """pid -> start time of every process below `root`."""
    table = process_table()
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, started) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = started
                frontier.append(pid)
    return found


def _commands(pids) -> list[list[str]]:
    """The command lines of those of `pids` that still run."""
    commands = []
    for pid in pids:
        try:
            commands.append(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0"))
        except OSError:
            pass
    return commands


def _names(pids) -> list[str]:
    return [command[0][:60] for command in _commands(pids)]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_a_sigkilled_ray_local_sweep_leaves_no_ray_process(tmp_path, dataset):
    pytest.importorskip("ray")
    spec = write_spec(tmp_path, dataset, axes={"imgsz": [64]}, settings={"iters": 2000})
    sweep = subprocess.Popen([sys.executable, "-m", "detbench.cli", "sweep", str(spec), "--out", str(tmp_path / "o"),
                              "--ray", "local", "--ray-cpus", "1"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # until a study runs in a Ray worker (its ablate child), beside Ray's agents
            commands = _commands(_descendants(sweep.pid))
            names = [command[0][:60] for command in commands]
            if any("DashboardAgent" in n for n in names) and any(n.startswith("ray::study_task") for n in names) \
                    and any("ablate" in command for command in commands):
                break
            assert sweep.poll() is None, "the sweep ended before its study ran"
            time.sleep(0.5)
        else:
            pytest.fail(f"no study ran within 240 s: {names}")
        tree = _descendants(sweep.pid)
    finally:
        sweep.kill()
        sweep.wait(timeout=30)
    left = gone_within(list(tree), 10.0)
    assert left == [], f"still running 10 s after kill -9: {_names(left)}"


def test_the_command_line_confirms_a_sweep_files_plugin_and_the_dry_run_shows_it(cli, tmp_path, dataset):
    """Needs `detbench sweep --plugin/--unsafe-load` (cli.py): the wiring of the flags to SweepOptions."""
    marker = tmp_path / "ran"
    plugin = tmp_path / "evil.py"
    plugin.write_text(PLUGIN.format(marker=str(marker)))
    spec = write_spec(tmp_path, dataset, settings={"plugin": [str(plugin)], "unsafe_load": True})
    refused = cli("sweep", str(spec), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert refused.returncode != 0 and refused.stderr.count("\n") == 1 and "pass --plugin" in refused.stderr
    shown = cli("sweep", str(spec), "--out", str(tmp_path / "out"), "--dry-run", "--plugin", str(plugin),
                "--unsafe-load", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"warning: --plugin {plugin}: every study imports it" in shown.stdout
    assert "warning: --unsafe-load: every study loads its checkpoints with a full pickle load" in shown.stdout
    assert not marker.exists() and not (tmp_path / "out").exists()
