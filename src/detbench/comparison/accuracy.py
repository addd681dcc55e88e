"""Accuracy of a benchmarked checkpoint, read from its Ultralytics training run.

A checkpoint at ``RUN/weights/best.pt`` comes from a run folder whose
``RUN/results.csv`` holds one row per epoch. ``best.pt`` is the epoch with the
highest Ultralytics fitness, so that row's ``metrics/mAP50(B)`` and
``metrics/mAP50-95(B)`` are the checkpoint's accuracy on the run's val split.

Fitness: Ultralytics releases before 8.4 used ``0.1 * mAP50 + 0.9 *
mAP50-95``; 8.4 (``Metric.fitness`` in ``ultralytics/utils/metrics.py``) uses
``mAP50-95`` alone. The weights follow the Ultralytics version recorded in the
report. On a tie the trainer rewrites ``best.pt`` at the later epoch (it saves
whenever the epoch's fitness equals the best so far), so the last of the tied
epochs is taken. Older versions pad the CSV headers with spaces; they are
stripped.

The report says where its checkpoint is, and the report may be crafted: the
run folder's ``results.csv`` is read only as a regular file of at most
``MAX_SMALL_FILE_BYTES`` (never a device or FIFO), and a file that is there
but cannot be used is a one-line DetbenchError naming it.
"""

from __future__ import annotations

import csv
import io
import math
import os
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detbench.checkpoint import fingerprint
from detbench.errors import DetbenchError
from detbench.files.safe_io import read_text_file
from detbench.limits import (
    MAX_RESULTS_CSV_COLUMNS,
    MAX_RESULTS_CSV_TOTAL_BYTES,
    MAX_SEED_CHECKPOINT_TOTAL_BYTES,
    MAX_SEED_FOLDER_ENTRIES,
    MAX_SMALL_FILE_BYTES,
    MAX_TRAINED_SEEDS,
)
from detbench.names import seed_number
from detbench.report.model import Report

MAP50 = "metrics/mAP50(B)"
MAP50_95 = "metrics/mAP50-95(B)"
LEGACY_WEIGHTS = (0.1, 0.9)  # (mAP50, mAP50-95), Ultralytics < 8.4
CURRENT_WEIGHTS = (0.0, 1.0)  # Ultralytics >= 8.4
CSV_FIX = "remove it or move it out of the run folder"
MAX_EPOCH = 10**9  # an epoch number beyond is not shown


@dataclass(frozen=True)
class Accuracy:
    """One run's best epoch; or, across several trained seeds, the mean with the sample sd and each seed's own."""

    map50: float  # across seeds: the mean
    map50_95: float
    epoch: int | None  # across seeds: None (each seed's is in `seeds`)
    source: Path  # results.csv; across seeds: the model's folder that holds seed*/
    fitness: str  # the formula used to pick the epoch
    map50_sd: float | None = None  # across seeds: the sample standard deviation; one run: None
    map50_95_sd: float | None = None
    n_seeds: int = 1
    seeds: tuple[Accuracy, ...] = ()  # across seeds: each seed's best epoch, in seed order


def fitness_weights(ultralytics_version: str | None) -> tuple[float, float]:
    """(w_mAP50, w_mAP50-95) of the fitness that picked best.pt in that Ultralytics version."""
    try:
        major, minor = (int(part) for part in str(ultralytics_version).split(".")[:2])
    except ValueError:
        return CURRENT_WEIGHTS
    return LEGACY_WEIGHTS if (major, minor) < (8, 4) else CURRENT_WEIGHTS


def weights_path(report: Report) -> Path | None:
    """The report's checkpoint (relative paths resolved against the folder the run was started in), if any."""
    weights = report.metadata.weights
    if not isinstance(weights, str) or not weights or (report.metadata.model_source or "checkpoint") != "checkpoint":
        return None
    path = Path(weights)
    cwd = report.cwd
    return Path(cwd) / path if not path.is_absolute() and isinstance(cwd, str) and cwd else path


def results_csv_for(report: Report) -> Path | None:
    """RUN/results.csv when the report's weights sit at RUN/weights/*.pt and that file exists, else None."""
    path = weights_path(report)
    if path is None or path.parent.name != "weights":
        return None
    candidate = path.parent.parent / "results.csv"
    return candidate if os.path.lexists(candidate) else None


def _lines(path: Path, content: str) -> Iterator[str]:
    """The file's lines, each of at most MAX_RESULTS_CSV_COLUMNS columns (checked before the CSV reader splits
    it, so no row costs more than that)."""
    for line in io.StringIO(content, newline=""):
        if line.count(",") >= MAX_RESULTS_CSV_COLUMNS:
            raise DetbenchError(f"{path}: a row of {line.count(',') + 1:,} columns, more than a results.csv holds "
                                f"(at most {MAX_RESULTS_CSV_COLUMNS:,}); {CSV_FIX}")
        yield line


