"""The sweep file (SWEEP.yaml): the models, the axes whose product are the studies, the settings every study shares.

    models: [baseline, ghost, p2]      # as `ablate --models`: run folder names under `runs`, .pt/.yaml, zoo names
    runs: results/runs                 # optional
    baseline: baseline                 # optional (default: `baseline` if listed, else the first)
    data: data.yaml                    # optional (default: the checkpoints' train_args)
    axes:                              # each a list; a missing axis takes ablate's default
      imgsz: [320, 640]
      batch: [1, 8]
      precision: [fp32, fp16]          # fp16: --half, on a GPU
      format: [pytorch, onnx]
      threads: [1]
      device_kind: [cpu, H100]         # with --ray only: cpu, or a Ray accelerator type
    settings:                          # any other `ablate` flag, the same in every study
      warmup: 50
      iters: 300

Paths are taken relative to the current folder, as on the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from detbench.errors import DetbenchError
from detbench.files.safe_io import read_text_file
from detbench.limits import MAX_PATH_CHARS, MAX_YAML_BYTES
from detbench.limits import MAX_SWEEP_STUDIES as MAX_STUDIES

PRECISIONS = ("fp32", "fp16")


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _short_name(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and len(value) <= 100


@dataclass(frozen=True)
class Axis:
    """One axis of a sweep: the values it takes, the bench setting a value sets, and its mark in a cell's name."""

    name: str
    values: str  # what its values must be, as its error says it
    check: Callable[[Any], bool]
    setting: str | None  # the BenchConfig field it sets; None: chosen per study (the device kind)
    mark: str = ""  # prefix of its value in the cell's folder name (imgsz640-b8-fp16)
    as_setting: Callable[[Any], Any] = staticmethod(lambda value: value)


# in the order of a cell's name and of compare --sweep's columns
AXES: dict[str, Axis] = {axis.name: axis for axis in (
    Axis("imgsz", "must be positive integers", _positive_int, "imgsz", "imgsz"),
    Axis("batch", "must be positive integers", _positive_int, "batch", "b"),
    Axis("precision", f"are {' or '.join(PRECISIONS)}", lambda value: value in PRECISIONS, "half",
         as_setting=lambda value: value == "fp16"),
    Axis("format", "must be names", _short_name, "format"),
    Axis("threads", "must be positive integers", _positive_int, "threads", "t"),
    Axis("device_kind", "must be names", _short_name, None),
)}
MAX_AXIS_VALUES = 64
# set by the sweep itself for every study: not settable in `settings` (nor is the setting of an axis the file uses)
RESERVED = {"models", "runs", "baseline", "data", "out", "list", "list_path", "use_benchmark_list", "device",
            "force", "quiet", "help", "version"}
MAX_VALUE_CHARS = 4096  # one setting's or axis value's text
MAX_LIST_VALUES = 64  # a setting given as a list (e.g. plugin)


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors and aliases: a few hundred bytes of nested aliases expand to gigabytes
    (a 'billion laughs'); a sweep file has no use for them."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a sweep file",
                                              event.start_mark)
        return super().compose_node(parent, index)


def _scalar_ok(value: Any) -> bool:
    return (value is None or isinstance(value, (bool, int, float))
            or isinstance(value, str) and len(value) <= MAX_VALUE_CHARS)


@dataclass
class SweepSpec:
    path: str
    models: list[str]
    axes: dict[str, list[Any]]
    settings: dict[str, Any] = field(default_factory=dict)
    runs: str = "results/runs"
    baseline: str | None = None
    data: str | None = None

    def studies_planned(self) -> int:
        count = 1
        for values in self.axes.values():
            count *= len(values)
        return count


def _fail(path: str, what: str) -> DetbenchError:
    return DetbenchError(f"{path}: {what}")


def _check_text(path: str, raw: Any) -> None:
    """Refuse a lone surrogate (e.g. a JSON `"\\ud800"`) in any key or value: it cannot be a path, a flag or a
    file name (encoding it fails later, as a traceback); a one-line error naming where."""
    pending: list[tuple[str, Any]] = [("the file", raw)]
    while pending:
        where, value = pending.pop()
        items = (value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list)
                 else [])
        for key, item in items:
            if isinstance(key, str) and not _encodes(key):
                bad = f"a key of {where}"
                break
            name = str(key)[:100]
            pending.append((name if where == "the file" else f"{where}.{name}"[:200], item))
        else:
            if not (isinstance(value, str) and not _encodes(value)):
                continue
            bad = where
        shown = "".join(c if _encodes(c) else "?" for c in bad)[:100]
        raise _fail(path, f"{shown} holds a lone surrogate (an escape such as \\ud800, which is no character); "
                          f"fix the file")


