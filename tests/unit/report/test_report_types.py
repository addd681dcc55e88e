"""The report's types are its contract: sections built from samples, open sections that keep what they do not
declare, the worker merge on typed sections, validation from the declared kinds, and the study record's reader."""

from __future__ import annotations

import json
import os

import pytest
from conftest import make_report, spread

from detbench.errors import DetbenchError
from detbench.report.merge import merge_workers
from detbench.report.model import (
    Key,
    Latency,
    Memory,
    Pipeline,
    Record,
    Report,
    Samples,
    Statistics,
    Study,
    Throughput,
)
from detbench.report.schema import load_report, validate_report
from detbench.report.study_record import StudyRecord, read_study_record
from detbench.stats import summary as stats

SAMPLES = [10.0, 12.0, 11.0, 13.0, 9.0, 10.5]


def worker_report(samples: list[float], worker: int, peak_rss: float) -> Report:
    latency = Latency.from_values(samples, timer="perf_counter_ns")
    return Report(metadata={"model_name": "baseline", "imgsz": 64, "batch": 2, "device": "cpu", "weights": "b.pt"},
                  latency=latency, throughput=Throughput.from_latency(2, latency.mean_ms, latency.p50_ms),
                  memory=Memory(peak_rss_MB=peak_rss, unit="MiB", extra={"future_MB": peak_rss}),
                  statistics=Statistics.from_samples(samples), inputs={"list_sha256": "ab"},
                  stopping={"rule": "study", "reason": "done", "timed_s": 1.0, "warmup_s": 0.5},
                  samples=Samples(latency_ms=samples, round=list(range(len(samples)))),
                  study={"id": "s1", "baseline": "baseline", "worker": worker, "pid": 100 + worker, "cpus": [0]})


def test_sections_build_themselves_from_samples():
    latency = Latency.from_values(SAMPLES, host_ms=[s + 1 for s in SAMPLES], timer="perf_counter_ns")
    assert latency.to_dict() | {"host": None} == {**stats.summarize(SAMPLES), "n_samples": 6,
                                                  "timer": "perf_counter_ns", "scope": None,
                                                  "percentile_method": None, "std_ddof": None, "host": None}
    assert latency.host.median_ms == pytest.approx(latency.median_ms + 1)
    assert Throughput.from_latency(4, 10.0, 8.0).to_dict() == {"fps_mean": 400.0, "fps_p50": 500.0}
    assert Statistics.from_samples(SAMPLES).n_samples == 6


def test_open_sections_are_typed_dicts_that_keep_unknown_keys_in_their_order():
    data = {"newer": 1, "id": "s1", "workers": [{"worker": 0, "median_ms": 1.0, "later": True}]}
    report = Report.from_dict({"study": data, "gpu": {"name": "H100", "newer": [1]}})
    assert isinstance(report.study, Study) and report.study.id == "s1" and report.study.workers[0].median_ms == 1.0
    assert report.gpu.name == "H100" and report.stopping is None
    assert json.dumps(report.to_dict()["study"]) == json.dumps(data)  # same keys, same order
    report.study.finished_models = ["baseline"]
    assert report.to_dict()["study"]["finished_models"] == ["baseline"]
    assert Report.from_dict({"memory": {"graph_pool_MB": 3.0, "x_MB": 1.0}}).memory.to_dict() == {
        **{k: None for k in Memory().to_dict()}, "graph_pool_MB": 3.0, "x_MB": 1.0}


def test_pipeline_summarises_its_stages_in_place():
    samples = {stage: [1.0 + i, 2.0 + i, 3.0 + i] for i, stage in enumerate(Pipeline.STAGES)}
    section = Pipeline(batch=2, **dict.fromkeys(Pipeline.STAGES), per_image_ms=None, throughput=None)
    section.summarise(samples, 2)
    assert list(section) == ["batch", *Pipeline.STAGES, "per_image_ms", "throughput"]
    assert section.per_image_ms["total"]["median_ms"] == section.total.median_ms / 2 == 2.5
    assert section.throughput == {"fps_mean": 400.0, "fps_p50": 400.0}
    assert section.warnings()[0].startswith("pipeline preprocess: CV ")


