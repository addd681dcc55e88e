"""The version: one leaf module, the same one the package and the command line give."""

from __future__ import annotations

import detbench
from detbench.cli import main
from detbench.version import __version__


def test_the_package_and_the_command_line_give_the_leaf_modules_version(capsys):
    assert detbench.__version__ == __version__ and __version__.count(".") == 2
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    assert __version__ in capsys.readouterr().out