def read_results(results_csv: str | Path, wanted: tuple[str, ...] = ("epoch", MAP50, MAP50_95)) -> Iterator[
        dict[str, str]]:
    """The `wanted` cells (stripped) of each row of a results.csv, by its stripped headers (the last column of a
    header given twice), one row at a time; a file that cannot be read, or with a row of more than
    MAX_RESULTS_CSV_COLUMNS columns, is a one-line DetbenchError. Ultralytics never quotes a cell: a quote is
    read as text, so each line is one row."""
    path = Path(results_csv)
    content = read_text_file(path, f"{path}", MAX_SMALL_FILE_BYTES, CSV_FIX)
    try:
        rows = csv.reader(_lines(path, content), quoting=csv.QUOTE_NONE)
        columns = {name.strip(): index for index, name in enumerate(next(rows, []))}
        taken = [(name, columns[name]) for name in wanted if name in columns]
        for row in rows:
            if row:
                yield {name: row[index].strip() for name, index in taken if index < len(row)}
    except csv.Error as exc:
        raise DetbenchError(f"{path}: not a CSV file ({exc}); {CSV_FIX}") from exc


def best_epoch(results_csv: str | Path, weights: tuple[float, float] = CURRENT_WEIGHTS) -> Accuracy | None:
    """mAP50 and mAP50-95 of the best epoch by fitness; None when the file has no usable mAP rows, a one-line
    DetbenchError naming the file and column when an mAP is outside 0 to 1."""
    path = Path(results_csv)
    best: tuple[float, float, float, int | None] | None = None
    for row in read_results(path):
        map50, map50_95 = _map(path, row, MAP50), _map(path, row, MAP50_95)
        if map50 is None or map50_95 is None:
            continue
        fitness = weights[0] * map50 + weights[1] * map50_95
        epoch = _number(row.get("epoch"))
        if best is None or fitness >= best[0]:  # ties: the later epoch, as the trainer does
            best = (fitness, map50, map50_95, int(epoch) if epoch is not None and 0 <= epoch <= MAX_EPOCH else None)
    if best is None:
        return None
    formula = "mAP50-95" if weights == CURRENT_WEIGHTS else f"{weights[0]:g}*mAP50 + {weights[1]:g}*mAP50-95"
    return Accuracy(map50=best[1], map50_95=best[2], epoch=best[3], source=path, fitness=formula)


class SeedArchitectureError(DetbenchError):
    """A seed folder's checkpoint has another architecture than the benchmarked one: its mAP is another model's."""


def seed_runs(run: Path) -> list[Path]:
    """The trained seeds of the model whose run is `run`: every seed*/ folder beside it that holds a results.csv,
    in seed order, when `run` is itself such a folder (NAME/seedK); else [run]. A seed*/ entry that is a symbolic
    link is a DetbenchError naming it (its mAP could be any run's)."""
    if seed_number(run.name) is None:
        return [run]
    found: list[tuple[int, Path]] = []
    try:
        with os.scandir(run.parent) as entries:
            for count, entry in enumerate(entries):
                if count >= MAX_SEED_FOLDER_ENTRIES:
                    raise _too_many(run.parent)
                number = seed_number(entry.name)
                if number is not None and _seed_folder(run.parent, entry) \
                        and os.path.lexists(Path(entry.path) / "results.csv"):
                    found.append((number, Path(entry.path)))
                    if len(found) > MAX_TRAINED_SEEDS:
                        raise _too_many(run.parent)
    except OSError as exc:
        raise DetbenchError(f"{run.parent}: cannot list its seed folders ({exc.strerror}); check its "
                            "permissions") from exc
    return [path for _, path in sorted(found)] or [run]


def _too_many(folder: Path) -> DetbenchError:
    return DetbenchError(f"{folder}: more than {MAX_TRAINED_SEEDS} seed folders or {MAX_SEED_FOLDER_ENTRIES:,} "
                         "entries; keep only the trained seed*/ folders")


def _seed_folder(folder: Path, entry: os.DirEntry[str]) -> bool:
    """Whether a seed*/ entry is a folder of its own inside `folder`; a symbolic link (which could lead anywhere,
    or to another seed counted twice) is a DetbenchError naming it."""
    if entry.is_symlink():
        raise DetbenchError(f"{entry.path}: a symbolic link, not a seed folder of its own; replace it with the "
                            f"seed's own folder or move it out of {folder}")
    return entry.is_dir(follow_symlinks=False)


