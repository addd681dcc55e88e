"""A report already at OUT/NAME.json is replaced only by a run of the same settings, unless --force says so.

Benchmarking a model at one image size and then at another into the same
folder would otherwise replace the first report without a word. The settings
compared are those that change the numbers (BenchConfig fields marked
`compared`, the device as resolved, and the weights' SHA-256): re-running
the same benchmark replaces its report as before, and any run replaces the
report of a run that did not finish (status "oom").

A study (`ablate`) that writes OUT/NAME.json where a separate `detbench bench`
run of that model left its report moves that report to
OUT/separate_runs/NAME.json first (`set_aside`), after saying so: the
README's quick start benchmarks models one by one, then runs the study into
the same folder, and neither result is lost.
"""

from __future__ import annotations

import errno
import os
from dataclasses import fields
from pathlib import Path

from detbench import text
from detbench.config import BenchConfig
from detbench.data.benchmark_list import LIST_FILENAME, existing_list_sha256
from detbench.errors import DetbenchError
from detbench.files.out_tree import folder_below
from detbench.report.model import Report
from detbench.report.schema import load_report, shown
from detbench.report.setting import SettingKey

SEPARATE_RUNS_DIRNAME = "separate_runs"  # OUT/separate_runs/NAME.json: a `bench` report a study replaced
NO_HARD_LINKS = {errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}  # os.link not possible


def differences(path: Path, cfg: BenchConfig, device: str, sha256: str | None, by_study: bool = False,
                list_sha256: str | None = None) -> list[str]:
    """How the report at `path` was made differently from this run ("--imgsz 64, now 96"); empty if the same,
    or if it records a run that did not finish (e.g. status "oom": the next run at a smaller --batch replaces it).

    `by_study`: the run is a study (`ablate`), which replaces the reports of an earlier study in its folder
    when the weights changed, but not a `bench` report, whose own run would be lost. `list_sha256`: the list the
    run used (a finished report's), instead of the one it would find at `cfg`'s list path."""
    report = load_report(path)
    if report.status != "ok":
        return []
    found = []
    if by_study and not report.study:
        found.append("made by `detbench bench`, not by a study")
    if report.study and not by_study:  # its samples carry the study's rounds: the verdicts are rebuilt from them
        found.append(f"made by interleaved study {shown(report.study.get('id'))}, whose pairing would be lost")
    run = SettingKey.of_config(cfg, device, list_sha256 or existing_list_sha256(
        Path(cfg.list_path) if cfg.list_path else Path(cfg.out) / LIST_FILENAME), sha256)
    return found + SettingKey.of_report(report).changes_to(run, weights=not by_study)


def refuse_replacing_other_settings(path: Path, cfg: BenchConfig, device: str, sha256: str | None,
                                    by_study: bool = False, fix: str | None = None,
                                    list_sha256: str | None = None) -> None:
    """One-line error when `path` holds a report of other settings (or is no readable report at all); with or
    without --force when `path` is not a file at all (a folder there would fail only after the whole run).
    `by_study`: see `differences`."""
    if os.path.lexists(path) and not (path.is_file() or path.is_symlink()):
        raise DetbenchError(f"{text.terminal(path)}: is not a file (a folder?), so the report cannot be written "
                            f"there; remove it or give this run another --name or --out")
    if cfg.force or not path.exists():
        return
    try:
        found = differences(path, cfg, device, sha256, by_study, list_sha256)
    except Exception:  # any file this run cannot read as a report of the same settings is not replaced silently
        found = ["it is not a readable detbench report"]
    if found:  # every difference is named: the one that matters may be any of them
        other = "this study another --out" if by_study else "this run another --name or --out"
        kind = "of other settings" if any(not reason.startswith("made by") for reason in found) else \
            "of another kind of run"
        raise DetbenchError(f"{text.terminal(path)}: already holds a report {kind} "
                            f"({'; '.join(found)}); {fix or f'give {other}, or pass --force to replace it'}")


def refuse_replacing_with(path: Path, report: Report) -> None:
    """The same rule for a finished report saved by the API (`Report.save`): a report of other settings at `path`
    is not replaced. The settings compared are the report's own (its config, device, weights and list hashes)."""
    if not os.path.lexists(path):
        return
    fix = "save into another folder, or with force=True to replace it"
    if report.config is None:
        raise DetbenchError(f"{text.terminal(path)}: this report records no settings, so it cannot be checked against "
                            f"the one there; {fix}")
    known = {item.name for item in fields(BenchConfig)}  # a newer version's settings are not compared
    cfg = BenchConfig.from_dict({key: value for key, value in report.config.items() if key in known} | {"force": False})
    refuse_replacing_other_settings(path, cfg, str(report.metadata.device or ""), report.metadata.weights_sha256,
                                    fix=fix, list_sha256=report.inputs.list_sha256)


def is_separate_run(path: Path, fmt: str | None) -> bool:
    """True when `path` is a regular file holding a finished report of `detbench bench` (not of a study) in the
    backend `fmt` (None: any): a report of another backend under the same name is no run of the same model to
    keep aside, unless it would be replaced anyway (--force)."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        report = load_report(path)
    except Exception:  # unreadable: not a separate run (the study's refusal names it)
        return False
    return report.status == "ok" and not report.study and fmt in (None, (report.config or {}).get("format", "pytorch"))


def separate_runs_problem(out: Path) -> str | None:
    """Why OUT/separate_runs cannot take a set-aside report (a symlink, not a folder, not writable), or None."""
    folder = out / SEPARATE_RUNS_DIRNAME
    try:
        folder_below(out, SEPARATE_RUNS_DIRNAME, create=False)
    except DetbenchError:
        return f"{text.terminal(folder)}: is a symlink or not a folder, so no report can be kept there; remove it"
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        return f"{text.terminal(folder)}: cannot write in it, so no report can be kept there; fix its permissions"
    return None


def set_aside_path(path: Path) -> Path:
    """Where a study keeps the `bench` report it replaces: OUT/separate_runs/NAME.json, or NAME-2.json, … when
    that is taken."""
    folder = path.parent / SEPARATE_RUNS_DIRNAME
    candidate, number = folder / path.name, 2
    while os.path.lexists(candidate):
        candidate, number = folder / f"{path.stem}-{number}{path.suffix}", number + 1
    return candidate


def set_aside(path: Path) -> Path:
    """Move the `bench` report at `path` to `set_aside_path` (the bytes as they were, never over another file);
    the new path."""
    problem = separate_runs_problem(path.parent)
    if problem:
        raise DetbenchError(problem)
    folder_below(path.parent, SEPARATE_RUNS_DIRNAME)
    while True:
        target = set_aside_path(path)
        try:
            os.link(path, target, follow_symlinks=False)  # fails if `target` appeared meanwhile: never replaces it
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in NO_HARD_LINKS:
                raise
            os.rename(path, target)  # a file system without hard links: the name was free a moment ago
            return target
        try:
            os.unlink(path)
        except OSError:
            os.unlink(target)  # no second copy left behind: the report stays where it was, and the error says why
            raise
        return target
