"""The process around detbench, in this process: plugins (imported once, allowed only where given), a hangup, and
DETBENCH_PARENT_PID values that name no parent (processes of their own: tests/e2e/test_security_env_cli.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hostile_checkpoints import save_with

from detbench.errors import DetbenchError
from detbench.models.loading import load_model, precheck_model
from detbench.proc import PARENT_ENV, die_with_parent


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


@pytest.mark.parametrize("value", ["abc", "1", "-5", "99999999999999999999", " ", "\u00b2", "\u2460"])
def test_a_parent_pid_left_in_the_environment_is_ignored(monkeypatch, value):
    def exit_now(code: int) -> None:
        raise AssertionError(f"die_with_parent would have ended the process with {code}")

    monkeypatch.setenv(PARENT_ENV, value)
    monkeypatch.setattr(os, "_exit", exit_now)
    assert die_with_parent() is False  # what every detbench process does first: nothing, for any of these


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


def test_a_plugins_layer_registered_with_ultralytics_is_not_allowed_under_ultralytics_name(tmp_path):
    from detbench.checkpoint.policy import restorable_class
    from detbench.models.loading import load_plugin

    plugin = _counting_plugin(tmp_path, "registered_k5", tmp_path / "imports.txt")
    module = load_plugin(str(plugin))
    assert restorable_class("ultralytics.nn.tasks.Gate", ()) is None  # reachable there, defined in the plugin
    assert restorable_class("ultralytics.nn.tasks.Gate", (module,)) is not None
    assert restorable_class("ultralytics.nn.modules.conv.Conv", ()) is not None
