"""A sweep's plan: one study per cell of the axes, its `ablate` flags, where it may run, and its content key.

A cell's study is `detbench ablate` over every model at the cell's settings. Its content key is the models
(names, weights SHA-256 and backends), every flag the study runs with (its folders aside), the device kind
and the benchmark list's hash: a resumed sweep skips a study whose key it has already finished. A cell that
cannot run (fp16 on a CPU, a backend on a device it does not run on, a flag value ablate refuses) is planned as
invalid, with ablate's own one-line reason, and the others still run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detbench.backends.formats import split_format
from detbench.errors import DetbenchError
from detbench.files.safe_io import read_regular_file
from detbench.limits import MAX_SMALL_FILE_BYTES
from detbench.names import name_problem
from detbench.study.models import ModelRun
from detbench.sweep.spec import AXES, SweepSpec

CPU_KIND = "cpu"
STUDIES_DIR = "studies"  # OUT/studies/NAME: each study's folder
ANY_GPU_KINDS = {"cuda", "gpu"}  # with --ray: any GPU; locally: this machine's GPUs
MAX_NAME_ROUNDS = 4  # rounds of hashing colliding study names (one is enough unless a cell is named like a hash)


@dataclass
class PlannedStudy:
    cell: dict[str, Any]  # axis -> value
    name: str  # its folder under OUT/studies
    argv: list[str]  # `ablate` flags, without --out, --list and --device (the executor adds them)
    device_kind: str  # "cpu", a GPU name (local), or a Ray accelerator type
    gpu: bool
    key: str = ""
    invalid: str | None = None  # why it cannot run (ablate's own error), planned but not run
    threads: int = 1
    key_argv: list[str] = field(default_factory=list)  # the flags as the sweep file gives them (what is keyed)

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "cell": self.cell, "key": self.key, "device_kind": self.device_kind,
                "gpu": self.gpu, "argv": self.argv, "invalid": self.invalid}


@dataclass
class Plan:
    studies: list[PlannedStudy]
    models: list[ModelRun]
    baseline: str
    identities: list[list[str | None]]  # each model's name, weights identity and backend
    code: dict[str, str]  # code_identity
    list_sha256: str | None = None

    @property
    def runnable(self) -> list[PlannedStudy]:
        return [s for s in self.studies if s.invalid is None]

    def key_with_list(self, list_sha256: str | None) -> None:
        """Every study's content key for this benchmark list (known once the list is made or checked)."""
        self.list_sha256 = list_sha256
        for study in self.studies:
            study.key = study_key(self.identities, study.key_argv, study.device_kind, list_sha256, self.code)


def _flag(key: str, value: Any, boolean_flags: set[str]) -> list[str]:
    if isinstance(value, bool):
        if value:
            return [f"--{key}"]
        return [f"--no-{key}"] if key in boolean_flags else []
    if isinstance(value, list):
        return [part for item in value for part in (f"--{key}", str(item))]
    return [f"--{key}", str(value)]


def _cell_name(cell: dict[str, Any]) -> str:
    short = {"imgsz": "imgsz", "batch": "b", "precision": "", "format": "", "threads": "t", "device_kind": ""}
    parts = [f"{short[axis]}{cell[axis]}" for axis in AXES if axis in cell]
    raw = "-".join(parts) or "default"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in raw)[:120]


def _ablate_parser() -> argparse.ArgumentParser:
    from detbench.cli import build_parser

    return build_parser().commands["ablate"]


def setting_flags(spec: SweepSpec, parser: argparse.ArgumentParser) -> list[str]:
    """The spec's `settings` as ablate flags; a one-line error for a key ablate does not take."""
    known = {opt[2:].replace("-", "_") for action in parser._actions for opt in action.option_strings}
    dests = {action.dest: action for action in parser._actions}
    boolean = {opt[5:] for action in parser._actions for opt in action.option_strings if opt.startswith("--no-")}
    flags: list[str] = []
    for key, value in spec.settings.items():
        name = "plugin" if key == "plugins" else key
        if name not in known and key not in dests:
            raise DetbenchError(f"{spec.path}: settings.{key} is not an ablate flag; see detbench ablate --help")
        flags += _flag(name, value, boolean)
    return flags