def _encodes(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _axis(path: str, name: str, raw: Any) -> list[Any]:
    values = raw if isinstance(raw, list) else [raw]
    if not values or len(values) > MAX_AXIS_VALUES:
        raise _fail(path, f"axes.{name} must list 1 to {MAX_AXIS_VALUES} values, got {len(values)}")
    if not all(_scalar_ok(value) for value in values):
        raise _fail(path, f"axes.{name} values must be numbers or short names, not lists or mappings")
    if len(set(map(str, values))) != len(values):
        raise _fail(path, f"axes.{name} lists a value twice ({values}); list each once")
    axis = AXES[name]
    bad = next((value for value in values if not axis.check(value)), None)
    if bad is not None:
        raise _fail(path, f"axes.{name} values {axis.values}, got {bad!r}")
    return values


def load_spec(path: str | Path) -> SweepSpec:
    """SWEEP.yaml read (bounded) and checked; a one-line error naming the file and the key otherwise."""
    shown = str(path)
    if not Path(path).is_file():
        raise DetbenchError(f"{shown}: no such sweep file; pass the path of a SWEEP.yaml")
    try:
        raw = yaml.load(read_text_file(path, shown, MAX_YAML_BYTES), Loader=_NoAliasLoader)  # noqa: S506 (safe)
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())[:200]
        raise _fail(shown, f"not valid YAML ({detail}); fix the file") from None
    except ValueError as exc:  # e.g. an integer of thousands of digits
        raise _fail(shown, f"a value cannot be read ({str(exc)[:120]}); fix the file") from None
    except RecursionError:
        raise _fail(shown, "nested too deeply to read; fix the file") from None
    if not isinstance(raw, dict):
        raise _fail(shown, "expected a mapping with models, axes and settings")
    _check_text(shown, raw)
    unknown = set(raw) - {"models", "runs", "baseline", "data", "axes", "settings"}
    if unknown:
        raise _fail(shown, f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; the keys are models, runs, "
                           f"baseline, data, axes, settings")
    models = raw.get("models")
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    if not isinstance(models, list) or not models or not all(isinstance(m, str) and m.strip() for m in models):
        raise _fail(shown, "models must list at least one model (run folder names, .pt/.yaml paths or zoo names)")
    axes_raw = raw.get("axes") or {}
    if not isinstance(axes_raw, dict):
        raise _fail(shown, "axes must be a mapping of axis name to a list of values")
    bad = set(axes_raw) - set(AXES)
    if bad:
        raise _fail(shown, f"unknown axis {', '.join(sorted(map(str, bad)))}; the axes are {', '.join(AXES)}")
    axes = {name: _axis(shown, name, axes_raw[name]) for name in AXES if name in axes_raw}
    settings = raw.get("settings") or {}
    if not isinstance(settings, dict):
        raise _fail(shown, "settings must be a mapping of ablate flag names to values")
    for key, value in settings.items():
        if not (_scalar_ok(value) or isinstance(value, list) and len(value) <= MAX_LIST_VALUES
                and all(_scalar_ok(v) and not isinstance(v, bool) for v in value)) or len(str(key)) > 100:
            raise _fail(shown, f"settings.{str(key)[:100]} must be a number, a word or a short list of them")
    by_axes = {AXES[name].setting for name in axes if AXES[name].setting}
    clash = {str(k).replace("-", "_") for k in settings} & (RESERVED | by_axes)
    if clash:
        raise _fail(shown, f"settings.{sorted(clash)[0]} is set by the sweep itself (an axis, or the sweep's "
                           f"folders); use axes or the sweep's own flags")
    for key in ("runs", "baseline", "data"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise _fail(shown, f"{key} must be a string")
    for key, value in [("runs", raw.get("runs")), ("data", raw.get("data")), *(("models", m) for m in models)]:
        if isinstance(value, str) and len(value.strip()) > MAX_PATH_CHARS:
            raise _fail(shown, f"{key} holds a path or name of {len(value.strip()):,} characters, longer than any "
                               f"path ({MAX_PATH_CHARS:,}); fix the file")
    spec = SweepSpec(shown, [m.strip() for m in models], axes, {str(k).replace("-", "_"): v for k, v in
                                                               settings.items()},
                     raw.get("runs") or "results/runs", raw.get("baseline"), raw.get("data"))
    if spec.studies_planned() > MAX_STUDIES:
        raise _fail(shown, f"the axes make {spec.studies_planned()} studies, above {MAX_STUDIES}; split the sweep")
    return spec
