"""A sweep's plan: one study per cell of the axes, its `ablate` flags, where it may run, and its content key.

A cell's study is `detbench ablate` over every model at the cell's settings: a `StudyConfig`, the sweep file's
settings checked against its fields and BenchConfig's. Its content key is the SettingKey's digest of the models
(names, weights SHA-256 and backends), the compared settings, the study's design, the device kind, the benchmark
list's hash and the code: a resumed sweep skips a study whose key it has already finished. A cell that cannot run
(fp16 on a CPU, a backend on a device it does not run on, a value ablate refuses) is planned as invalid, with
ablate's own one-line reason, and the others still run.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from detbench.backends.formats import check_format, split_format
from detbench.errors import DetbenchError
from detbench.files.safe_io import read_regular_file
from detbench.flags import flag_fields, flag_name, typed
from detbench.limits import MAX_SMALL_FILE_BYTES
from detbench.names import name_problem
from detbench.report.setting import SettingKey
from detbench.study.models import ModelRun
from detbench.study.options import StudyConfig
from detbench.sweep.spec import AXES, SweepSpec

CPU_KIND = "cpu"
STUDIES_DIR = "studies"  # OUT/studies/NAME: each study's folder
ANY_GPU_KINDS = {"cuda", "gpu"}  # with --ray: any GPU; locally: this machine's GPUs
MAX_NAME_ROUNDS = 4  # rounds of hashing colliding study names (one is enough unless a cell is named like a hash)


@dataclass
class PlannedStudy:
    cell: dict[str, Any]  # axis -> value
    name: str  # its folder under OUT/studies
    config: StudyConfig  # without its folders and device (the executor sets them)
    device_kind: str  # "cpu", a GPU name (local), or a Ray accelerator type
    gpu: bool
    key: str = ""
    invalid: str | None = None  # why it cannot run (ablate's own error), planned but not run
    threads: int = 1

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "cell": self.cell, "key": self.key, "device_kind": self.device_kind,
                "gpu": self.gpu, "argv": self.config.argv(), "invalid": self.invalid}


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
            key = SettingKey.of_config(study.config.bench_values(), study.device_kind, list_sha256)
            study.key = key.digest(models=self.identities, design=study.config.design(self.baseline), code=self.code)


def _cell_name(cell: dict[str, Any]) -> str:
    parts = [f"{axis.mark}{cell[name]}" for name, axis in AXES.items() if name in cell]
    raw = "-".join(parts) or "default"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in raw)[:120]


def _settings(spec: SweepSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """The spec's `settings` as (StudyConfig fields, bench fields), each value typed as its flag would parse it; a
    one-line error for a key ablate does not take."""
    own = {item.name: item for item in flag_fields(StudyConfig)}
    bench = {item.name: item for item in flag_fields(pass_through=True)}
    found: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
    for key, value in spec.settings.items():
        name = LEGACY_KEYS.get(key, key)
        for table, values in zip((own, bench), found, strict=True):
            item = table.get(name) or next((i for i in table.values() if flag_name(i) == name), None)
            if item is not None:
                try:
                    values[item.name] = typed(item, value, f"settings.{key}")
                except DetbenchError as exc:
                    raise DetbenchError(f"{spec.path}: the sweep's flags are refused by ablate ({exc}); fix the "
                                        f"sweep file's settings or axes") from None
                break
        else:
            raise DetbenchError(f"{spec.path}: settings.{key} is not an ablate flag; see detbench ablate --help")
    return found


LEGACY_KEYS = {"max_time": "study_time"}  # a sweep file's key for a flag since renamed


def _cells(spec: SweepSpec) -> list[dict[str, Any]]:
    names = [axis for axis in AXES if axis in spec.axes]
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(spec.axes[n] for n in names))]


PATH_SUFFIXES = (".pt", ".yaml", ".yml", ".py")


def _absolute(entry: str) -> str:
    """A model entry (.pt/.yaml, with its @FORMAT), a data YAML or a plugin file (.py) given by a relative path,
    made absolute (a Ray task runs in another folder, maybe on another node). Names (zoo models, run folders,
    plugin modules, a bare file name that is not here: a model YAML Ultralytics ships, e.g. yolov8n.yaml) stay as
    they are, even when a folder of that name happens to be here."""
    name, fmt = split_format(entry)
    path = Path(name)
    if (path.suffix.lower() in PATH_SUFFIXES and not path.is_absolute()
            and (len(path.parts) > 1 or path.exists())):
        name = str(path.resolve())
    return f"{name}@{fmt}" if fmt else name


def cell_config(spec: SweepSpec, cell: dict[str, Any], own: dict[str, Any], bench: dict[str, Any]) -> StudyConfig:
    """The study of a cell (`own`, `bench`: the sweep file's settings), every relative path made absolute (a Ray
    task runs in another folder)."""
    bench = dict(bench)
    if spec.data:
        bench["data"] = _absolute(spec.data)
    bench["plugins"] = [_absolute(plugin) for plugin in bench.get("plugins", [])]
    bench.update({AXES[name].setting: AXES[name].as_setting(value) for name, value in cell.items()
                  if AXES[name].setting})
    return replace(StudyConfig(), **own, models=[_absolute(m) for m in spec.models],
                   runs=str(Path(spec.runs).resolve()), baseline=spec.baseline, bench=bench)


def check_cell(config: StudyConfig, gpu: bool, local: bool) -> tuple[str | None, int]:
    """Why ablate would refuse this study on its device (None if it would not), and its threads."""
    try:
        bench = replace(config, bench={**config.bench, "device": "0" if gpu else "cpu"}).validate()
        if bench.half and not gpu:
            raise DetbenchError("precision fp16 (--half) needs a GPU; this study's device kind is the CPU")
        check_format(bench.format, "cuda" if gpu else "cpu", vars(bench), runtime=local)
    except DetbenchError as exc:
        return str(exc), 1
    return None, bench.threads


def code_identity(spec: SweepSpec) -> dict[str, str]:
    """What else decides a study's figures: the versions of detbench, torch and Ultralytics, and each plugin
    file's content (its path alone would not change when the file does)."""
    # imported here, not at the top: torch and Ultralytics, kept out of the command line's start-up
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
    # imported here, not at the top: they load torch, kept out of the command line's start-up
    from detbench.study.ablation import choose_baseline, weights_identity
    from detbench.study.models import resolve_models

    models = resolve_models(spec.models, spec.runs)
    baseline = choose_baseline(models, spec.baseline)
    identities = [[run.name, weights_identity(run), run.format] for run in models]
    settings = _settings(spec)
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
        config = cell_config(spec, cell, *settings)
        invalid, threads = check_cell(config, gpu, local=local_kind is not None)
        studies.append(PlannedStudy(cell, _cell_name(cell), config, kind, gpu, invalid=invalid, threads=threads))
    _unique_names(studies)
    check_names(spec, studies)
    plan = Plan(studies, models, baseline, identities, code_identity(spec))
    plan.key_with_list(list_sha256)
    return plan
