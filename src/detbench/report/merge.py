"""One model's report from the reports of its study workers.

Samples are concatenated in worker order, with each sample's round and worker
index (`samples.round`, `samples.worker`), so the pairing of an interleaved
study can be rebuilt from the reports alone. In a study whose processes hold
every model (`study.processes_hold_every_model`) the worker index is the
process's (generation * W + k), the same in every model's report; in older
studies it is the worker's place in the merge. Statistics are recomputed over
all samples; the warm-up check stays per worker (each warmed up on its own);
memory is the maximum over the workers; `study.workers` keeps each worker's
median, sample count and pid.
"""

from __future__ import annotations

import copy
from dataclasses import fields, replace
from typing import Any

from detbench.errors import DetbenchError
from detbench.report.kinds import is_number
from detbench.report.model import (
    LatencySummary,
    Memory,
    Report,
    Samples,
    Statistics,
    Study,
    StudyWorker,
    Throughput,
)
from detbench.report.setting import SettingKey
from detbench.stats import diagnostics


def _concat(values: list[Any]) -> Any:
    """Lists concatenated; dicts of lists concatenated per key; anything else: None unless all equal."""
    if all(isinstance(v, list) for v in values):
        return [item for v in values for item in v]
    if all(isinstance(v, dict) for v in values):
        return {key: _concat([v.get(key) for v in values]) for key in values[0]}
    return values[0] if all(v == values[0] for v in values) else None


def _peak(values: list[Any]) -> Any:
    """The largest number, where the first worker's value is one; else the first worker's value."""
    numbers = [value for value in values if is_number(value)]
    return max(numbers) if is_number(values[0]) and numbers else values[0]


def _samples(parts: list[Report], indices: list[int]) -> Samples:
    """Every worker's samples, in worker order, with the worker index of each latency sample."""
    merged = {item.name: _concat([getattr(part.samples, item.name) for part in parts])
              for item in fields(Samples) if item.name != "extra"}
    extra = {key: _concat([part.samples.extra.get(key) for part in parts]) for key in parts[0].samples.extra}
    merged["worker"] = [index for index, part in zip(indices, parts, strict=True) for _ in part.samples.latency_ms]
    return Samples(**merged, extra=extra)


def _memory(parts: list[Report]) -> Memory:
    memories = [part.memory for part in parts]
    return Memory(**{item.name: _peak([getattr(m, item.name) for m in memories]) for item in fields(Memory)
                     if item.name != "extra"},
                  extra={key: _peak([m.extra.get(key) for m in memories]) for key in memories[0].extra})


def _statistics(parts: list[Report], samples: Samples, median_ms: float) -> Statistics:
    """Statistics over all workers' samples; the warm-up check stays per worker (each worker warmed up on its own)."""
    latency_ms = samples.latency_ms
    statistics = Statistics.from_samples(latency_ms, samples.host_ms or None, samples.enqueue_ms or None)
    warm_checks = [(part.statistics.warmup_check if part.statistics else None) for part in parts]
    warm_checks = [w if isinstance(w, dict) and "ratio" in w else None for w in warm_checks]
    statistics.warmup_check = {"per_worker": warm_checks}
    enqueue_median = LatencySummary.from_values(samples.enqueue_ms).median_ms if samples.enqueue_ms else None
    warnings = diagnostics.warnings_for(statistics.to_dict(), statistics.outliers, None,
                                        median_ms, enqueue_median, len(latency_ms))
    for index, warm in enumerate(warm_checks):
        warm_up = diagnostics.warmup_warning(warm, turns=True)
        if warm_up:
            warnings.append(f"worker {index}: {warm_up}")
    statistics.warnings = warnings
    return statistics


def _check_same_setting(parts: list[Report], name: str) -> None:
    """Every worker measured the same setting as worker 0 (the same inputs, model, imgsz, batch and device)."""
    first = SettingKey.of_report(parts[0])
    for index, part in enumerate(parts[1:], start=1):
        label = SettingKey.of_report(part).worker_difference(first)
        if label is not None:
            raise DetbenchError(f"{name}: worker {index} differs from worker 0 in its {label}; re-run the study")


def _warnings(merged: Report, parts: list[Report]) -> list[str]:
    """Each worker's own warnings (not those derived from its samples), then those of the merged samples."""
    own: list[str] = []
    for part in parts:
        derived = set(part.statistics.warnings if part.statistics else [])
        derived.update(w for w in part.warnings if str(w).startswith("pipeline "))
        own += [w for w in part.warnings if w not in derived]
    new = merged.statistics.warnings if merged.statistics else []
    return list(dict.fromkeys(own + new + (merged.pipeline.warnings() if merged.pipeline else [])))


