"""How detbench uses Ultralytics: offline, and building models in Ultralytics' restricted mode.

Ultralytics `eval()`s a model YAML's `activation:` and looks layer names up
among its module's globals; its restricted mode (the `ULTRALYTICS_SAFE_LOAD`
switch) resolves activations without `eval` and accepts only layer classes.
The switch is read once, when Ultralytics is imported, so `restricted_building`
turns it on for the duration of a build however Ultralytics was imported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def restricted_building() -> Iterator[None]:
    """Ultralytics builds models from YAML without eval() and with layer classes only, inside this block."""
    import ultralytics.nn.tasks as tasks

    previous = getattr(tasks, "SAFE_LOAD", False)
    tasks.SAFE_LOAD = True
    try:
        yield
    finally:
        tasks.SAFE_LOAD = previous
