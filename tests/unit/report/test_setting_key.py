"""SettingKey: one definition of the setting a measurement was made under, from a report and from a config."""

from __future__ import annotations

from detbench.config import BenchConfig
from detbench.report.model import Report
from detbench.report.setting import SettingKey


def _report(**config) -> Report:
    return Report.from_dict({"schema_version": 2, "status": "ok",
                             "metadata": {"imgsz": 64, "batch": 1, "device": "cpu", "weights": "w.pt",
                                          "weights_sha256": "a" * 64},
                             "inputs": {"list_sha256": "b" * 64},
                             "settings": {"threads": 1, "precision": "fp32"},
                             "environment": {"cpu": "Test CPU", "torch": "2.0"},
                             "config": {"imgsz": 64, "threads": 1, **config}})


def test_a_report_and_its_config_name_the_same_setting_and_differences_are_labelled():
    report = _report()
    key = SettingKey.of_report(report)
    same = SettingKey.of_config(BenchConfig(weights="w.pt", imgsz=64, threads=1), "cpu", "b" * 64, "a" * 64)
    assert key.changes_to(same) == []
    other = SettingKey.of_config(BenchConfig(weights="w.pt", imgsz=96, threads=1), "cuda:0", "c" * 64, "d" * 64)
    assert key.changes_to(other) == ["other weights", "--device cpu, now cuda:0", "--imgsz 64, now 96",
                                     "another benchmark list (--list, --data, --seed or --benchmark_size)"]
    assert key.changes_to(other, weights=False)[0] == "--device cpu, now cuda:0"


def test_a_setting_a_report_predates_counts_as_its_default():
    assert SettingKey.of_report(_report()).flags == SettingKey.of_report(_report(half=False)).flags


def test_grouping_ignores_what_was_asked_and_the_pivot_ignores_the_backend():
    one, two = SettingKey.of_report(_report()), SettingKey.of_report(_report(iters=5))
    assert one != two and one.grouped() == two.grouped()
    assert one.grouped().without("backend").backend is None
    assert one.grouped().imgsz == 64 and one.grouped().list_sha256 == "b" * 64
    assert SettingKey(imgsz=96).difference(SettingKey(imgsz=64)) == "imgsz 96 vs 64"


def test_the_digest_leaves_defaults_out_and_changes_with_the_setting():
    cfg = BenchConfig(weights="x", threads=1)
    base = SettingKey.of_config(cfg, "cpu", "l").digest(models=["m"])
    assert base == SettingKey.of_config(cfg.to_dict(), "cpu", "l").digest(models=["m"])
    assert base != SettingKey.of_config(BenchConfig(weights="x", threads=1, imgsz=96), "cpu", "l").digest(models=["m"])
    assert base != SettingKey.of_config(cfg, "cpu", "l").digest(models=["n"])


def test_workers_must_share_their_inputs_and_model():
    one = SettingKey.of_report(_report())
    assert one.worker_difference(one) is None
    assert SettingKey(list_sha256="x").worker_difference(SettingKey(list_sha256="y")) == "benchmark list"
