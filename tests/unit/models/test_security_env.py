"""The process around detbench: plugins (imported once, allowed only where given), Ultralytics' switches (offline,
no auto-install, nothing under $HOME) in the CLI and the API, and DETBENCH_PARENT_PID."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_command
from hostile_checkpoints import save_with

from detbench.errors import DetbenchError
from detbench.models.loading import load_model, precheck_model
from detbench.proc import PARENT_ENV, python_module


def _counting_plugin(folder: Path, name: str, counter: Path) -> Path:
    plugin = folder / f"{name}.py"
    plugin.write_text(f"from pathlib import Path\nfrom torch import nn\n"
                      f"with open({str(counter)!r}, 'a') as f:\n    f.write(__name__ + '\\n')\n\n\n"
                      f"class Gate(nn.Module):\n    def forward(self, x):\n        return x\n")
    return plugin


def _plugin_checkpoint(tmp_path: Path, yaml_checkpoint: Path, plugin: Path) -> Path:
    """A checkpoint holding one of the plugin's layers (pickled as PLUGIN_MODULE.Gate)."""
    import importlib

    sys.path.insert(0, str(plugin.parent))
    try:
        gate = importlib.import_module(plugin.stem).Gate()
        weights = save_with(yaml_checkpoint, tmp_path / "custom.pt", extra_layer=gate)
    finally:
        sys.path.remove(str(plugin.parent))
        del sys.modules[plugin.stem]
    return weights


def test_a_plugin_file_runs_once_per_process_however_often_it_is_named(tmp_path, yaml_checkpoint):
    counter = tmp_path / "imports.txt"
    plugin = _counting_plugin(tmp_path, "once_layers_k3", counter)
    weights = _plugin_checkpoint(tmp_path, yaml_checkpoint, plugin)
    counter.unlink()
    sha256 = precheck_model(str(weights), [str(plugin)])  # what `bench` does first …
    load_model(str(weights), plugins=[str(plugin)], expected_sha256=sha256)  # … and then
    load_model(str(weights), plugins=[str(plugin)])
    assert counter.read_text().splitlines() == ["once_layers_k3"]  # not again as detbench_plugin_once_layers_k3


def test_a_plugin_given_to_one_load_is_not_allowed_in_the_next(tmp_path, yaml_checkpoint):
    plugin = _counting_plugin(tmp_path, "call_scoped_k4", tmp_path / "imports.txt")
    weights = _plugin_checkpoint(tmp_path, yaml_checkpoint, plugin)
    assert load_model(str(weights), plugins=[str(plugin)]).kind == "checkpoint"
    with pytest.raises(DetbenchError, match=r"it needs call_scoped_k4\.Gate, not on detbench's allow-list"):
        load_model(str(weights))  # the module is still imported: without the scope it would be allowed
    with pytest.raises(DetbenchError, match=r"it needs call_scoped_k4\.Gate, not on detbench's allow-list"):
        precheck_model(str(weights))
    yaml = tmp_path / "gated.yaml"
    yaml.write_text("nc: 2\nbackbone:\n  - [-1, 1, Conv, [8, 3, 2]]\n  - [-1, 1, Gate, []]\nhead:\n"
                    "  - [-1, 1, nn.Identity, []]\n")
    with pytest.raises(DetbenchError, match=r"layer 1 names 'Gate', which is not a layer class; pass --plugin"):
        precheck_model(str(yaml))  # registered with Ultralytics by the earlier load, but not given to this one
    assert precheck_model(str(yaml), [str(plugin)])


def _run(code: str, env: dict[str, str | None], cwd: Path) -> subprocess.CompletedProcess:
    return run_command([sys.executable, "-c", code], env=env, cwd=cwd, timeout=300)


def _clean_env(home: Path, **extra: str) -> dict[str, str | None]:
    """Changes to this process's environment (None: removed) that leave no switch of Ultralytics or of detbench."""
    removed = {key: None for key in os.environ
               if key.startswith(("YOLO_", "ULTRALYTICS_", "XDG_")) or key == PARENT_ENV}
    return {**removed, "HOME": str(home), **extra}


_REPORT_CONSTANTS = ("import json, sys, logging; import ultralytics.utils as u, ultralytics.utils.checks as c; "
                     "print(json.dumps({'AUTOINSTALL': [u.AUTOINSTALL, c.AUTOINSTALL], 'ONLINE': [u.ONLINE, c.ONLINE],"
                     " 'level': logging.getLogger('ultralytics').level}))")


