"""Compare benchmark reports: load, group comparable ones, deltas against a baseline, verdicts.

Reports are comparable only when they share the measurement setting: image
size, batch, device, precision, CPU threads, hardware (GPU name on CUDA, CPU
model on CPU), and the same inputs (SHA-256 of the benchmark list and of the
decoded, letterboxed images). Reports that differ are put in separate groups,
each with its own tables, and the output says which field differs. Deltas are
computed only inside a group that holds the baseline model.

Verdicts (`detbench.stats.paired`): when every report of a group comes from
one interleaved study (`detbench ablate`), the study's looks are replayed from
the samples' round and worker indices, giving each model faster / slower /
equivalent / undecided against the baseline. Reports of separate runs get the
ratio of medians and the verdict "untested": their noise cannot be compared.
Accuracy joining is in `detbench.comparison.accuracy`.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detbench import text, zoo
from detbench.comparison.accuracy import Accuracy, AccuracyReader, SeedArchitectureError
from detbench.errors import DetbenchError
from detbench.limits import MAX_SHOWN_TEXT_CHARS
from detbench.names import is_reserved_stem
from detbench.report.model import Report, Study
from detbench.report.schema import parse_report, validate_report
from detbench.report.setting import SettingKey, short_hash
from detbench.stats import paired
from detbench.study.options import DEFAULT_ALPHA, DEFAULT_MIN_EFFECT  # a study's own, for separate runs too

DEFAULT_BASELINE = "baseline"
OWN_KIND_PREFIX = "detbench "  # the "kind" of detbench's other JSON files, e.g. "detbench ablation summary"


@dataclass
class Entry:
    """One loaded report."""

    path: Path
    report: Report
    name: str
    accuracy: Accuracy | None = None

    @property
    def model_name(self) -> str:
        """The report's model name, bounded (`text.bounded`: every name detbench accepts is shown whole)."""
        return text.bounded(self.report.metadata.model_name or self.path.stem)

    def samples(self) -> np.ndarray:
        return np.asarray(self.report.latency_samples(), dtype=np.float64)

    def worker_series(self) -> dict[int, paired.Series]:
        """Each study worker's turns, by worker index, from the samples' round and worker lists."""
        samples = self.report.samples
        return paired.worker_series(samples.latency_ms, samples.round, samples.worker)

    def study(self) -> Study | None:
        """The report's study section when it carries the lists that pair its samples, else None."""
        study, samples = self.report.study, self.report.samples
        if not isinstance(study, dict) or not study.get("id") or samples.round is None or samples.worker is None:
            return None
        return study

    def caveats(self) -> list[str]:
        """The report's own warnings (noise, outliers, warm-up, busy or throttled device), each once."""
        return list(dict.fromkeys(text.bounded(w, MAX_SHOWN_TEXT_CHARS) for w in self.report.warnings or []))


SHOWN_ZERO = 0.05  # a percentage below this is shown as 0.0: it has no direction
DELTA_TESTED = "tested"  # the latency Δ of a model in the baseline's interleaved study: its verdict's estimate
DELTA_RATIO = "ratio of medians"  # the latency Δ of separate runs: median / baseline median - 1, untested