def _cells(spec: SweepSpec) -> list[dict[str, Any]]:
    names = [axis for axis in AXES if axis in spec.axes]
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(spec.axes[n] for n in names))]


PATH_SUFFIXES = (".pt", ".yaml", ".yml", ".py")


def _absolute(entry: str) -> str:
    """A model entry (.pt/.yaml, with its @FORMAT), a data YAML or a plugin file (.py) given by a relative path,
    made absolute (a Ray task runs in another folder, maybe on another node). Names (zoo models, run folders,
    plugin modules) stay as they are, even when a folder of that name happens to be here."""
    name, fmt = split_format(entry)
    path = Path(name)
    if path.suffix.lower() in PATH_SUFFIXES and not path.is_absolute():
        name = str(path.resolve())
    return f"{name}@{fmt}" if fmt else name


def cell_argv(spec: SweepSpec, cell: dict[str, Any], settings: list[str], absolute: bool = False) -> list[str]:
    """The study's ablate flags; `absolute`: with every relative path made absolute (what runs), else as the sweep
    file gives them (what the content key holds, so that it does not depend on the current folder)."""
    fix = _absolute if absolute else (lambda value: value)
    runs = str(Path(spec.runs).resolve()) if absolute else spec.runs
    argv = ["--models", ",".join(fix(m) for m in spec.models), "--runs", runs]
    if spec.baseline:
        argv += ["--baseline", spec.baseline]
    if spec.data:
        argv += ["--data", fix(spec.data)]
    for axis in ("imgsz", "batch", "threads", "format"):
        if axis in cell:
            argv += [f"--{axis}", str(cell[axis])]
    if cell.get("precision") == "fp16":
        argv.append("--half")
    if absolute:
        settings = [fix(value) if previous == "--plugin" else value
                    for previous, value in zip(["", *settings][:len(settings)], settings, strict=True)]
    return argv + settings


def check_cell(parser: argparse.ArgumentParser, argv: list[str], gpu: bool, local: bool) -> tuple[str | None, int]:
    """Why ablate (`parser`, its flags) would refuse this study on its device (None if it would not), and its
    threads."""
    from detbench.study.ablation import options_from_args, study_config, validate_options

    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = parser.parse_args([*argv, "--device", "0" if gpu else "cpu", "--out", "sweep-check"])
    except SystemExit:
        detail = (stderr.getvalue().strip().splitlines() or ["the flags are refused"])[-1]
        detail = detail.removeprefix("detbench ablate: ").removeprefix("error: ")
        raise DetbenchError(f"the sweep's flags are refused by ablate ({detail}); "
                            f"fix the sweep file's settings or axes") from None
    opts = options_from_args(args)
    try:
        validate_options(opts)
        config = study_config(opts.bench, opts.out)
        if config.half and not gpu:
            raise DetbenchError("precision fp16 (--half) needs a GPU; this study's device kind is the CPU")
        from detbench.backends.formats import check_format

        check_format(config.format, "cuda" if gpu else "cpu", vars(config), runtime=local)
    except DetbenchError as exc:
        return str(exc), 1
    return None, config.threads


def study_key(models: list[list[str | None]], argv: list[str], device_kind: str, list_sha256: str | None,
              code: dict[str, str]) -> str:
    content = {"models": models, "argv": argv, "device_kind": device_kind, "list_sha256": list_sha256,
               "code": code}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def code_identity(spec: SweepSpec) -> dict[str, str]:
    """What else decides a study's figures: the versions of detbench, torch and Ultralytics, and each plugin
    file's content (its path alone would not change when the file does)."""
    import torch
    import ultralytics

    from detbench.version import __version__

    found = {"detbench": __version__, "torch": torch.__version__, "ultralytics": ultralytics.__version__}
    plugins = spec.settings.get("plugin", spec.settings.get("plugins")) or []
    for plugin in plugins if isinstance(plugins, list) else [plugins]:
        path = Path(str(plugin))
        found[f"plugin:{plugin}"] = (hashlib.sha256(read_regular_file(path, f"{spec.path}: settings.plugin {plugin}",
                                                                      MAX_SMALL_FILE_BYTES)).hexdigest()
                                     if path.is_file() else str(plugin))
    return found