def test_detbench_processes_replace_a_users_online_and_autoinstall_switches_with_a_note_and_writes_nothing_under_home(
        tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    code = ("import sys; from detbench.models.ultralytics_env import configure_process; "
            "[print('note: ' + n, file=sys.stderr) for n in configure_process()]; " + _REPORT_CONSTANTS)
    done = _run(code, _clean_env(home, YOLO_OFFLINE="0", YOLO_AUTOINSTALL="true"), tmp_path)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["AUTOINSTALL"] == [False, False] and seen["ONLINE"] == [False, False]
    assert "YOLO_OFFLINE='0' in the environment is ignored" in done.stderr
    assert "YOLO_AUTOINSTALL='true' in the environment is ignored" in done.stderr
    assert list(home.rglob("*")) == []  # no ~/.config/Ultralytics/settings.json


def test_the_private_ultralytics_config_folder_goes_when_the_process_exits(tmp_path):
    home, temp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    temp.mkdir()
    code = ("from detbench.models.ultralytics_env import configure_process; configure_process(); "
            "import ultralytics.utils as u, os; print(u.SETTINGS.file, os.path.exists(u.SETTINGS.file))")
    done = _run(code, _clean_env(home, TMPDIR=str(temp)), tmp_path)
    assert done.returncode == 0, done.stderr
    settings, existed = done.stdout.split()[-2:]
    assert settings.startswith(str(temp)) and existed == "True"
    assert list(temp.iterdir()) == [] and list(home.rglob("*")) == []


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


@pytest.mark.parametrize("value", ["abc", "1", "-5", "99999999999999999999", " ", "\u00b2", "\u2460"])
def test_a_parent_pid_left_in_the_environment_is_ignored(tmp_path, value):
    done = run_command(python_module(sys.executable, "detbench.cli", "--help"), cwd=tmp_path, env={PARENT_ENV: value},
                       timeout=120)
    assert done.returncode == 0 and "usage" in done.stdout and "Traceback" not in done.stderr


def test_a_parent_pid_that_names_no_running_process_stops_with_one_line(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    done = run_command(python_module(sys.executable, "detbench.cli", "--help"), cwd=tmp_path,
                       env={PARENT_ENV: str(gone.pid)}, timeout=120)
    assert done.returncode == 137 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"error: the detbench process that started this one (pid {gone.pid}, {PARENT_ENV}) is gone, so this one "
        f"stops too; unset {PARENT_ENV} if you set it yourself"]


def test_a_hangup_cleans_up_as_sigterm_does(monkeypatch, capsys):
    import signal

    from detbench import cli

    monkeypatch.setitem(cli.COMMANDS, "clean", lambda args: os.kill(os.getpid(), signal.SIGHUP) or time_to_die())
    assert cli.main(["clean"]) == 129
    assert "interrupted (SIGHUP): no partial report or list was left" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL


def time_to_die() -> int:
    import time

    time.sleep(30)  # the handler raises first
    return 0


def test_compares_plots_write_nothing_under_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    code = ("import sys; from detbench.models.ultralytics_env import configure_process; configure_process(); "
            "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt; "
            "plt.figure(); plt.plot([1, 2]); plt.savefig(sys.argv[1])")
    env = {**_clean_env(home), "TMPDIR": str(tmp_path), "MPLCONFIGDIR": None}
    done = run_command([sys.executable, "-c", code, str(tmp_path / "p.png")], env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert list(home.rglob("*")) == [] and (tmp_path / "p.png").is_file()


def test_a_plugins_layer_registered_with_ultralytics_is_not_allowed_under_ultralytics_name(tmp_path):
    from detbench.checkpoint.policy import restorable_class
    from detbench.models.loading import load_plugin

    plugin = _counting_plugin(tmp_path, "registered_k5", tmp_path / "imports.txt")
    module = load_plugin(str(plugin))
    assert restorable_class("ultralytics.nn.tasks.Gate", ()) is None  # reachable there, defined in the plugin
    assert restorable_class("ultralytics.nn.tasks.Gate", (module,)) is not None
    assert restorable_class("ultralytics.nn.modules.conv.Conv", ()) is not None