def _bookkeeping(merged: Report, parts: list[Report], n_samples: int) -> None:
    """The pipeline recomputed from all samples; the stopping section and the phase times summed over the workers."""
    if merged.pipeline is not None and isinstance(merged.samples.pipeline_ms, dict):
        samples = merged.samples.pipeline_ms
        merged.pipeline.summarise(samples, merged.metadata.batch)
        merged.pipeline.n_samples = len(samples.get("total") or [])
        merged.pipeline.stop_reason = "; ".join(dict.fromkeys(str(p.pipeline.stop_reason) for p in parts))
    if merged.stopping is not None:
        stops = [part.stopping for part in parts]
        merged.stopping.reason = "; ".join(dict.fromkeys(str(stop.reason) for stop in stops))
        merged.stopping.iterations = n_samples
        for key in ("timed_s", "warmup_s"):
            if all(isinstance(stop.get(key), (int, float)) for stop in stops):
                merged.stopping[key] = sum(stop[key] for stop in stops)
        merged.stopping.ci_half_width_rel_at_stop = [stop.ci_half_width_rel_at_stop for stop in stops]
    if isinstance(merged.timing_phases_s, dict):
        phases = [part.timing_phases_s or {} for part in parts]
        merged.timing_phases_s = {key: sum(p[key] for p in phases) if all(
            isinstance(p.get(key), (int, float)) for p in phases) else value
            for key, value in merged.timing_phases_s.items()}


def _worker(index: int, part: Report) -> StudyWorker:
    summary = LatencySummary.from_values(part.samples.latency_ms)
    entry = StudyWorker(worker=index, pid=part.study.pid if part.study else None, median_ms=summary.median_ms,
                        mean_ms=summary.mean_ms, p95_ms=summary.p95_ms, n=len(part.samples.latency_ms),
                        peak_rss_MB=part.memory.peak_rss_MB)
    if part.gpu:
        entry.gpu = part.gpu
    return entry


def _memory_note(first: Report) -> str:
    """What a worker's memory readings are: the model's own (`memory.scope`), or in reports of older versions the
    process's."""
    if not first.memory.scope:
        return "; a worker's memory readings are its process's, every model it holds included"
    on_gpu = first.memory.peak_gpu_mem_MB is not None
    own = ("peak_gpu_mem_MB, allocated_MB and activation_peak_MB count only this model's allocations (weights, "
           "buffers, its activation peak), not the other models resident; reserved_MB and device_used_MB, "
           "which cannot be split, are null, and so is gpu.energy_mJ_per_image" if on_gpu else
           "weights_MB, model_rss_MB (what loading it added), activation_peak_rss_MB and model_memory_MB are this "
           "model's own; loop_peak_rss_MB, the process's, is null")
    return (f"; each model's memory was read over forwards of it alone, right after its warm-up (memory.scope): "
            f"{own}; peak_rss_MB and rss_MB are the worker process's, every model it holds included")


def merge_workers(parts: list[Report], name: str) -> Report:
    """One report from a model's workers: samples concatenated (with their worker index), statistics over all of
    them, per-worker summaries in `study.workers`."""
    _check_same_setting(parts, name)
    first = parts[0]
    shared = first.study is not None and first.study.processes_hold_every_model is True
    own = [part.study.worker if part.study is not None else None for part in parts]
    indices = own if shared and all(isinstance(index, int) for index in own) else list(range(len(parts)))
    merged = copy.deepcopy(first)
    merged.samples = _samples(parts, indices)
    latency_ms = merged.samples.latency_ms
    latency = LatencySummary.from_values(latency_ms)
    merged.latency = replace(first.latency, **{item.name: getattr(latency, item.name) for item in fields(latency)
                                               if item.name != "extra"}, n_samples=len(latency_ms))
    if merged.samples.host_ms:
        merged.latency.host = LatencySummary.from_values(merged.samples.host_ms)
    merged.throughput = Throughput.from_latency(first.metadata.batch, latency.mean_ms, latency.p50_ms,
                                                extra=first.throughput.extra)
    merged.memory = _memory(parts)
    if first.statistics is not None:
        merged.statistics = _statistics(parts, merged.samples, latency.median_ms)
    _bookkeeping(merged, parts, len(latency_ms))
    merged.warnings = _warnings(merged, parts)
    merged.metadata.timestamp = parts[-1].metadata.timestamp
    merged.metadata.iters = len(latency_ms)  # what the study ran: its turns, whatever --iters asked
    workers = [_worker(index, part) for index, part in zip(indices, parts, strict=True)]
    merged.study = Study({key: value for key, value in (first.study or {}).items() if key not in ("worker", "pid")},
                         workers=workers)
    medians = ", ".join(f"{worker.median_ms:.3f}" for worker in workers)
    together = ("each holding every model of the study, taking turns" if shared
                else "taking turns with the other models' workers")
    merged.notes = list(dict.fromkeys(note for part in parts for note in part.notes)) + [
        f"measured by {len(parts)} worker processes {together}: statistics over all {len(latency_ms)} samples; "
        f"worker medians {medians} ms; memory is the maximum over the workers"
        + (_memory_note(first) if shared else "")
        + ("; gpu (NVML) readings are worker 0's, each worker's in study.workers[k].gpu" if first.gpu else "")]
    return merged