@dataclass
class Row:
    """One model's line in a group: base metrics, deltas (%) and the verdict against the baseline.

    What every table and plot shows of it is read through its properties: `median_ms`; the one latency Δ
    (`latency_delta_pct`, `latency_delta_ci_pct`, `latency_delta_kind`); accuracy across seeds (`map50_mean`,
    `map50_sd`, `map50_95_mean`, `map50_95_sd`, `map_seeds`).
    """

    entry: Entry
    metrics: dict[str, float | None]
    deltas: dict[str, float | None] = field(default_factory=dict)  # DELTA_KEYS: changes of the spec's metrics
    verdict: paired.PairResult | None = None
    is_baseline: bool = False
    in_study: bool = False  # its verdict was replayed from the baseline's interleaved study
    baseline_median_ms: float | None = None  # the group's baseline's median, for the ratio of the medians shown

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def median_ms(self) -> float | None:
        """The median latency (ms): the table's median column, the plots' bars and points."""
        return self.metrics["latency_median_ms"]

    @property
    def median_ci_ms(self) -> tuple[float, float] | None:
        """The report's 95 % CI of the median (ms), as the page's whiskers and the plots' show it; None if absent."""
        statistics = self.entry.report.statistics
        values = statistics.median_ci95_ms if statistics is not None else None
        if (isinstance(values, (list, tuple)) and len(values) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                        for v in values)):
            return float(values[0]), float(values[1])
        return None

    @property
    def n_samples(self) -> int:
        """The timed samples behind the latency columns (in a study, one per round and worker process)."""
        return len(self.entry.report.latency_samples())

    @property
    def decided_at_round(self) -> int | None:
        """The study round at which a tested verdict was decided (its Δ and CI are those of that look); None for
        an undecided, untested or baseline row."""
        if not self.in_study or self.is_baseline or self.verdict is None:
            return None
        return self.verdict.decided_at_round

    @property
    def tested_rounds(self) -> int | None:
        """The study rounds the tested Δ comes from: up to the round it was decided at, else up to the last look."""
        if not self.in_study or self.is_baseline or self.verdict is None:
            return None
        return self.verdict.n_rounds or None

    @property
    def medians_delta_pct(self) -> float | None:
        """The ratio of the medians shown (%, this row's over the baseline's, minus 1): every round's samples."""
        if self.is_baseline:
            return 0.0 if self.median_ms is not None else None
        return percent_delta(self.median_ms, self.baseline_median_ms)

    @property
    def medians_outside_ci(self) -> bool:
        """A tested row whose ratio of medians lies outside its Δ's CI: the medians use every round, the Δ was
        frozen at the round its verdict was decided, and pairing each round removes drift the medians keep."""
        ci, ratio = self.latency_delta_ci_pct, self.medians_delta_pct
        return ci is not None and ratio is not None and not ci[0] <= ratio <= ci[1]

    @property
    def fps_delta_contradicts(self) -> bool:
        """The FPS Δ (from mean latencies) points the other way than the tested latency Δ (paired ratios): e.g.
        a faster model whose mean is pulled up by a few slow iterations."""
        fps, delta = self.deltas.get("fps"), self.latency_delta_pct
        if not self.in_study or self.is_baseline or fps is None or delta is None:
            return False
        return (delta <= -SHOWN_ZERO and fps <= -SHOWN_ZERO) or (delta >= SHOWN_ZERO and fps >= SHOWN_ZERO)

    @property
    def latency_delta_kind(self) -> str | None:
        """DELTA_TESTED or DELTA_RATIO; None in a group without the baseline."""
        if self.verdict is None and not self.is_baseline:
            return None
        return DELTA_TESTED if self.in_study else DELTA_RATIO

    @property
    def latency_delta_pct(self) -> float | None:
        """The one latency Δ (%) against the baseline: the tested estimate or the ratio of medians (0 for the
        baseline itself); None when unknown."""
        if self.is_baseline:
            return 0.0
        return self.verdict.delta_pct if self.verdict else None

    @property
    def latency_delta_ci_pct(self) -> tuple[float, float] | None:
        """The interval (%) of a tested latency Δ, at the verdict's confidence; None for a ratio of medians."""
        return self.verdict.ci_pct if self.verdict and self.in_study else None

    @property
    def mean_above_p95(self) -> bool:
        """The mean exceeds the 95th percentile: a burst of a few very slow iterations pulls it up."""
        mean, p95 = self.metrics["latency_mean_ms"], self.metrics["latency_p95_ms"]
        return mean is not None and p95 is not None and mean > p95

    @property
    def map50_mean(self) -> float | None:
        return self.entry.accuracy.map50 if self.entry.accuracy else None

    @property
    def map50_sd(self) -> float | None:
        """The sample standard deviation of mAP50 across seeds; None for one seed."""
        return self.entry.accuracy.map50_sd if self.entry.accuracy else None

    @property
    def map50_95_mean(self) -> float | None:
        return self.entry.accuracy.map50_95 if self.entry.accuracy else None

    @property
    def map50_95_sd(self) -> float | None:
        return self.entry.accuracy.map50_95_sd if self.entry.accuracy else None

    @property
    def map_seeds(self) -> int | None:
        """How many trained seeds the mAP is the mean of (1: one run); None without accuracy."""
        return self.entry.accuracy.n_seeds if self.entry.accuracy else None


