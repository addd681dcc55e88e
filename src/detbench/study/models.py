"""The models of a study: found under --runs (NAME/seed*/weights/best.pt) or named by --models.

A model trained with several seeds is benchmarked once, at its lowest seed
(seed0 when present): the seeds share the architecture, and latency depends on
the architecture, not on the trained values. Every name must make a safe
report file name (OUT/NAME.json), checked before anything runs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from detbench import text, zoo
from detbench.backends.formats import split_format
from detbench.errors import DetbenchError
from detbench.models.loading import model_name_for
from detbench.names import check_model_name, seed_number


@dataclass(frozen=True)
class ModelRun:
    name: str
    weights: str  # a path as found or given, or a zoo name
    note: str = ""
    format: str | None = None  # `--models ENTRY@FORMAT`: this model's backend (None: the study's --format)


def _seed_number(run_dir: Path) -> int:
    number = seed_number(run_dir.name)
    return sys.maxsize if number is None else number


def _pick_seed(name: str, checkpoints: list[Path]) -> ModelRun:
    """The lowest seed's best.pt; a note when there were several."""
    ordered = sorted(checkpoints, key=lambda p: (_seed_number(p.parent.parent), str(p)))
    chosen = ordered[0]
    note = ""
    if len(ordered) > 1:
        seeds = ", ".join(p.parent.parent.name for p in ordered)
        note = (f"{len(ordered)} seeds ({seeds}): benchmarking {chosen.parent.parent.name} (same architecture, "
                f"so the same latency); pass its path in --models to choose another")
    return ModelRun(name, str(chosen), note)


def zoo_order(name: str) -> tuple[int, str]:
    """Sort key of model names: the zoo's ablation order (baseline, ghost, eca, ...), then other names by name."""
    return (zoo.MODELS.index(name) if name in zoo.MODELS else len(zoo.MODELS), name)


def discover_runs(runs_dir: str | Path) -> list[ModelRun]:
    """Every RUNS/NAME/seed*/weights/best.pt (or RUNS/NAME/weights/best.pt), one per NAME, in `zoo_order`."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise DetbenchError(f"--runs {runs_dir}: no such folder; point it at the training runs "
                            f"(NAME/seed0/weights/best.pt) or pass --models")
    found: dict[str, list[Path]] = {}
    for best in runs_dir.glob("*/seed*/weights/best.pt"):
        if seed_number(best.parent.parent.name) is not None and best.is_file():
            found.setdefault(best.parent.parent.parent.name, []).append(best)
    for best in runs_dir.glob("*/weights/best.pt"):
        if best.is_file() and best.parent.parent.name not in found:
            found[best.parent.parent.name] = [best]
    if not found:
        raise DetbenchError(f"--runs {runs_dir}: no NAME/seed*/weights/best.pt inside; train the models first or "
                            f"pass --models")
    runs = [_pick_seed(name, found[name]) for name in sorted(found, key=zoo_order)]
    check_names(runs, f"--runs {runs_dir}")
    return runs


def check_names(runs: Sequence[ModelRun], source: str) -> None:
    """Every model name must make a safe report file name (OUT/NAME.json), checked before any model runs."""
    for run in runs:
        check_model_name(run.name, f"{source}: model {run.weights}", "rename its run folder (the report is "
                                                                      "OUT/NAME.json)")


def resolve_models(names: Sequence[str], runs_dir: str | Path) -> list[ModelRun]:
    """--models entries: a run folder name under RUNS, a .pt/.yaml path, or a zoo model name; each may end in
    @FORMAT (e.g. baseline@onnx) to run that model in that backend, named NAME@FORMAT."""
    runs = [_with_format(run, fmt) for run, fmt in (_resolve_one(*split_format(raw), runs_dir) for raw in names)]
    check_names(runs, "--models")
    names_seen: set[str] = set()
    for run in runs:
        if run.name in names_seen:
            raise DetbenchError(f"--models: two models would both be named '{run.name}'; list each once")
        names_seen.add(run.name)
    if not runs:
        raise DetbenchError("--models is empty: give comma-separated names, e.g. baseline,ghost")
    return runs


def _with_format(run: ModelRun, fmt: str | None) -> ModelRun:
    return run if fmt is None else ModelRun(f"{run.name}@{fmt}", run.weights, run.note, fmt)


def _resolve_one(raw: str, fmt: str | None, runs_dir: str | Path) -> tuple[ModelRun, str | None]:
    """One --models entry (its @FORMAT already split off) as a run, and that format; an entry (or --runs) the
    file system cannot look up (a name too long, a NUL byte, a lone surrogate) is a one-line error naming it."""
    try:
        return _lookup(raw, fmt, runs_dir)
    except (OSError, ValueError) as exc:  # ValueError: also UnicodeError
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise DetbenchError(f"--models {text.bounded(raw)} (under --runs {text.bounded(runs_dir)}): cannot be "
                            f"looked up as a file or run folder ({reason}); give a shorter, plain model entry "
                            f"or --runs") from None


def _lookup(raw: str, fmt: str | None, runs_dir: str | Path) -> tuple[ModelRun, str | None]:
    path, run_dir = Path(raw), Path(runs_dir) / raw
    if path.suffix.lower() in {".pt", ".yaml", ".yml"}:
        if not path.is_file() and path.suffix.lower() == ".pt":
            raise DetbenchError(f"--models {raw}: file not found")
        return ModelRun(model_name_for(str(path)), raw), fmt
    if run_dir.is_dir():
        checkpoints = [p for p in run_dir.glob("seed*/weights/best.pt")
                       if seed_number(p.parent.parent.name) is not None]
        if not checkpoints and (run_dir / "weights" / "best.pt").is_file():
            checkpoints = [run_dir / "weights" / "best.pt"]
        if not checkpoints:
            raise DetbenchError(f"--models {raw}: {run_dir} holds no seed*/weights/best.pt")
        return _pick_seed(raw, checkpoints), fmt
    if raw in zoo.MODELS:
        return ModelRun(raw, raw, "zoo YAML: untrained weights (latency only)"), fmt
    raise DetbenchError(f"--models {raw}: no run folder {run_dir}, no such .pt/.yaml file, and not a zoo "
                        f"model ({', '.join(zoo.MODELS)})")