def across_seeds(seeds: list[Accuracy], folder: Path) -> Accuracy:
    """Mean and sample standard deviation of the seeds' best epochs (two or more)."""
    map50, map50_95 = [seed.map50 for seed in seeds], [seed.map50_95 for seed in seeds]
    return Accuracy(map50=statistics.fmean(map50), map50_95=statistics.fmean(map50_95), epoch=None, source=folder,
                    fitness=seeds[0].fitness, map50_sd=statistics.stdev(map50),
                    map50_95_sd=statistics.stdev(map50_95), n_seeds=len(seeds), seeds=tuple(seeds))


class AccuracyReader:
    """Reads the accuracies of many reports: each results.csv once, however many reports lead to it (by device and
    inode, size and time), and at most MAX_RESULTS_CSV_TOTAL_BYTES of them in all. With several trained seeds,
    each seed's checkpoint is checked to have the benchmarked architecture (`checkpoint.fingerprint`), each once,
    reading at most MAX_SEED_CHECKPOINT_TOTAL_BYTES of their zip directories and pickles in all (the tensor
    records are never read)."""

    def __init__(self) -> None:
        self.found: dict[tuple[Any, ...], Accuracy | DetbenchError | None] = {}
        self.bytes_read = 0
        self.architectures: dict[tuple[Any, ...], str | DetbenchError] = {}
        self.checkpoint_bytes_read = 0

    def accuracy_for(self, report: Report) -> Accuracy | None:
        """The report's checkpoint accuracy from its run folder, if it has one: across its trained seeds when
        there are several (DetbenchError if it is unusable, SeedArchitectureError if a seed is another model)."""
        source = results_csv_for(report)
        if source is None:
            return None
        environment = report.environment
        version = environment.get("ultralytics") if isinstance(environment, dict) else None
        weights = fitness_weights(version)
        runs = seed_runs(source.parent)
        if len(runs) == 1:
            return self._best_epoch(source, weights)
        benchmarked = weights_path(report)
        reference = self._architecture(benchmarked)
        for run in runs:
            if self._architecture(run / "weights" / "best.pt") != reference:
                raise SeedArchitectureError(
                    f"{run}: its weights/best.pt is another architecture than the benchmarked {benchmarked} (other "
                    f"layers or shapes), so its mAP is another model's; move {run.name} out of {run.parent} or "
                    "retrain it from the same model YAML")
        seeds = [found for found in (self._best_epoch(run / "results.csv", weights) for run in runs) if found]
        return across_seeds(seeds, source.parent.parent) if len(seeds) > 1 else next(iter(seeds), None)

    def _architecture(self, path: Path) -> str:
        try:
            info = os.stat(path)
        except OSError:
            return fingerprint.architecture(path)  # its one-line error
        key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        if key not in self.architectures:
            if self.checkpoint_bytes_read >= MAX_SEED_CHECKPOINT_TOTAL_BYTES:
                raise DetbenchError(f"{path}: not read: the seeds' checkpoints before it needed "
                                    f"{self.checkpoint_bytes_read / 2**20:.0f} MiB of their zip directories and "
                                    f"pickles, the most one compare reads "
                                    f"({MAX_SEED_CHECKPOINT_TOTAL_BYTES // 2**20} MiB)")
            try:
                found = fingerprint.fingerprint(path)
                self.checkpoint_bytes_read += found.bytes_read
                self.architectures[key] = found.digest
            except DetbenchError as exc:
                self.architectures[key] = exc
        found = self.architectures[key]
        if isinstance(found, DetbenchError):
            raise found
        return found

    def _best_epoch(self, source: Path, weights: tuple[float, float]) -> Accuracy | None:
        try:
            info = os.stat(source)
        except OSError:
            return best_epoch(source, weights)  # its one-line error
        key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, weights)
        if key not in self.found:
            self.found[key] = self._read(source, weights, info.st_size)
        found = self.found[key]
        if isinstance(found, DetbenchError):
            raise found
        return found

    def _read(self, source: Path, weights: tuple[float, float], size: int) -> Accuracy | DetbenchError | None:
        if self.bytes_read + size > MAX_RESULTS_CSV_TOTAL_BYTES:
            return DetbenchError(f"{source}: not read: the results.csv files before it hold "
                                 f"{self.bytes_read / 2**20:.0f} MiB, the most one compare reads "
                                 f"({MAX_RESULTS_CSV_TOTAL_BYTES // 2**20} MiB)")
        self.bytes_read += size
        try:
            return best_epoch(source, weights)
        except DetbenchError as exc:
            return exc


def _map(path: Path, row: dict[str, str], column: str) -> float | None:
    """A row's mAP (a fraction); None when the cell is empty, not a number or not finite (an epoch without
    validation); a one-line DetbenchError when it is a number outside 0 to 1."""
    value = _number(row.get(column))
    if value is not None and not 0.0 <= value <= 1.0:
        raise DetbenchError(f"{path}: column {column} holds {value:g}, not an mAP "
                            f"between 0 and 1; {CSV_FIX}")
    return value


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None