def test_workers_merge_on_typed_sections():
    one, two = worker_report(SAMPLES, 0, 100.0), worker_report([s * 2 for s in SAMPLES], 1, 150.0)
    merged = merge_workers([one, two], "baseline")
    assert merged.samples.latency_ms == SAMPLES + [s * 2 for s in SAMPLES]
    assert merged.samples.worker == [0] * 6 + [1] * 6 and merged.samples.round == list(range(6)) * 2
    assert merged.latency.median_ms == stats.summarize(merged.samples.latency_ms)["median_ms"]
    assert merged.latency.timer == "perf_counter_ns" and merged.metadata.iters == 12
    assert merged.memory.peak_rss_MB == 150.0 and merged.memory.extra == {"future_MB": 150.0}
    assert merged.stopping.timed_s == 2.0 and merged.stopping.iterations == 12
    assert [w.pid for w in merged.study.workers] == [100, 101] and "worker" not in merged.study
    assert list(merged.study) == ["id", "baseline", "cpus", "workers"]
    assert merged.statistics.warmup_check == {"per_worker": [None, None]}
    validate_report(merged.to_dict())
    two.metadata.imgsz = 96
    with pytest.raises(DetbenchError, match=r"^baseline: worker 1 differs from worker 0 in its imgsz; re-run the "
                                            r"study$"):
        merge_workers([one, two], "baseline")


def test_validation_follows_the_declared_kinds():
    report = worker_report(SAMPLES, 0, 1.0).to_dict()
    validate_report(report)
    for place, value, message in [
            ("metadata", {"imgsz": "x"}, "metadata.imgsz is 'x', not an integer >= 1 or null"),
            ("study", {"alpha": 2}, "study.alpha is 2, not a number between 0 and 1"),
            ("environment", {"cpu": 5}, "environment.cpu is 5, not text of at most"),
            ("memory", {"future_MB": -1}, "memory.future_MB is -1, not a number >= 0"),
            ("statistics", {"cv": "x"}, "statistics.cv not numeric")]:
        with pytest.raises(DetbenchError, match=f"^r: {message}"):
            validate_report({**report, place: {**report[place], **value}}, "r")


def test_the_study_record_has_one_reader(tmp_path):
    path = tmp_path / "study.json"
    path.write_text(json.dumps({"id": "s1", "status": "ok", "models": ["a", {"name": "b"}, {}]}))
    record = read_study_record(path)
    assert isinstance(record, StudyRecord) and record.id == "s1" and record.model_names() == ["a", "b", None]
    os.symlink(path, tmp_path / "link.json")
    with pytest.raises(DetbenchError, match="link.json: is a symbolic link, not a study record; run the study again"):
        read_study_record(tmp_path / "link.json")
    path.write_text("[1]")
    with pytest.raises(DetbenchError, match="not a study record"):
        read_study_record(path)


@pytest.mark.parametrize("place", ["backend", "workers", "host"])
def test_a_deeply_nested_list_in_a_typed_section_is_read_without_recursing(tmp_path, place):
    depth = 900  # parses (just below the JSON decoder's own limit), and far deeper than a recursive walk can go
    report = make_report("baseline", spread(10.0))
    marker = "NESTED"
    if place == "backend":
        report["settings"]["backend"] = marker
    elif place == "workers":
        report["study"] = {"id": "s1", "workers": marker}
    else:
        report["latency"]["host"] = marker
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(report).replace(f'"{marker}"', "[" * depth + "]" * depth))
    loaded = load_report(path)
    assert loaded.latency.median_ms == report["latency"]["median_ms"]


def test_a_declared_key_may_not_hide_a_dict_method():
    with pytest.raises((TypeError, RuntimeError)) as caught:  # Python 3.11 wraps an error of __set_name__
        type("Broken", (Record,), {"get": Key[str]()})
    assert "may not be named like a dict method" in f"{caught.value} {caught.value.__cause__}"
