"""How detbench uses Ultralytics: offline, never installing anything, writing nothing under $HOME, and building
models in Ultralytics' restricted mode.

Ultralytics reads its switches from the environment once, when it is imported, into module constants
(`AUTOINSTALL`, `ONLINE`, `VERBOSE` in `ultralytics.utils` and the modules that import them):

- in detbench's own processes (the CLI, its children) `configure_process` sets them before the import, and a
  user's own `YOLO_OFFLINE=0` or `YOLO_AUTOINSTALL=true` is replaced, with a note: a benchmark has no business
  resolving DNS names or running `pip install`;
- Ultralytics writes its `settings.json` into its config folder when it is imported, and matplotlib its font
  cache: unless the user named them (`YOLO_CONFIG_DIR`, `MPLCONFIGDIR`), that is a private temporary folder,
  removed when the process exits, not `~/.config` or `~/.cache`;
- in someone else's process (the Python API) `ultralytics_environment` sets the same, and also the constants of
  an Ultralytics the caller had already imported, for the duration of the call only. Afterwards the caller's
  values are back; if the call was what imported Ultralytics, its constants are made what the caller's
  environment says, except `ONLINE`, which stays False (finding out would mean the DNS probe detbench never
  makes).

Ultralytics `eval()`s a model YAML's `activation:` and looks layer names up among its module's globals; its
restricted mode (the `ULTRALYTICS_SAFE_LOAD` switch) resolves activations without `eval` and accepts only
layer classes. The switch is read once, when Ultralytics is imported, so `restricted_building` turns it on for
the duration of a build however Ultralytics was imported.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator

# what Ultralytics must never do in detbench: probe the network, pip-install a missing package (its exporter
# would try one)
ENFORCED_ENV = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "False"}
# defaults a user may change: quiet, and Ultralytics' own restricted loading (detbench never loads a checkpoint
# through Ultralytics, and builds YAMLs restricted in any case: `restricted_building`)
QUIET_ENV = {"YOLO_VERBOSE": "False", "ULTRALYTICS_SAFE_LOAD": "1"}
ULTRALYTICS_ENV = {**ENFORCED_ENV, **QUIET_ENV}
CONFIG_DIR_ENV = "YOLO_CONFIG_DIR"
MATPLOTLIB_DIR_ENV = "MPLCONFIGDIR"  # matplotlib's settings and font cache (compare's plots): ~/.config, ~/.cache
_TRUE = {"1", "true", "yes", "on", "y", "t"}
# the module constants Ultralytics derives from the environment, and their values while detbench works
_CONSTANTS = {"AUTOINSTALL": False, "ONLINE": False, "VERBOSE": False}


def _means_the_same(name: str, value: str) -> bool:
    return (value.strip().lower() in _TRUE) == (ENFORCED_ENV[name].lower() in _TRUE)


def configure_process() -> list[str]:
    """For a process that is detbench's own (the CLI, its children): Ultralytics' settings, before it is imported.

    Returns a note for each of the user's own settings that was replaced."""
    notes = []
    for key, value in ENFORCED_ENV.items():
        if key in os.environ and not _means_the_same(key, os.environ[key]):
            notes.append(f"{key}={os.environ[key][:40]!r} in the environment is ignored: detbench runs Ultralytics "
                         f"offline and never lets it install packages")
        os.environ[key] = value
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    _private_settings_folders()
    return notes


def _private_settings_folders() -> None:
    """Ultralytics' and matplotlib's settings in a private folder of this process's, unless the user named one."""
    missing = [key for key in (CONFIG_DIR_ENV, MATPLOTLIB_DIR_ENV) if not os.environ.get(key)]
    if missing:
        folder = tempfile.mkdtemp(prefix="detbench-ultralytics-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)  # removed when the process exits
        for key in missing:
            os.environ[key] = folder


def _loaded_constants() -> dict[tuple[str, str], bool]:
    """Every environment-derived constant of the Ultralytics modules loaded in this process, by (module, name)."""
    found = {}
    for module_name, module in list(sys.modules.items()):
        if module_name != "ultralytics" and not module_name.startswith("ultralytics."):
            continue
        namespace = getattr(module, "__dict__", {})
        for name in _CONSTANTS:
            if isinstance(namespace.get(name), bool):
                found[(module_name, name)] = namespace[name]
    return found


def _set_constants(values: dict[tuple[str, str], bool]) -> None:
    for (module_name, name), value in values.items():
        module = sys.modules.get(module_name)
        if module is not None:
            setattr(module, name, value)
    verbose = [value for (_module, name), value in values.items() if name == "VERBOSE"]
    if verbose:
        logging.getLogger("ultralytics").setLevel(logging.INFO if verbose[0] else logging.ERROR)


def _callers_values(keys: list[tuple[str, str]]) -> dict[tuple[str, str], bool]:
    """The constants an Ultralytics imported under the caller's environment would have (ONLINE: False, unprobed)."""
    def flag(key: str, default: bool) -> bool:
        value = os.environ.get(key)
        return default if value is None else value.strip().lower() in _TRUE

    wanted = {"AUTOINSTALL": flag("YOLO_AUTOINSTALL", True), "VERBOSE": flag("YOLO_VERBOSE", True), "ONLINE": False}
    return {key: wanted[key[1]] for key in keys}


@contextlib.contextmanager
def ultralytics_environment() -> Iterator[None]:
    """For a call into detbench from someone else's process: detbench's settings while it runs, the caller's after."""
    saved_env = {key: os.environ.get(key) for key in (*ULTRALYTICS_ENV, CONFIG_DIR_ENV, MATPLOTLIB_DIR_ENV)}
    saved_constants = _loaded_constants()
    level = logging.getLogger("ultralytics").level
    os.environ.update(ULTRALYTICS_ENV)
    _private_settings_folders()
    _set_constants({key: _CONSTANTS[key[1]] for key in saved_constants})
    try:
        yield
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        imported_meanwhile = [key for key in _loaded_constants() if key not in saved_constants]
        _set_constants(_callers_values(imported_meanwhile))
        _set_constants(saved_constants)
        if saved_constants:
            logging.getLogger("ultralytics").setLevel(level)


@contextlib.contextmanager
def restricted_building() -> Iterator[None]:
    """Ultralytics builds models from YAML without eval() and with layer classes only, inside this block."""
    # imported here, not at the top: loads Ultralytics, which only this path needs
    import ultralytics.nn.tasks as tasks

    previous = getattr(tasks, "SAFE_LOAD", False)
    tasks.SAFE_LOAD = True
    try:
        yield
    finally:
        tasks.SAFE_LOAD = previous
