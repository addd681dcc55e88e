"""How detbench uses Ultralytics: offline, and building models in Ultralytics' restricted mode.

Ultralytics `eval()`s a model YAML's `activation:` and looks layer names up
among its module's globals; its restricted mode (the `ULTRALYTICS_SAFE_LOAD`
switch) resolves activations without `eval` and accepts only layer classes.
The switch is read once, when Ultralytics is imported, so `restricted_building`
turns it on for the duration of a build however Ultralytics was imported.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

# Ultralytics reads these when it is imported: no network probes, no chatter, restricted checkpoint loading,
# and never a `pip install` of a missing package (its exporter would try one)
ULTRALYTICS_ENV = {"YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False", "ULTRALYTICS_SAFE_LOAD": "1",
                   "YOLO_AUTOINSTALL": "False"}


def configure_process() -> None:
    """For a process that is detbench's own (the CLI, its children): Ultralytics' settings, unless already set."""
    for key, value in ULTRALYTICS_ENV.items():
        os.environ.setdefault(key, value)


@contextlib.contextmanager
def ultralytics_environment() -> Iterator[None]:
    """For a call into detbench from someone else's process: the settings while it runs, the old ones after."""
    saved = {key: os.environ.get(key) for key in ULTRALYTICS_ENV}
    configure_process()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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
