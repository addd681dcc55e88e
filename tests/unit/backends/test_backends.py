"""Deployment backends (`--format`): export caching, parity, the runtimes through the CLI, errors, grouping."""

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
from detbench.backends.formats import FORMATS, Format, check_format, require
from detbench.backends.parity import check_parity, parity_warnings
from detbench.errors import DetbenchError
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


def _preds(boxes: list[list[float]], classes: list[int], scores: list[float]) -> torch.Tensor:
    """[1, 4 + 80, 200 anchors] as a Detect head returns it (xywh, then class scores); anchors beyond the boxes
    given score 0."""
    table = torch.zeros(200, 84)
    table[:len(boxes), :4] = torch.tensor(boxes)
    for row, (cls, score) in enumerate(zip(classes, scores, strict=True)):
        table[row, 4 + cls] = score
    return table.T.unsqueeze(0)


def test_parity_of_the_same_computation_is_exact_and_a_different_one_warns():
    preds = _preds([[30, 30, 10, 10], [10, 50, 8, 8]], [0, 3], [0.9, 0.8])
    same = check_parity(lambda x: (preds, None), lambda x: preds.clone(), [torch.zeros(1)], 64, 80)
    assert same["within_tolerance"] and same["max_rel_diff"] == 0 and same["detection_agreement"] == 1.0
    assert same["detections_pytorch"] == same["detections_backend"] == 2 and parity_warnings(same, "X") == []
    moved = _preds([[30, 30, 10, 10], [40, 50, 8, 8]], [0, 3], [0.9, 0.8])  # the second box elsewhere
    other = check_parity(lambda x: (preds, None), lambda x: moved, [torch.zeros(1)], 64, 80)
    assert not other["within_tolerance"] and other["detection_agreement"] == 0.5
    (warning,) = parity_warnings(other, "ONNX Runtime")
    assert warning.startswith("parity: the ONNX Runtime model's output differs from PyTorch's beyond tolerance")
    shaped = check_parity(lambda x: preds, lambda x: preds[:, :, :1], [torch.zeros(1)], 64, 80)
    assert not shaped["within_tolerance"] and "shape" in shaped["problem"]


def test_parity_catches_small_box_and_score_changes_but_not_a_score_at_the_threshold():
    preds = _preds([[30, 30, 10, 10], [10, 50, 8, 8]], [0, 3], [0.9, 0.25000001])
    shifted = preds.clone()
    shifted[0, :4] += 0.6  # every box 0.6 px off: far beyond 1e-4 of imgsz
    assert not check_parity(lambda x: preds, lambda x: shifted, [torch.zeros(1)], 640, 80)["within_tolerance"]
    noisy = preds.clone()
    noisy[0, 10, :] += 0.2  # one class's scores changed, with no detection of it either way
    found = check_parity(lambda x: preds, lambda x: noisy, [torch.zeros(1)], 640, 80)
    assert not found["within_tolerance"] and found["score_max_abs_diff"] == pytest.approx(0.2)
    edge = preds.clone()
    edge[0, 4 + 3, 1] = 0.24999999  # a score moving across 0.25 is no disagreement
    assert check_parity(lambda x: preds, lambda x: edge, [torch.zeros(1)], 640, 80)["within_tolerance"]


def test_a_missing_runtime_names_the_extra_to_install():
    missing = Format("onnx", "ONNX Runtime", "not_an_installed_module_xyz", "onnx", "onnx")
    with pytest.raises(DetbenchError, match=r"ONNX Runtime or its exporter's packages are not installed \(missing: "
                                             r"not_an_installed_module_xyz\); pip install -e '\.\[onnx\]'"):
        require(missing)


@pytest.mark.parametrize(("name", "device", "modes", "message"), [
    ("tensorrt", "cpu", {}, "not a backend here"),
    ("onnx", "cuda", {}, r"this ONNX Runtime has no CUDAExecutionProvider .*pip install -e '\.\[onnx-gpu\]'"),
    ("engine", "cpu", {}, "TensorRT runs on an NVIDIA GPU here, not on cpu; pass --device 0"),
    ("engine", "cuda", {"half": True}, r"TensorRT or its exporter's packages are not installed .*\[tensorrt\]"),
    ("openvino", "cuda", {}, "OpenVINO runs on the CPU here, not on cuda; pass --device cpu"),
    ("onnx", "cpu", {"half": True}, "--half applies to PyTorch eager and TensorRT only"),
    ("openvino", "cpu", {"rect": True}, "--rect applies to PyTorch eager only"),
    ("torchscript", "cpu", {"amp": True}, "--amp applies to PyTorch eager only"),
])
def test_impossible_backend_requests_are_refused_naming_the_flag(name, device, modes, message):
    with pytest.raises(DetbenchError, match=message):
        check_format(name, device, modes)
    assert check_format("pytorch", "cuda", {"half": True}) is None


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