@dataclass
class Group:
    """Reports measured under one setting."""

    index: int
    key: SettingKey  # its grouped fields
    rows: list[Row]
    baseline: Row | None = None
    why: str = ""  # how this group differs from the first one
    study_id: str | None = None  # the baseline's interleaved study, when its verdicts could be replayed
    alpha: float = DEFAULT_ALPHA  # what the verdicts were decided at
    min_effect: float = DEFAULT_MIN_EFFECT
    untested_why: str = ""  # why reports of one study still got no verdicts

    @property
    def device(self) -> str:
        return str(self.key.device)

    @property
    def on_gpu(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def mem_label(self) -> str:
        return "GPU Mem (MB)" if self.on_gpu else "Mem (MB, model)"

    @property
    def has_accuracy(self) -> bool:
        return any(row.entry.accuracy is not None for row in self.rows)

    @property
    def has_pipeline(self) -> bool:
        """Whether any report timed the end-to-end pipeline (--pipeline)."""
        return any(row.metrics.get("end_to_end_median_ms") is not None for row in self.rows)

    def headline(self) -> str:
        """The setting in a few words, for a paper table's caption: hardware, device, precision, size, batch."""
        key = self.key
        threads = f", {key.threads} thread{'s' if key.threads != 1 else ''}" if key.threads is not None else ""
        backend = f", {key.backend}" if key.backend and key.backend != "pytorch" else ""
        where = f"{key.hardware} ({key.device}{threads})" if key.hardware else f"{key.device}{threads}"
        return f"{where}, {key.precision}{backend}, imgsz {key.imgsz}, batch {key.batch}"

    def setting(self) -> str:
        key, n_images = self.key, self.rows[0].entry.report.inputs.n_images
        parts = [f"imgsz {key.imgsz}", f"batch {key.batch}", f"device {key.device}", f"{key.precision}"]
        if key.threads is not None:
            parts.append(f"{key.threads} CPU thread{'s' if key.threads != 1 else ''}")
        if key.hardware:
            parts.append(str(key.hardware))
        if n_images:
            parts.append(f"{n_images} images (inputs {short_hash(key.decoded_sha256)})")
        parts += [key.modes, key.software]
        if key.backend != "pytorch":
            parts.append(f"backend {key.backend}")
        return ", ".join(parts)


@dataclass
class Comparison:
    groups: list[Group]
    baseline_name: str
    warnings: list[str] = field(default_factory=list)

    @property
    def has_accuracy(self) -> bool:
        return any(group.has_accuracy for group in self.groups)


# ---------------------------------------------------------------- loading

def stderr_warning(message: str) -> None:
    """The default sink of warnings: one terminal-safe line on stderr."""
    print(f"warning: {text.terminal(message)}", file=sys.stderr)


def report_files(sources: Iterable[str | Path], warn: Callable[[str], None] = stderr_warning) -> list[Path]:
    """Expand folders into their *.json reports (sorted), keep files as given.

    In a folder, detbench's own files (names.RESERVED_STEMS, e.g. ablation_summary.json) are left out
    silently, hidden files with a warning naming them.
    """
    files: list[Path] = []
    for source in sources:
        path = Path(source)
        if os.path.isdir(path):
            files.extend(_folder_reports(path, warn))
        elif not os.path.lexists(path) and path.suffix.lower() != ".json":
            raise DetbenchError(f"{text.terminal(path)}: no such folder of reports; run `detbench bench` first or "
                                "pass --dir")
        else:
            files.append(path)
    return files


def _folder_reports(folder: Path, warn: Callable[[str], None]) -> list[Path]:
    try:
        names = sorted(entry.name for entry in os.scandir(folder) if entry.name.endswith(".json"))
    except OSError as exc:
        raise DetbenchError(f"{text.terminal(folder)}: cannot list the folder ({exc.strerror}); check its "
                            "permissions or pass report files") from exc
    reports = []
    for name in names:
        if name.startswith("."):
            warn(f"skipped {folder / name}: a hidden file; rename it without the leading '.' to compare it")
        elif not is_reserved_stem(Path(name).stem):
            reports.append(folder / name)
    return reports


def is_own_other_file(data: Any) -> bool:
    """JSON that detbench writes besides reports (it names its "kind"), e.g. an ablation summary."""
    return isinstance(data, dict) and isinstance(data.get("kind"), str) and data["kind"].startswith(OWN_KIND_PREFIX)


def read_entry(path: Path, warn: Callable[[str], None]) -> Entry | None:
    """The report at `path`, or None (with a warning naming the file, unless it is detbench's own other file)."""
    try:
        data = parse_report(path)
        if is_own_other_file(data):
            return None
        report = Report.from_dict(validate_report(data, str(path)))
    except DetbenchError as exc:
        warn(f"skipped {exc}")
        return None
    if not report.ok:
        error = text.bounded(report.error or "no error recorded", MAX_SHOWN_TEXT_CHARS)
        warn(f"skipped {path}: the benchmark of {text.bounded(report.metadata.model_name or path.stem)} "
             f"{text.bounded(report.status)} ({error})")
        return None
    return Entry(path=path, report=report, name="")


def load_entries(files: Sequence[Path], warn: Callable[[str], None] = stderr_warning) -> list[Entry]:
    """Load every report; skip (with a warning naming the file) unreadable, invalid or failed ones."""
    entries = [entry for entry in (read_entry(path, warn) for path in files) if entry is not None]
    if not entries:
        shown = [text.terminal(p) for p in files[:5]] + ([f"{len(files) - 5} more"] if len(files) > 5 else [])
        raise DetbenchError(f"no readable benchmark report to compare (looked at: {', '.join(shown) or 'nothing'}); "
                            "run `detbench bench` first or pass report files")
    return name_entries(entries, warn)


def name_entries(entries: list[Entry], warn: Callable[[str], None] = stderr_warning) -> list[Entry]:
    """Give each entry its display name (paths added where two share a model name) and its accuracy."""
    by_name: dict[str, list[Entry]] = {}
    accuracies = AccuracyReader()  # each results.csv once, and a bounded amount of them
    for entry in entries:
        by_name.setdefault(entry.model_name, []).append(entry)
        entry.name = entry.model_name
        try:
            entry.accuracy = accuracies.accuracy_for(entry.report)
        except SeedArchitectureError:
            raise  # a mean over another model's seeds would be published as this one's
        except DetbenchError as exc:
            warn(f"no mAP for {entry.model_name}: {exc}")
    for same in (group for group in by_name.values() if len(group) > 1):
        for entry, suffix in zip(same, _distinct_suffixes([e.path for e in same]), strict=True):
            entry.name = f"{entry.model_name} [{text.bounded(suffix)}]"
    return entries


def _distinct_suffixes(paths: Sequence[Path]) -> list[str]:
    """The shortest trailing parts of each path that tell them apart (a/b/x.json and c/b/x.json stay whole)."""
    parts = [Path(p).absolute().parts for p in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        suffixes = ["/".join(p[-depth:]) for p in parts]
        if len(set(suffixes)) == len(suffixes):
            return suffixes
    return [str(p) for p in paths]


# ---------------------------------------------------------------- analysis

def base_metrics(entry: Entry, on_gpu: bool) -> dict[str, float | None]:
    report = entry.report
    latency, memory = report.latency, report.memory
    # CPU: the model's own memory (weights + the loop's activations); the process's lifetime peak RSS is set by
    # the decoded image cache and imports, and says nothing about the model
    mem = memory.peak_gpu_mem_MB if on_gpu else memory.model_memory_MB
    samples = entry.samples()
    q25, q75 = (np.percentile(samples, [25, 75]) if samples.size else (None, None))
    return {
        "params_M": _num(report.model_complexity.params_M),
        "gflops": _num(report.model_complexity.gflops),
        "latency_mean_ms": _num(latency.mean_ms),
        "latency_median_ms": _num(latency.median_ms),
        "latency_p95_ms": _num(latency.p95_ms),
        "latency_max_ms": _num(latency.max_ms),
        "latency_q25_ms": _num(q25),
        "latency_q75_ms": _num(q75),
        "fps_mean": _num(report.throughput.fps_mean),
        "mem_MB": _num(mem),
        "end_to_end_median_ms": _pipeline_total(report),
        "mAP50": entry.accuracy.map50 if entry.accuracy else None,
        "mAP50_95": entry.accuracy.map50_95 if entry.accuracy else None,
    }


def _pipeline_total(report: Report) -> float | None:
    """The median of the --pipeline total per iteration (preprocess + inference + postprocess), if it ran."""
    section = report.pipeline if isinstance(report.pipeline, dict) else {}
    total = section.get("total")
    return _num(total.get("median_ms")) if isinstance(total, dict) else None


DELTA_KEYS = {"params": "params_M", "latency": "latency_mean_ms", "fps": "fps_mean", "mem": "mem_MB",
              "end_to_end": "end_to_end_median_ms"}


def percent_delta(value: float | None, reference: float | None) -> float | None:
    """100 * (value / reference - 1), or None when either is unknown or the reference is 0."""
    if value is None or reference is None or reference == 0:
        return None
    return 100.0 * (value / reference - 1.0)


MISSING_SHOWN = 10  # names of a study's missing reports shown in the note


def replay_problem(study: dict[str, Any], members: list[Row], baseline_name: str) -> str:
    """Why the study's verdicts cannot be rebuilt from these reports ("" when they can)."""
    finished = study.get("finished_models")
    names = sorted(row.entry.model_name for row in members)
    if study.get("baseline") != baseline_name:
        return f"the study compared against {text.bounded(study.get('baseline'))!r}, not {baseline_name!r}"
    if not isinstance(finished, list) or sorted(map(text.bounded, finished)) != names:
        missing = sorted(set(map(text.bounded, finished or [])) - set(names))
        shown = ", ".join(missing[:MISSING_SHOWN]) + (f" and {len(missing) - MISSING_SHOWN} more"
                                                      if len(missing) > MISSING_SHOWN else "")
        return (f"not every report of the study is here (missing: {shown})" if missing
                else "the reports do not match the study's list of models")
    planned, looks = study.get("planned_looks") or [], study.get("looks_at_rounds") or []
    increasing = all(b > a for a, b in zip(looks, looks[1:], strict=False))
    if not planned or not looks or len(looks) > len(planned) or not increasing:
        return "the study's looks are not a valid record (re-run the study)"
    for key, low, high in (("alpha", 0.0, 1.0), ("min_effect", 0.0, 1.0)):
        value = study.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not low < value < high:
            return f"the study's {key} is not recorded"
    if "look_alphas" in study and look_levels(study, study["alpha"]) is None:
        return "the study's levels of its looks are not a valid record (re-run the study)"
    return ""


def look_levels(study: dict[str, Any], alpha: float) -> list[float] | None:
    """The level each of the study's looks used (`look_alphas`), rescaled from the study's alpha to `alpha`;
    None when the study recorded none (it split its alpha evenly over its planned looks) or no valid ones."""
    levels, looks, recorded = study.get("look_alphas"), study.get("looks_at_rounds"), study.get("alpha")
    if not (isinstance(levels, list) and isinstance(looks, list) and len(levels) == len(looks)
            and isinstance(recorded, (int, float)) and not isinstance(recorded, bool) and 0.0 < recorded < 1.0
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v < 1.0 for v in levels)
            and sum(levels) <= recorded * (1.0 + 1e-9)):
        return None
    return [float(level) * alpha / recorded for level in levels]


def study_verdicts(group: Group, alpha: float | None, min_effect: float | None) -> dict[str, paired.PairResult]:
    """The baseline's study's looks replayed from the samples of its reports in this group; {} if impossible."""
    study = group.baseline.entry.study()
    if study is None:
        return {}
    members = [row for row in group.rows if (row.entry.study() or {}).get("id") == study["id"]]
    problem = replay_problem(study, members, group.baseline.entry.model_name)
    if problem:
        group.untested_why = f"study {study['id']}: {problem}"
        return {}
    group.study_id, group.alpha = text.bounded(study["id"]), alpha if alpha is not None else float(study["alpha"])
    group.min_effect = min_effect if min_effect is not None else float(study["min_effect"])
    series = {row.entry.model_name: row.entry.worker_series() for row in members}
    planned = study["planned_looks"]
    family = len(study.get("models") or []) - 1
    results = paired.replay(series, group.baseline.entry.model_name, group.alpha, group.min_effect,
                            study["looks_at_rounds"], len(planned), family, look_levels(study, group.alpha),
                            shared=study.processes_hold_every_model is True)
    return {result.model: result for result in results}


def analyse_group(group: Group, baseline_name: str, alpha: float | None, min_effect: float | None) -> None:
    """Fill in deltas and verdicts when the group holds the baseline."""
    matches = [row for row in group.rows if row.entry.model_name == baseline_name]
    if not matches:
        return
    group.baseline = matches[0]
    group.baseline.is_baseline = True
    group.alpha = alpha if alpha is not None else DEFAULT_ALPHA
    group.min_effect = min_effect if min_effect is not None else DEFAULT_MIN_EFFECT
    names = [row.entry.model_name for row in group.rows]
    tested = study_verdicts(group, alpha, min_effect) if len(set(names)) == len(names) else {}
    base_median = group.baseline.median_ms
    group.baseline.in_study = group.study_id is not None
    for row in group.rows:
        if row.is_baseline:
            continue
        row.in_study = row.entry.model_name in tested
        row.verdict = tested.get(row.entry.model_name) or paired.untested(
            row.name, group.baseline.name, row.median_ms, base_median)
        if row.entry.model_name not in tested and group.study_id is not None:
            row.verdict.reason = f"not part of the baseline's study {group.study_id}: separate runs, not tested"
    for row in group.rows:
        row.baseline_median_ms = base_median
        row.deltas = {name: percent_delta(row.metrics[key], group.baseline.metrics[key])
                      for name, key in DELTA_KEYS.items()}


def _study_baseline(entries: Sequence[Entry], names: list[str]) -> str:
    """The baseline the reports' one study recorded, when it is among them; else the default name."""
    recorded = {entry.report.study.baseline for entry in entries if entry.report.study is not None}
    return recorded.pop() if len(recorded) == 1 and recorded <= set(names) else DEFAULT_BASELINE


def ablation_order(entries: Sequence[Entry], baseline_name: str) -> Callable[[Entry], tuple[Any, ...]]:
    """The sort key of rows: the baseline first, then the order of the baseline's study's models (its --models,
    or as it found them), then the zoo's order (baseline, ghost, eca, ...), then by name."""
    studied = next((entry.report.study.models for entry in entries
                    if entry.report.study is not None and entry.report.study.baseline == baseline_name
                    and isinstance(entry.report.study.models, list)), [])
    rank = {name: index for index, name in reversed(list(enumerate(map(str, studied))))}
    zoo_rank = {name: index for index, name in enumerate(zoo.MODELS)}

    def key(entry: Entry) -> tuple[Any, ...]:
        name = entry.model_name
        return (name != baseline_name, rank.get(name, len(rank)), zoo_rank.get(name, len(zoo_rank)), entry.name)
    return key


def build_comparison(entries: Sequence[Entry], baseline: str | None = None, alpha: float | None = None,
                     min_effect: float | None = None) -> Comparison:
    """Group the reports by setting, order each group as the ablation (`ablation_order`), and compare with the
    baseline. `alpha` and `min_effect` default to those a study decided at (0.05 and 0.02 for separate runs)."""
    if alpha is not None and not 0.0 < alpha < 1.0:
        raise DetbenchError(f"--alpha {alpha} must be between 0 and 1 (e.g. 0.05)")
    if min_effect is not None and not 0.0 < min_effect < 1.0:
        raise DetbenchError(f"--min-effect {min_effect} is a fraction: use e.g. 0.02 for 2 %")
    names = sorted({entry.model_name for entry in entries})
    baseline_name = baseline or (DEFAULT_BASELINE if DEFAULT_BASELINE in names else _study_baseline(entries, names))
    if baseline_name not in names:
        hint = "pass --baseline NAME" if baseline is None else "pass one of them to --baseline"
        shown = text.terminal(", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else ""))
        raise DetbenchError(f"no report of a model named {baseline_name!r} (models: {shown}); {hint}")

    by_key: dict[SettingKey, list[Entry]] = {}
    for entry in entries:
        by_key.setdefault(SettingKey.of_report(entry.report).grouped(), []).append(entry)
    order = {key: index for index, key in enumerate(by_key)}  # a dict keeps insertion order: first seen first
    keys = sorted(by_key, key=lambda k: (not any(e.model_name == baseline_name for e in by_key[k]), order[k]))
    groups, order = [], ablation_order(entries, baseline_name)
    for index, key in enumerate(keys, start=1):
        on_gpu = str(key.device).startswith("cuda")
        rows = [Row(entry=e, metrics=base_metrics(e, on_gpu)) for e in sorted(by_key[key], key=order)]
        group = Group(index=index, key=key, rows=rows)
        if index > 1:
            group.why = key.difference(keys[0])
        analyse_group(group, baseline_name, alpha, min_effect)
        groups.append(group)
    return Comparison(groups=groups, baseline_name=baseline_name)


def _num(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------- the Pareto front

def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated by another: lower x and lower y."""
    front = []
    for i, (xi, yi) in enumerate(points):
        dominated = any(
            xj <= xi and yj <= yi and (xj < xi or yj < yi)
            for j, (xj, yj) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i])


def _side(row: Row) -> int | None:
    """Where a decided verdict puts the row against the baseline: -1 faster, +1 slower, 0 the baseline itself."""
    if row.is_baseline:
        return 0
    verdict = row.verdict.verdict if row.verdict is not None and row.in_study else None
    return {"faster": -1, "slower": 1}.get(verdict or "")


def _faster(a: Row, b: Row) -> bool:
    """a's latency is established below b's: by a decided verdict against the baseline, or through it (a faster
    than the baseline, which is faster than b)."""
    side_a, side_b = _side(a), _side(b)
    return side_a is not None and side_b is not None and side_a < side_b


def _not_slower(a: Row, b: Row) -> bool:
    """a's latency is established not above b's: faster, or equivalent (within the margin) with one the baseline."""
    if _faster(a, b):
        return True
    pair = {a.is_baseline, b.is_baseline}
    other = b if a.is_baseline else a
    return pair == {True, False} and other.in_study and other.verdict is not None and \
        other.verdict.verdict == paired.EQUIVALENT


def front_not_established_why(group: Group, x_of: Callable[[Row], float | None], maximize_x: bool) -> str:
    """Why the Pareto front of the medians (latency against `x_of`, e.g. GFLOPs or mAP, higher better when
    `maximize_x`) is not established by the latency verdicts; "" when it is.

    The front is established when the verdicts decide every relation it rests on: each model off it is beaten
    by one no worse on x and established not slower (faster where x ties), and each model on it is established
    faster than every model at least as good on x. Only verdicts against the baseline exist, so two other models
    are ordered only through it (one faster than the baseline, the other slower). x is taken as exact (GFLOPs are;
    an mAP is a mean over seeds)."""
    rows = [row for row in group.rows if x_of(row) is not None and row.median_ms is not None]
    verdicts = [row.verdict.verdict for row in group.rows if row.verdict is not None]
    if group.baseline is None:
        return "no baseline model in this group, so no verdict"
    if verdicts and all(verdict == paired.UNTESTED for verdict in verdicts):
        return "the reports come from separate runs, so no latency difference was tested"
    if not any(verdict in (paired.FASTER, paired.SLOWER, paired.EQUIVALENT) for verdict in verdicts):
        return "every latency verdict is undecided"
    keyed = [(-x_of(row) if maximize_x else x_of(row), row.median_ms) for row in rows]
    front = set(pareto_front(keyed))
    for j, row in enumerate(rows):
        better_x = [i for i in range(len(rows)) if i != j and keyed[i][0] <= keyed[j][0]]
        if j in front:
            unsettled = [rows[i].name for i in better_x if not _faster(row, rows[i])]
            if unsettled:
                return (f"no verdict shows {row.name} faster than {unsettled[0]}, which is as good or better on "
                        "the other axis")
        elif not any((keyed[i][0] < keyed[j][0] and _not_slower(rows[i], row)) or _faster(rows[i], row)
                     for i in better_x):
            return f"no verdict shows that a model as good or better on the other axis beats {row.name}"
    return ""


def front_established(group: Group, x_of: Callable[[Row], float | None], maximize_x: bool) -> bool:
    """Whether the latency verdicts establish the Pareto front of the medians (`front_not_established_why`)."""
    return not front_not_established_why(group, x_of, maximize_x)
