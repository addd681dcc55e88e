"""Compare benchmark reports: load, group comparable ones, deltas against a baseline, significance.

Reports are comparable only when they share the measurement setting: image
size, batch, device, precision, CPU threads, hardware (GPU name on CUDA, CPU
model on CPU), and the same inputs (SHA-256 of the benchmark list and of the
decoded, letterboxed images). Reports that differ are put in separate groups,
each with its own tables, and the output says which field differs. Deltas are
computed only inside a group that holds the baseline model. Significance is
described in `detbench.significance`; accuracy joining in `detbench.accuracy`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detbench import significance as sig
from detbench.accuracy import Accuracy, accuracy_for
from detbench.errors import DetbenchError
from detbench.report import load_report

DEFAULT_BASELINE = "baseline"
NOT_REPORTS = ("benchmark_list", "comparison", "ablation")  # JSON in the results folder, not model reports

# (label, how to read it from a report); hashes are shortened when shown
COMPARABILITY: tuple[tuple[str, Callable[[dict[str, Any]], Any]], ...] = (
    ("imgsz", lambda r: r["metadata"].get("imgsz")),
    ("batch", lambda r: r["metadata"].get("batch")),
    ("device", lambda r: r["metadata"].get("device")),
    ("precision", lambda r: r.get("settings", {}).get("precision")),
    ("threads", lambda r: r.get("settings", {}).get("threads")),
    ("hardware", lambda r: _hardware(r)),
    ("input list", lambda r: r.get("inputs", {}).get("list_sha256")),
    ("decoded inputs", lambda r: r.get("inputs", {}).get("decoded_sha256")),
)


@dataclass
class Entry:
    """One loaded report."""

    path: Path
    report: dict[str, Any]
    name: str
    accuracy: Accuracy | None = None

    @property
    def model_name(self) -> str:
        return str(self.report["metadata"].get("model_name") or self.path.stem)

    def samples(self) -> np.ndarray:
        return np.asarray(self.report.get("samples", {}).get("latency_ms") or [], dtype=np.float64)

    def round_medians(self) -> list[float]:
        rounds = self.report.get("rounds") or []
        return [float(r["median_ms"]) for r in rounds if isinstance(r, dict) and r.get("median_ms")]

    def round_times(self) -> list[str | None]:
        rounds = self.report.get("rounds") or []
        return [r.get("timestamp") for r in rounds if isinstance(r, dict) and r.get("median_ms")]


@dataclass
class Row:
    """One model's line in a group: base metrics, deltas (%) and the significance verdict."""

    entry: Entry
    metrics: dict[str, float | None]
    deltas: dict[str, float | None] = field(default_factory=dict)
    verdict: sig.Verdict | None = None
    is_baseline: bool = False

    @property
    def name(self) -> str:
        return self.entry.name