def test_compare_keeps_backends_in_separate_groups(tmp_path):
    from test_compare import captured, make_report, save, spread

    save(tmp_path, make_report("baseline", spread(5.0)))
    onnx = make_report("baseline_onnx", spread(4.0))
    onnx["settings"]["backend"] = {"format": "onnx", "runtime": "ONNX Runtime", "version": "1.32.0"}
    save(tmp_path, onnx)
    code, lines, _ = captured(report_paths_or_dir=tmp_path)
    text = "\n".join(lines)
    assert code == 0 and "2 groups" in text and "backend onnx (ONNX Runtime 1.32.0)" in text
    assert json.dumps(text).count("not comparable with group 1") == 1


def test_models_entries_take_a_backend_after_an_at_sign(tmp_path, yaml_checkpoint):
    from detbench.backends.formats import split_format
    from detbench.study.models import resolve_models

    assert split_format("baseline@onnx") == ("baseline", "onnx")
    assert split_format("runs/exp@2/best.pt") == ("runs/exp@2/best.pt", None)  # not a backend: part of the path
    runs = resolve_models([f"{yaml_checkpoint}@pytorch", f"{yaml_checkpoint}@openvino", "ghost@onnx"], tmp_path)
    stem = yaml_checkpoint.stem
    assert [(r.name, r.format) for r in runs] == [(f"{stem}@pytorch", "pytorch"), (f"{stem}@openvino", "openvino"),
                                                  ("ghost@onnx", "onnx")]


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


def test_the_backend_pivot_judges_each_model_against_the_baseline_in_its_own_backend(tmp_path):
    from test_compare import captured, save, study_report

    cells = {("baseline", "pytorch"): 1.0, ("ghost", "pytorch"): 0.8, ("baseline", "onnx"): 0.6,
             ("ghost", "onnx"): 0.6 * 1.3}
    names = [f"{model}@{backend}" for model, backend in cells]
    for seed, ((model, backend), factor) in enumerate(cells.items()):
        report = study_report(f"{model}@{backend}", factor, rounds=80, seed=seed)
        report["study"].update(baseline="baseline@pytorch", models=names, finished_models=names,
                               formats=["onnx", "pytorch"])
        if backend != "pytorch":
            report["settings"]["backend"] = {"format": backend, "runtime": "ONNX Runtime", "version": "1.32.0"}
        save(tmp_path, report)
    code, lines, _ = captured(report_paths_or_dir=tmp_path, baseline="baseline@pytorch", pivot="backend")
    assert code == 0
    start = next(i for i, line in enumerate(lines) if line.startswith("Median latency per model and backend"))
    header, base, ghost = lines[start + 1], lines[start + 2], lines[start + 3]
    assert header.split() == ["Model", "pytorch", "onnx"]
    assert base.startswith("baseline") and base.count("(baseline)") == 2
    assert ghost.startswith("ghost") and "faster)" in ghost.split("ms")[1] and "slower)" in ghost.split("ms")[2]
    # the main table: every model of the study against baseline@pytorch, in one group
    assert any(line.startswith("ghost@onnx") and line.rstrip().endswith("faster") for line in lines)


def test_the_pivot_plot_is_written(tmp_path):
    from detbench.comparison.pivot import Cell, Pivot
    from detbench.comparison.plots import backend_bars

    pivot = Pivot("baseline", ["baseline", "ghost"], ["pytorch", "onnx"],
                  {("baseline", "pytorch"): Cell(None, 10.0, is_baseline=True), ("ghost", "pytorch"): Cell(None, 8.0),
                   ("baseline", "onnx"): Cell(None, 6.0, is_baseline=True)})
    path = backend_bars(pivot, tmp_path / "latency_by_backend.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_a_model_built_from_a_yaml_is_exported_afresh_and_never_cached(cli, tmp_path, dataset):
    result = cli("bench", "--weights", "yolov8n.yaml", "--data", str(dataset), "--format", "onnx", *QUICK,
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "not cached: the model was built from a YAML" in result.stdout
    report = load_report(tmp_path / "results" / "bench" / "yolov8n@onnx.json")  # NAME@FORMAT without --name
    assert report.settings.backend["exported"]["cached_at"] is None and report.parity["within_tolerance"]
    assert "built from a YAML" in report.settings.backend["exported"]["not_cached"]


def test_the_pivot_never_mixes_settings_and_takes_the_family_from_the_study(tmp_path):
    from test_compare import captured, make_report, save

    from detbench.comparison.pivot import planned_comparisons

    save(tmp_path, make_report("baseline", [10.0] * 30))
    other = make_report("ghost", [5.0] * 30)
    other["metadata"]["imgsz"] = 320  # another setting: its own matrix, never a cell beside the baseline's
    save(tmp_path, other)
    code, lines, _ = captured(report_paths_or_dir=tmp_path, pivot="backend")
    assert code == 0 and any(line.startswith("Matrix 2 of 2") for line in lines)
    assert not any("-50.0 %" in line for line in lines)
    study = {"models": ["baseline@pytorch", "ghost@pytorch", "eca@pytorch", "baseline@onnx", "ghost@onnx"]}
    assert planned_comparisons(study, "baseline") == 3
