"""One model's report from the reports of its study workers.

Samples are concatenated in worker order, with each sample's round and worker
index (`samples.round`, `samples.worker`), so the pairing of an interleaved
study can be rebuilt from the reports alone. Statistics are recomputed over
all samples; the warm-up check stays per worker (each warmed up on its own);
memory is the maximum over the workers; `study.workers` keeps each worker's
median, sample count and pid.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from detbench.errors import DetbenchError
from detbench.measure.pipeline import STAGES, per_image, pipeline_warnings
from detbench.report.model import Report
from detbench.stats import diagnostics as quality
from detbench.stats import summary as stats


def _concat(values: list[Any]) -> Any:
    """Lists concatenated; dicts of lists concatenated per key; anything else: None unless all equal."""
    if all(isinstance(v, list) for v in values):
        return [item for v in values for item in v]
    if all(isinstance(v, dict) for v in values):
        return {key: _concat([v.get(key) for v in values]) for key in values[0]}
    return values[0] if all(v == values[0] for v in values) else None


def _max_numbers(sections: list[dict[str, Any]]) -> dict[str, Any]:
    merged = dict(sections[0])
    for key, value in merged.items():
        numbers = [s.get(key) for s in sections if isinstance(s.get(key), (int, float))
                   and not isinstance(s.get(key), bool)]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and numbers:
            merged[key] = max(numbers)
    return merged


def _dedupe(items: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _merge_pipeline(merged: dict[str, Any], reports: list[dict[str, Any]]) -> list[str]:
    """Recompute the pipeline section from all workers' pipeline samples; return its warnings."""
    section, samples = merged.get("pipeline"), merged["samples"].get("pipeline_ms")
    if not isinstance(section, dict) or not isinstance(samples, dict):
        return []
    for stage in STAGES:
        if samples.get(stage):
            section[stage] = {**stats.summarize(samples[stage]),
                              "statistics": quality.statistics_section(samples[stage])}
    section["n_samples"] = len(samples.get("total") or [])
    section["stop_reason"] = "; ".join(_dedupe([str(r["pipeline"].get("stop_reason")) for r in reports]))
    if samples.get("total"):
        section["throughput"] = stats.throughput(merged["metadata"]["batch"], section["total"]["mean_ms"],
                                                 section["total"]["p50_ms"])
        if all(isinstance(section.get(stage), dict) for stage in STAGES):
            section["per_image_ms"] = per_image(section, merged["metadata"]["batch"])
    return pipeline_warnings(section)


def _merged_statistics(reports: list[dict[str, Any]], latency_ms: list[float], host_ms: list[float] | None,
                       enqueue_ms: list[float] | None) -> dict[str, Any]:
    """Statistics over all workers' samples; the warm-up check stays per worker (each worker warmed up on its own)."""
    section = quality.statistics_section(latency_ms, host_ms, enqueue_ms)
    warm_checks = [(r.get("statistics") or {}).get("warmup_check") for r in reports]
    warm_checks = [w if isinstance(w, dict) and "ratio" in w else None for w in warm_checks]
    section["warmup_check"] = {"per_worker": warm_checks}
    enqueue_median = float(np.median(enqueue_ms)) if enqueue_ms else None
    warnings = quality.warnings_for(section, section["outliers"], None, float(np.median(latency_ms)),
                                    enqueue_median, len(latency_ms))
    for index, warm in enumerate(warm_checks):
        warm_up = quality.warmup_warning(warm, turns=True)
        if warm_up:
            warnings.append(f"worker {index}: {warm_up}")
    section["warnings"] = warnings
    return section


WORKER_IDENTITY = {
    "benchmark list": lambda r: r["inputs"]["list_sha256"],
    "decoded inputs": lambda r: r["inputs"].get("decoded_sha256"),
    "imgsz": lambda r: r["metadata"]["imgsz"],
    "batch": lambda r: r["metadata"]["batch"],
    "device": lambda r: r["metadata"]["device"],
    "weights": lambda r: r["metadata"]["weights"],
    "weights' SHA-256": lambda r: r["metadata"].get("weights_sha256"),
}


def _check_same_setting(reports: list[dict[str, Any]], name: str) -> None:
    first = reports[0]
    for index, report in enumerate(reports[1:], start=2):
        for label, read in WORKER_IDENTITY.items():
            if read(report) != read(first):
                raise DetbenchError(f"{name}: worker {index - 1} differs from worker 0 in its {label}; "
                                    "re-run the study")


