"""Deployment backends through the CLI and a study: each CPU runtime end to end, the export cache, refusals."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch

from detbench.backends.export import (
    Target,
    Unusable,
    _stored,
    export_key,
    export_limit,
    exported,
    private_cache,
    versions,
)
from detbench.backends.export_child import ExportSource
from detbench.backends.formats import FORMATS
from detbench.models.loading import load_model, prepare_for_inference
from detbench.report.schema import load_report

QUICK = ["--device", "cpu", "--imgsz", "64", "--warmup", "2", "--iters", "8", "--threads", "1"]


@pytest.fixture
def no_plugins(monkeypatch):
    """This process as a fresh one: a plugin an earlier test imported would keep every export out of the cache."""
    from detbench.models import loading

    monkeypatch.setattr(loading, "_plugin_prefixes", [])
    monkeypatch.setattr(loading, "_foreign_code", [])
    monkeypatch.delenv("PYTHONPATH", raising=False)


def _checkpoint(weights: Path) -> tuple[ExportSource, torch.nn.Module]:
    """What a run hands the export: the checkpoint as it loaded it, and its fused model."""
    loaded = load_model(str(weights))
    return ExportSource.of(loaded), prepare_for_inference(loaded.model)


@pytest.mark.slow
def test_an_export_is_cached_privately_and_not_reused_once_changed_or_writable_by_others(tmp_path, yaml_checkpoint,
                                                                                         no_plugins):
    """(tests/test_security_export.py checks every other kind of entry that is not used)"""
    source, fused = _checkpoint(yaml_checkpoint)
    root = tmp_path / "exports"
    first = exported(source, fused, FORMATS["onnx"], Target(64, 1), root)
    assert not first.reused and first.cached_at and first.name == "model.onnx" and first.files["model.onnx"]
    assert first.not_cached is None and first.record()["not_cached"] is None
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    second = exported(source, fused, FORMATS["onnx"], Target(64, 1), root)
    assert second.reused and second.sha256 == first.sha256 and second.files == first.files
    found = versions(FORMATS["onnx"])
    assert export_key(source.sha256, FORMATS["onnx"], Target(96, 1), found) != \
        export_key(source.sha256, FORMATS["onnx"], Target(64, 1), found)  # another imgsz: another key
    stored = Path(first.cached_at) / "files" / "model.onnx"
    stored.write_bytes(stored.read_bytes() + b"\0")  # a changed file is never used
    third = exported(source, fused, FORMATS["onnx"], Target(64, 1), root)
    assert not third.reused and third.cached_at == first.cached_at and "do not hash" in third.refused_entry
    assert exported(source, fused, FORMATS["onnx"], Target(64, 1), root).reused
    assert not list(root.glob(".export-*"))  # no work folder left behind
    entry, limit = Path(first.cached_at), export_limit(fused)
    entry.chmod(0o777)  # writable by others: anyone could have planted it
    with pytest.raises(Unusable, match="writable by group or others"):
        _stored(entry, FORMATS["onnx"], limit)
    entry.chmod(0o700)
    elsewhere = tmp_path / "elsewhere.onnx"
    elsewhere.write_bytes(stored.read_bytes())
    stored.unlink()
    stored.symlink_to(elsewhere)
    with pytest.raises(Unusable, match=r"files/model\.onnx is a symlink"):
        _stored(entry, FORMATS["onnx"], limit)
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    assert private_cache(shared) is None  # not private: not used


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "openvino", "torchscript"])
def test_each_cpu_backend_benches_end_to_end_with_parity_and_its_threads(cli, tmp_path, yaml_checkpoint, dataset,
                                                                          fmt):
    result = cli("bench", "--weights", str(yaml_checkpoint), "--data", str(dataset), "--format", fmt,
                 "--name", f"v8n-{fmt}", *QUICK, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "✓ parity with PyTorch" in result.stdout
    report = load_report(tmp_path / "results" / "bench" / f"v8n-{fmt}.json")
    backend = report.settings.backend
    assert backend["format"] == fmt and backend["exported"]["sha256"] and backend["exported"]["cached_at"]
    assert Path(backend["exported"]["cached_at"]).is_relative_to(Path(os.environ["DETBENCH_CACHE_DIR"]))
    threads = backend["threads"]
    assert threads.get("intra_op", threads.get("inference_num_threads")) == 1
    assert report.settings.threads == 1  # the exporter's own thread setting did not leak into the run
    assert report.parity["within_tolerance"] and report.parity["box_max_diff_of_imgsz"] < 1e-4
    assert report.model_complexity.params > 0 and report.latency.n_samples == 8
    assert any("params and GFLOPs are those of the PyTorch model" in note for note in report.notes)
    if fmt == "openvino":
        assert "float32" in backend["properties"]["INFERENCE_PRECISION_HINT"].lower()
    if fmt == "onnx":  # the cache is the same code for every format: one re-run shows the reuse
        again = cli("bench", "--weights", str(yaml_checkpoint), "--data", str(dataset), "--format", fmt,
                    "--name", f"v8n-{fmt}", *QUICK, cwd=tmp_path)
        assert again.returncode == 0 and "reused from the private export cache" in again.stdout


@pytest.mark.slow
def test_an_exported_file_as_weights_says_to_pass_the_checkpoint_with_format(cli, tmp_path):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"not really")
    result = cli("bench", "--weights", str(onnx), "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: --weights {onnx}: an exported model, not a checkpoint; pass the .pt it "
                                     "was exported from with --format onnx (detbench exports it, with the PyTorch "
                                     "model's params and GFLOPs)")


def test_a_study_refuses_a_backend_that_cannot_run_before_any_worker_starts(cli, tmp_path, yaml_checkpoint):
    result = cli("ablate", "--models", f"{yaml_checkpoint}@pytorch,{yaml_checkpoint}@onnx", "--device", "cpu",
                 "--channels-last", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 2 and "--format onnx: --channels-last applies to PyTorch eager only" in result.stderr
    assert not (tmp_path / "out" / "study.json").exists()


@pytest.mark.slow
def test_one_study_compares_backends_of_one_model_and_compare_keeps_them_in_one_table(cli, tmp_path,
                                                                                     yaml_checkpoint, dataset):
    stem = yaml_checkpoint.stem
    out = tmp_path / "backends"
    result = cli("ablate", "--models", f"{yaml_checkpoint}@pytorch,{yaml_checkpoint}@onnx", "--baseline",
                 f"{stem}@pytorch", "--out", str(out), "--data", str(dataset), "--workers-per-model", "1",
                 "--no-until-decided", "--iters", "12", "--quiet", *QUICK, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((out / "study.json").read_text())
    assert record["formats"] == ["onnx", "pytorch"]
    onnx = load_report(out / f"{stem}@onnx.json")
    assert onnx.settings.backend["format"] == "onnx" and onnx.parity["within_tolerance"]
    assert load_report(out / f"{stem}@pytorch.json").settings.backend is None
    compared = cli("compare", str(out), "--baseline", f"{stem}@pytorch", cwd=tmp_path)
    assert compared.returncode == 0 and "groups" not in compared.stdout.splitlines()[1]
    assert "backend several (onnx, pytorch), compared in interleaved study" in compared.stdout
    assert f"{stem}@onnx" in compared.stdout


@pytest.mark.slow
def test_a_model_built_from_a_yaml_is_exported_afresh_and_never_cached(cli, tmp_path, dataset):
    result = cli("bench", "--weights", "yolov8n.yaml", "--data", str(dataset), "--format", "onnx", *QUICK,
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "not cached: the model was built from a YAML" in result.stdout
    report = load_report(tmp_path / "results" / "bench" / "yolov8n@onnx.json")  # NAME@FORMAT without --name
    assert report.settings.backend["exported"]["cached_at"] is None and report.parity["within_tolerance"]
    assert "built from a YAML" in report.settings.backend["exported"]["not_cached"]
