"""The settings of a sweep that run code: `--plugin` (every study imports the module or .py file) and
`--unsafe-load` (every study loads its checkpoints with a full pickle load, which runs whatever they hold).

A sweep file is a file like a checkpoint: it may come from someone else, and on its own it runs no code. As for
`ablate`, only the command line turns these on: `detbench sweep SWEEP.yaml --plugin layers.py --unsafe-load`
applies them to every study. The sweep file may name them too (so that the sweep records what it needs), but a
plugin or `unsafe_load` it names that the command line does not also give is refused in one line, before
anything runs or is written. Whatever is in force is shown, one warning line each, in `--dry-run`'s plan and at
the start of a real run.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from detbench.errors import DetbenchError
from detbench.sweep.spec import MAX_LIST_VALUES, MAX_VALUE_CHARS, SweepSpec

PLUGIN_KEYS = ("plugin", "plugins")  # settings.plugin, or ablate's dest name


def _same_plugin(entry: str) -> str:
    """How two spellings of one plugin compare: a .py file by its absolute path, a module by its name."""
    path = Path(entry)
    return str(path.resolve()) if path.suffix.lower() == ".py" else entry


def file_plugins(spec: SweepSpec) -> list[str]:
    """The plugins the sweep file names (settings.plugin or settings.plugins, one or a list); a one-line error for
    a value that is not a name."""
    found: list[str] = []
    for key in PLUGIN_KEYS:
        value = spec.settings.get(key)
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str) or not item.strip() or item.startswith("-"):
                raise DetbenchError(f"{spec.path}: settings.{key} must name modules or .py files, got {item!r}; "
                                    f"fix the file")
            found.append(item)
    return found


def _check_command_line(plugins: list[str]) -> None:
    if len(plugins) > MAX_LIST_VALUES:
        raise DetbenchError(f"--plugin: at most {MAX_LIST_VALUES} plugins, got {len(plugins)}")
    for plugin in plugins:
        if not plugin.strip() or len(plugin) > MAX_VALUE_CHARS or plugin.startswith("-"):
            raise DetbenchError(f"--plugin {plugin[:80]!r}: not a module name or .py file; give one per --plugin")


def _refuse_unconfirmed(spec: SweepSpec, unsafe_load: bool, plugins: list[str]) -> None:
    given = {_same_plugin(plugin) for plugin in plugins}
    for plugin in file_plugins(spec):
        if _same_plugin(plugin) not in given:
            raise DetbenchError(f"{spec.path}: settings.plugin {plugin[:200]} would run its code in every study, and "
                                f"a sweep file runs no code on its own: pass --plugin {plugin[:200]} to detbench "
                                f"sweep as well if you trust it, or remove it from the file")
    if spec.settings.get("unsafe_load") is True and not unsafe_load:
        raise DetbenchError(f"{spec.path}: settings.unsafe_load would load every checkpoint with a full pickle load, "
                            f"which runs any code it holds, and a sweep file runs no code on its own: pass "
                            f"--unsafe-load to detbench sweep as well if you trust every checkpoint, or remove it "
                            f"from the file")


def with_command_line(spec: SweepSpec, unsafe_load: bool = False, plugins: list[str] | None = None) -> SweepSpec:
    """The spec with the command line's code-running flags applied to every study (the file's plugins first, in
    their place among its settings, then the command line's others); a one-line error for a plugin or
    unsafe_load in the sweep file that the command line does not also give."""
    plugins = list(plugins or [])
    _check_command_line(plugins)
    _refuse_unconfirmed(spec, unsafe_load, plugins)
    named = file_plugins(spec)
    known = {_same_plugin(plugin) for plugin in named}
    merged = named + [plugin for plugin in plugins if _same_plugin(plugin) not in known]
    settings: dict[str, Any] = {}
    for key, value in spec.settings.items():
        if key not in PLUGIN_KEYS:
            settings[key] = value
        elif "plugin" not in settings and merged:
            settings["plugin"] = merged
    if merged and "plugin" not in settings:
        settings["plugin"] = merged
    if unsafe_load:
        settings["unsafe_load"] = True
    return replace(spec, settings=settings)


def code_warnings(spec: SweepSpec, on_ray: bool = False) -> list[str]:
    """One warning line for each code-running setting in force (after `with_command_line`)."""
    where = " on every node it runs on" if on_ray else ""
    lines = [f"warning: --plugin {plugin}: every study imports it, so its code runs with your rights{where}"
             for plugin in file_plugins(spec)]
    if spec.settings.get("unsafe_load") is True:
        lines.append("warning: --unsafe-load: every study loads its checkpoints with a full pickle load, which runs "
                     "any code they hold")
    return lines