def _merged_warnings(merged: dict[str, Any], reports: list[dict[str, Any]], latency_ms: list[float]) -> None:
    """Each worker's own warnings (not those derived from its samples), then those of the merged samples."""
    own_warnings: list[str] = []
    for report in reports:
        derived = set((report.get("statistics") or {}).get("warnings") or [])
        derived.update(w for w in report.get("warnings") or [] if str(w).startswith("pipeline "))
        own_warnings += [w for w in report.get("warnings") or [] if w not in derived]
    new_warnings: list[str] = []
    if isinstance(reports[0].get("statistics"), dict):
        samples = merged["samples"]
        merged["statistics"] = _merged_statistics(reports, latency_ms, samples.get("host_ms") or None,
                                                  samples.get("enqueue_ms") or None)
        new_warnings += merged["statistics"]["warnings"]
    new_warnings += _merge_pipeline(merged, reports)
    merged["warnings"] = _dedupe(own_warnings + new_warnings)


def _merged_bookkeeping(merged: dict[str, Any], reports: list[dict[str, Any]], n_samples: int) -> None:
    """The stopping section and the phase times summed over the workers."""
    first = reports[0]
    if isinstance(first.get("stopping"), dict):
        stopping = merged["stopping"]
        stopping["reason"] = "; ".join(_dedupe([str(r["stopping"].get("reason")) for r in reports]))
        stopping["iterations"] = n_samples
        for key in ("timed_s", "warmup_s"):
            if all(isinstance(r["stopping"].get(key), (int, float)) for r in reports):
                stopping[key] = sum(r["stopping"][key] for r in reports)
        stopping["ci_half_width_rel_at_stop"] = [r["stopping"].get("ci_half_width_rel_at_stop") for r in reports]
    if isinstance(first.get("timing_phases_s"), dict):
        phases = [r.get("timing_phases_s") or {} for r in reports]
        merged["timing_phases_s"] = {key: sum(p[key] for p in phases) if all(
            isinstance(p.get(key), (int, float)) for p in phases) else value
            for key, value in first["timing_phases_s"].items()}


def _worker_entries(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    entries = []
    for index, report in enumerate(reports):
        samples = report["samples"]["latency_ms"]
        summary = stats.summarize(samples)
        entry = {"worker": index, "pid": (report.get("study") or {}).get("pid"), "median_ms": summary["median_ms"],
                 "mean_ms": summary["mean_ms"], "p95_ms": summary["p95_ms"], "n": len(samples),
                 "peak_rss_MB": report["memory"].get("peak_rss_MB")}
        if report.get("gpu"):
            entry["gpu"] = report["gpu"]
        entries.append(entry)
    return entries


def merge_workers(parts: list[Report], name: str) -> Report:
    """One report from a model's workers: samples concatenated (with their worker index), statistics over all of
    them, per-worker summaries in `study.workers`."""
    reports = [r.to_dict() for r in parts]
    _check_same_setting(reports, name)
    first = reports[0]
    merged = copy.deepcopy(first)
    merged["samples"] = {key: _concat([r["samples"].get(key) for r in reports]) for key in first["samples"]}
    merged["samples"]["worker"] = [index for index, r in enumerate(reports) for _ in r["samples"]["latency_ms"]]
    latency_ms = merged["samples"]["latency_ms"]
    host_ms = merged["samples"].get("host_ms") or None
    latency = stats.summarize(latency_ms)
    merged["latency"].update(latency, n_samples=len(latency_ms))
    if host_ms:
        merged["latency"]["host"] = stats.summarize(host_ms)
    merged["throughput"] = {**first["throughput"],
                            **stats.throughput(first["metadata"]["batch"], latency["mean_ms"], latency["p50_ms"])}
    merged["memory"] = _max_numbers([r["memory"] for r in reports])
    _merged_warnings(merged, reports, latency_ms)
    _merged_bookkeeping(merged, reports, len(latency_ms))
    merged["metadata"]["timestamp"] = reports[-1]["metadata"].get("timestamp")
    merged["metadata"]["iters"] = len(latency_ms)  # what the study ran: its turns, whatever --iters asked
    study = {key: value for key, value in (first.get("study") or {}).items() if key not in ("worker", "pid")}
    merged["study"] = {**study, "workers": _worker_entries(reports)}
    medians = [w["median_ms"] for w in merged["study"]["workers"]]
    merged["notes"] = _dedupe([n for r in reports for n in r.get("notes") or []]) + [
        f"measured by {len(reports)} worker processes taking turns with the other models' workers: statistics over "
        f"all {len(latency_ms)} samples; worker medians {', '.join(f'{m:.3f}' for m in medians)} ms; memory is the "
        f"maximum over the workers" + ("; gpu (NVML) readings are worker 0's, each worker's in study.workers[k].gpu"
                                      if first.get("gpu") else "")]
    return Report.from_dict(merged)
