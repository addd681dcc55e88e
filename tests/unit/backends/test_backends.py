"""Deployment backends (`--format`): export caching, parity, the runtimes through the CLI, errors, grouping."""

from __future__ import annotations

import json

import pytest
import torch

from detbench.backends.formats import Format, check_format, require
from detbench.backends.parity import check_parity, parity_warnings
from detbench.errors import DetbenchError


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


def test_compare_keeps_backends_in_separate_groups(tmp_path):
    from conftest import captured, make_report, save, spread

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


def test_the_backend_pivot_judges_each_model_against_the_baseline_in_its_own_backend(tmp_path):
    from conftest import captured, save, study_report

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


def test_the_pivot_never_mixes_settings_and_takes_the_family_from_the_study(tmp_path):
    from conftest import captured, make_report, save

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