@dataclass
class Group:
    """Reports measured under one setting."""

    index: int
    key: tuple[Any, ...]
    rows: list[Row]
    baseline: Row | None = None
    why: str = ""  # how this group differs from the first one

    @property
    def device(self) -> str:
        return str(self.key[2])

    @property
    def on_gpu(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def mem_label(self) -> str:
        return "GPU Mem (MB)" if self.on_gpu else "Mem (MB, peak RSS)"

    @property
    def has_accuracy(self) -> bool:
        return any(row.entry.accuracy is not None for row in self.rows)

    @property
    def tests_used(self) -> list[str]:
        return sorted({row.verdict.pair.test for row in self.rows if row.verdict and row.verdict.pair.test})

    def setting(self) -> str:
        values = dict(zip([label for label, _ in COMPARABILITY], self.key, strict=True))
        threads = values["threads"]
        first = self.rows[0].entry.report
        n_images = first.get("inputs", {}).get("n_images")
        parts = [f"imgsz {values['imgsz']}", f"batch {values['batch']}", f"device {values['device']}",
                 f"{values['precision']}"]
        if threads is not None:
            parts.append(f"{threads} CPU thread{'s' if threads != 1 else ''}")
        if values["hardware"]:
            parts.append(str(values["hardware"]))
        if n_images:
            parts.append(f"{n_images} images (inputs {_short(values['decoded inputs'])})")
        return ", ".join(parts)


@dataclass
class Comparison:
    groups: list[Group]
    baseline_name: str
    alpha: float
    min_effect: float
    warnings: list[str] = field(default_factory=list)

    @property
    def has_accuracy(self) -> bool:
        return any(group.has_accuracy for group in self.groups)


# ---------------------------------------------------------------- loading

def report_files(sources: Iterable[str | Path]) -> list[Path]:
    """Expand folders into their *.json reports (sorted), keep files as given."""
    files: list[Path] = []
    for source in sources:
        path = Path(source)
        if not path.exists() and path.suffix.lower() != ".json":
            raise DetbenchError(f"{path}: no such folder of reports; run `detbench bench` first or pass --dir")
        if path.is_dir():
            files.extend(p for p in sorted(path.glob("*.json"))
                         if not p.name.startswith(".") and not p.stem.startswith(NOT_REPORTS))
        else:
            files.append(path)
    return files


def load_entries(files: Sequence[Path], warn: Callable[[str], None]) -> list[Entry]:
    """Load every report; skip (with a warning naming the file) unreadable, invalid or failed ones."""
    entries: list[Entry] = []
    for path in files:
        try:
            report = load_report(path)
        except DetbenchError as exc:
            warn(f"skipped {exc}")
            continue
        if report.get("status", "ok") != "ok":
            error = report.get("error") or "no error recorded"
            warn(f"skipped {path}: the benchmark of {report['metadata'].get('model_name', path.stem)} "
                 f"{report.get('status')} ({error})")
            continue
        entries.append(Entry(path=path, report=report, name=""))
    if not entries:
        tried = ", ".join(str(p) for p in files) or "nothing"
        raise DetbenchError(f"no readable benchmark report to compare (looked at: {tried}); run `detbench bench` "
                            "first or pass report files")
    by_name: dict[str, list[Entry]] = {}
    for entry in entries:
        by_name.setdefault(entry.model_name, []).append(entry)
        entry.name = entry.model_name
        entry.accuracy = accuracy_for(entry.report)
    for same in (group for group in by_name.values() if len(group) > 1):
        for entry, suffix in zip(same, _distinct_suffixes([e.path for e in same]), strict=True):
            entry.name = f"{entry.model_name} [{suffix}]"
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

def comparability_key(report: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(read(report) for _, read in COMPARABILITY)


def describe_difference(key: tuple[Any, ...], reference: tuple[Any, ...]) -> str:
    parts = []
    for (label, _), mine, theirs in zip(COMPARABILITY, key, reference, strict=True):
        if mine != theirs:
            if label in ("input list", "decoded inputs"):
                mine, theirs = _short(mine), _short(theirs)
            parts.append(f"{label} {mine} vs {theirs}")
    return ", ".join(parts)


def base_metrics(entry: Entry, on_gpu: bool) -> dict[str, float | None]:
    report = entry.report
    latency, memory = report["latency"], report["memory"]
    mem = memory.get("peak_gpu_mem_MB") if on_gpu else memory.get("peak_rss_MB")
    samples = entry.samples()
    q25, q75 = (np.percentile(samples, [25, 75]) if samples.size else (None, None))
    return {
        "params_M": _num(report["model_complexity"].get("params_M")),
        "gflops": _num(report["model_complexity"].get("gflops")),
        "latency_mean_ms": _num(latency.get("mean_ms")),
        "latency_median_ms": _num(latency.get("median_ms")),
        "latency_p95_ms": _num(latency.get("p95_ms")),
        "latency_q25_ms": _num(q25),
        "latency_q75_ms": _num(q75),
        "fps_mean": _num(report["throughput"].get("fps_mean")),
        "mem_MB": _num(mem),
        "mAP50": entry.accuracy.map50 if entry.accuracy else None,
        "mAP50_95": entry.accuracy.map50_95 if entry.accuracy else None,
    }


DELTA_KEYS = {"params": "params_M", "latency": "latency_mean_ms", "fps": "fps_mean", "mem": "mem_MB"}


def percent_delta(value: float | None, reference: float | None) -> float | None:
    """100 * (value / reference - 1), or None when either is unknown or the reference is 0."""
    if value is None or reference is None or reference == 0:
        return None
    return 100.0 * (value / reference - 1.0)


def pair_test(baseline: Entry, model: Entry) -> sig.PairTest:
    base_rounds, model_rounds = baseline.round_medians(), model.round_medians()
    if min(len(base_rounds), len(model_rounds)) >= sig.MIN_ROUNDS:
        if sig.interleaved(baseline.round_times(), model.round_times()):
            return sig.paired_rounds(base_rounds, model_rounds)
        return sig.rounds_pair(base_rounds, model_rounds)
    return sig.samples_pair(baseline.samples(), model.samples())


def analyse_group(group: Group, baseline_name: str, alpha: float, min_effect: float) -> None:
    """Fill in deltas and significance when the group holds the baseline."""
    matches = [row for row in group.rows if row.entry.model_name == baseline_name]
    if not matches:
        return
    group.baseline = matches[0]
    group.baseline.is_baseline = True
    others = [row for row in group.rows if not row.is_baseline]
    verdicts = sig.decide([pair_test(group.baseline.entry, row.entry) for row in others], alpha, min_effect)
    for row, verdict in zip(others, verdicts, strict=True):
        row.verdict = verdict
    for row in group.rows:
        row.deltas = {name: percent_delta(row.metrics[key], group.baseline.metrics[key])
                      for name, key in DELTA_KEYS.items()}


def build_comparison(entries: Sequence[Entry], baseline: str | None = None, alpha: float = 0.05,
                     min_effect: float = 0.02) -> Comparison:
    """Group the reports by setting, sort each group by mean latency, and compare with the baseline."""
    if not 0.0 < alpha < 1.0:
        raise DetbenchError(f"--alpha {alpha} must be between 0 and 1 (e.g. 0.05)")
    if not 0.0 <= min_effect < 1.0:
        raise DetbenchError(f"--min-effect {min_effect} is a fraction: use e.g. 0.02 for 2 %")
    baseline_name = baseline or DEFAULT_BASELINE
    names = sorted({entry.model_name for entry in entries})
    if baseline_name not in names:
        hint = "pass --baseline NAME" if baseline is None else "pass one of them to --baseline"
        raise DetbenchError(f"no report of a model named {baseline_name!r} (models: {', '.join(names)}); {hint}")

    by_key: dict[tuple[Any, ...], list[Entry]] = {}
    for entry in entries:
        by_key.setdefault(comparability_key(entry.report), []).append(entry)
    keys = sorted(by_key, key=lambda k: (not any(e.model_name == baseline_name for e in by_key[k]),
                                         list(by_key).index(k)))
    groups = []
    for index, key in enumerate(keys, start=1):
        on_gpu = str(key[2]).startswith("cuda")
        rows = [Row(entry=e, metrics=base_metrics(e, on_gpu)) for e in by_key[key]]
        rows.sort(key=lambda row: (row.metrics["latency_mean_ms"] is None, row.metrics["latency_mean_ms"] or 0.0))
        group = Group(index=index, key=key, rows=rows)
        if index > 1:
            group.why = describe_difference(key, keys[0])
        analyse_group(group, baseline_name, alpha, min_effect)
        groups.append(group)
    return Comparison(groups=groups, baseline_name=baseline_name, alpha=alpha, min_effect=min_effect)


# ---------------------------------------------------------------- entry point

def run_compare(report_paths_or_dir: str | Path | Sequence[str | Path], baseline: str | None = None,
                output: str | Path | None = None, formats: Sequence[str] = (),
                plots_dir: str | Path | None = None, min_effect: float = 0.02, alpha: float = 0.05,
                echo: Callable[[str], None] = print, warn: Callable[[str], None] | None = None,
                out_dir: str | Path | None = None) -> int:
    """Load reports (files and/or folders), print the comparison, write CSV/Markdown/LaTeX and plots.

    `formats` holds "csv", "md" and/or "latex"; they are written next to `output`
    (same stem) or, without `output`, into `out_dir` (default: the first folder
    among the sources) as comparison.{csv,md,tex}. Warnings about skipped
    files go to `warn` (default: stderr). Returns 0.
    """
    from detbench import tables

    if warn is None:
        def warn(message: str) -> None:
            print(f"warning: {message}", file=sys.stderr)

    sources = [report_paths_or_dir] if isinstance(report_paths_or_dir, (str, Path)) else list(report_paths_or_dir)
    unknown = sorted(set(formats) - set(tables.WRITERS))
    if unknown:
        raise DetbenchError(f"--format {', '.join(unknown)} is not known: use csv, md or latex")
    entries = load_entries(report_files(sources), warn)
    comparison = build_comparison(entries, baseline=baseline, alpha=alpha, min_effect=min_effect)
    for line in tables.console_lines(comparison):
        echo(line)

    targets: dict[str, Path] = {}
    if output is not None:
        targets["csv"] = Path(output)
    stem = Path(output).with_suffix("") if output is not None else \
        Path(out_dir if out_dir is not None else _default_folder(sources)) / "comparison"
    for fmt in formats:
        targets.setdefault(fmt, stem.with_suffix(tables.SUFFIXES[fmt]))
    for fmt, path in targets.items():
        tables.WRITERS[fmt](comparison, path)
        echo(f"✓ saved: {path}")
    if plots_dir is not None:
        from detbench.plots import write_plots

        for path in write_plots(comparison, plots_dir):
            echo(f"✓ saved: {path}")
    return 0


def _default_folder(sources: Sequence[str | Path]) -> Path:
    for source in sources:
        if Path(source).is_dir():
            return Path(source)
    return Path(sources[0]).parent if sources else Path(".")


def _hardware(report: dict[str, Any]) -> str | None:
    env = report.get("environment", {})
    if str(report["metadata"].get("device", "")).startswith("cuda"):
        return env.get("gpu_name")
    return env.get("cpu")


def _short(digest: Any) -> str:
    return str(digest)[:12] if digest else "unknown"


def _num(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
