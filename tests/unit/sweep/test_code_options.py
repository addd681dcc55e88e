"""Code-running settings of a sweep file (`detbench.sweep.code_options`): a plugin or unsafe_load in the file runs
only where the command line gives it too."""

from __future__ import annotations

import pytest
from sweep_files import write_spec

from detbench.errors import DetbenchError
from detbench.sweep.code_options import code_warnings, file_plugins, with_command_line
from detbench.sweep.spec import load_spec


def test_a_files_plugin_needs_the_same_plugin_on_the_command_line(tmp_path):
    plugin = tmp_path / "layers.py"
    spec = load_spec(write_spec(tmp_path, settings={"plugin": str(plugin), "unsafe_load": True}))
    assert file_plugins(spec) == [str(plugin)]
    with pytest.raises(DetbenchError, match=r"settings\.plugin .*layers\.py would run its code in every study"):
        with_command_line(spec, unsafe_load=True)
    with pytest.raises(DetbenchError, match=r"settings\.unsafe_load would load every checkpoint"):
        with_command_line(spec, plugins=[str(plugin)])
    confirmed = with_command_line(spec, unsafe_load=True, plugins=[str(plugin), "extra_layers"])
    assert confirmed.settings["plugin"] == [str(plugin), "extra_layers"] and confirmed.settings["unsafe_load"]
    warnings = code_warnings(confirmed, on_ray=True)
    assert len(warnings) == 3 and all(line.startswith("warning: --") for line in warnings)
    assert "on every node it runs on" in warnings[0]


def test_a_plugin_value_that_is_no_name_and_a_bad_command_line_are_one_line(tmp_path):
    spec = load_spec(write_spec(tmp_path, settings={"plugins": ["-x"]}))
    with pytest.raises(DetbenchError, match=r"settings\.plugins must name modules or \.py files, got '-x'"):
        file_plugins(spec)
    plain = load_spec(write_spec(tmp_path))
    with pytest.raises(DetbenchError, match=r"--plugin '-rf': not a module name or \.py file"):
        with_command_line(plain, plugins=["-rf"])
    assert code_warnings(with_command_line(plain)) == []