def _unique_names(studies: list[PlannedStudy]) -> None:
    """Cells whose names collide once made safe for a folder (`A100 40GB`, `A100_40GB`) get their cell's hash; a
    name made so may collide again (with a cell named `A100_40GB-f6c2eed4`): those get a further hash, until every
    name is unique (`check_names` refuses what still is not)."""
    for attempt in range(MAX_NAME_ROUNDS):
        counts: dict[str, int] = {}
        for study in studies:
            counts[study.name] = counts.get(study.name, 0) + 1
        if all(count == 1 for count in counts.values()):
            return
        for study in studies:
            if counts[study.name] > 1:
                content = study.cell if attempt == 0 else [study.name, study.cell]
                digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:8]
                study.name = f"{study.name[:110]}-{digest}"


def check_names(spec: SweepSpec, studies: list[PlannedStudy]) -> None:
    """Every study's folder name is one plain name (the rules of a model's name: not empty, `.` or `..`, no path
    separator, no leading `.` or `-`, ...): OUT/studies/.. would be OUT itself. One line naming the cell."""
    seen: set[str] = set()
    for study in studies:
        problem = ("is '.' or '..' (OUT/studies/.. would be OUT itself)" if study.name in {".", ".."}
                   else name_problem(study.name) or ("is another cell's too" if study.name in seen else None))
        seen.add(study.name)
        if problem:
            values = ", ".join(f"{axis} {value}" for axis, value in study.cell.items()) or "no axes"
            raise DetbenchError(f"{spec.path}: the cell ({values}) makes the study folder name {study.name[:80]!r}, "
                                f"which {problem}; change that axis value")


def make_plan(spec: SweepSpec, local_kind: tuple[str, bool] | None, list_sha256: str | None = None) -> Plan:
    """The studies of `spec`. `local_kind`: (this machine's device kind, is a GPU) for the local executor; None
    when the studies go to Ray, whose device kinds come from the `device_kind` axis (default: cpu). A device
    kind is `cpu`, a GPU's name (local) or a Ray accelerator type; the CPU's model is checked on resume (`run`)."""
    from detbench.study.ablation import choose_baseline, weights_identity
    from detbench.study.models import resolve_models

    models = resolve_models(spec.models, spec.runs)
    baseline = choose_baseline(models, spec.baseline)
    identities = [[run.name, weights_identity(run), run.format] for run in models]
    parser = _ablate_parser()
    settings = setting_flags(spec, parser)
    studies = []
    for cell in _cells(spec):
        wanted = cell.get("device_kind")
        generic = str(wanted).lower() if wanted is not None else None
        if local_kind is not None:
            kind, gpu = local_kind
            if wanted is not None and not (generic == CPU_KIND and not gpu or generic in ANY_GPU_KINDS and gpu):
                raise DetbenchError(f"{spec.path}: axes.device_kind {wanted}: this machine runs "
                                    f"{'GPU' if gpu else 'CPU'} studies ({kind}); other device kinds need --ray")
        elif generic in {CPU_KIND, None}:
            kind, gpu = CPU_KIND, False
        else:
            kind, gpu = ("cuda" if generic in ANY_GPU_KINDS else str(wanted)), True
        argv = cell_argv(spec, cell, settings, absolute=True)
        try:
            invalid, threads = check_cell(parser, argv, gpu, local=local_kind is not None)
        except DetbenchError as exc:
            raise DetbenchError(f"{spec.path}: {exc}") from None
        studies.append(PlannedStudy(cell, _cell_name(cell), argv, kind, gpu, invalid=invalid, threads=threads,
                                    key_argv=cell_argv(spec, cell, settings)))
    _unique_names(studies)
    check_names(spec, studies)
    plan = Plan(studies, models, baseline, identities, code_identity(spec))
    plan.key_with_list(list_sha256)
    return plan
