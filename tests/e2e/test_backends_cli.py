"""Deployment backends through the CLI and a study: each CPU runtime end to end, the export cache, refusals."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from cli_batch import run_cli_batch
from conftest import captured

from detbench.backends.export import Target, export_key, exported, private_cache, versions
from detbench.backends.formats import FORMATS
from detbench.report.model import Report
from detbench.report.schema import load_report

pytest_plugins = ("exported_onnx",)  # its fixture: one cached ONNX export of the session's checkpoint

ONNX, TARGET = FORMATS["onnx"], Target(64, 1)  # the target of the session's export (exported_onnx.py)
QUICK = ["--device", "cpu", "--imgsz", "64", "--warmup", "2", "--iters", "8", "--threads", "1"]


@pytest.fixture
def no_plugins(monkeypatch):
    """This process as a fresh one: a plugin an earlier test imported would keep every export out of the cache."""
    from detbench.models import loading

    monkeypatch.setattr(loading, "_plugin_prefixes", [])
    monkeypatch.setattr(loading, "_foreign_code", [])
    monkeypatch.delenv("PYTHONPATH", raising=False)


@pytest.mark.slow
def test_an_export_is_cached_privately_and_reused_while_its_entry_holds(tmp_path, onnx_export, no_plugins):
    """(test_export_child.py checks every kind of entry that is not used, and that such an entry is replaced by a
    fresh export)"""
    first, root = onnx_export.artifact, onnx_export.root
    assert not first.reused and first.cached_at and first.name == "model.onnx" and first.files["model.onnx"]
    assert first.not_cached is None and first.record()["not_cached"] is None
    assert onnx_export.entry.parent == root  # (the openvino test checks the cache folder a run makes is 0700)
    assert not list(root.glob(".export-*"))  # no work folder left behind
    second = exported(onnx_export.source, onnx_export.fused, ONNX, TARGET, root)
    assert second.reused and second.sha256 == first.sha256 and second.files == first.files
    found = versions(ONNX)
    assert export_key(onnx_export.source.sha256, ONNX, Target(96, 1), found) != \
        export_key(onnx_export.source.sha256, ONNX, TARGET, found)  # another imgsz: another key
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    assert private_cache(shared) is None  # not private: not used


def _without_home_settings(home: Path, cache_dir: Path) -> dict[str, str | None]:
    """The environment of a user whose home folder is `home`, whose exports are cached under `cache_dir`, and
    who set none of the variables that would keep a runtime quiet on its own (CI, ORT_*) or move its files (XDG_*)."""
    unset = {key: None for key in os.environ if key.startswith(("XDG_", "ORT_")) or key == "CI"}
    return {**unset, "HOME": str(home), "DETBENCH_CACHE_DIR": str(cache_dir)}


def _bench(cli, fmt: str, weights: Path | str, dataset: Path, cwd: Path, env: dict[str, str | None] | None = None,
           name: str | None = None) -> tuple[Any, Report]:
    """`detbench bench --format FMT` (with --name NAME, if given) with the checks every CPU backend passes; (its
    result, its report)."""
    named = ["--name", name] if name else []
    result = cli("bench", "--weights", str(weights), "--data", str(dataset), "--format", fmt, *named, *QUICK, cwd=cwd,
                 env=env)
    assert result.returncode == 0, result.stderr
    assert "✓ parity with PyTorch" in result.stdout
    report = load_report(cwd / "results" / "bench" / f"{name or f'{Path(weights).stem}@{fmt}'}.json")
    backend = report.settings.backend
    assert backend["format"] == fmt and backend["exported"]["sha256"]
    threads = backend["threads"]
    assert threads.get("intra_op", threads.get("inference_num_threads")) == 1
    assert report.settings.threads == 1  # the exporter's own thread setting did not leak into the run
    assert report.parity["within_tolerance"] and report.parity["box_max_diff_of_imgsz"] < 1e-4
    assert report.model_complexity.params > 0 and report.latency.n_samples == 8
    assert any("params and GFLOPs are those of the PyTorch model" in note for note in report.notes)
    return result, report


def _cached_under(report: Report, cache_dir: Path) -> Path:
    """The cache entry the report's export was taken from or stored in, checked to be under `cache_dir`."""
    cached_at = report.settings.backend["exported"]["cached_at"]
    assert cached_at and Path(cached_at).is_relative_to(cache_dir)
    return Path(cached_at)


@pytest.mark.slow
def test_onnx_benches_end_to_end_from_the_cache_and_writes_nothing_under_the_home_folder(cli, tmp_path,
                                                                                        onnx_export, dataset):
    """The export cached by an earlier run is reused (the cache is the same code for every format: the other
    formats show a fresh export stored). ONNX Runtime writes a device id under ~/.cache when imported."""
    home = tmp_path / "home"
    home.mkdir()
    result, report = _bench(cli, "onnx", onnx_export.source.weights, dataset, tmp_path,
                            _without_home_settings(home, onnx_export.cache_dir), name="v8n-onnx")
    assert "reused from the private export cache" in result.stdout
    assert _cached_under(report, onnx_export.cache_dir) == onnx_export.entry
    assert [str(path.relative_to(home)) for path in home.rglob("*")] == []


@pytest.mark.slow
def test_openvino_benches_end_to_end_and_its_export_writes_only_in_its_own_folder(cli, tmp_path, yaml_checkpoint,
                                                                                  dataset):
    """Ultralytics' exporter replaces `.pt` anywhere in the path it derives the OpenVINO folder from; OpenVINO
    writes a telemetry id under ~/intel. (The export cache and Ultralytics' settings have folders of their own:
    DETBENCH_CACHE_DIR, YOLO_CONFIG_DIR.)"""
    weights = tmp_path / "b.pt" / "m.pt"
    weights.parent.mkdir()
    shutil.copy(yaml_checkpoint, weights)
    home, cache_dir, work = tmp_path / "home", tmp_path / "a.pt", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    _result, report = _bench(cli, "openvino", weights, dataset, work, _without_home_settings(home, cache_dir),
                             name="v8n-openvino")
    backend = report.settings.backend
    assert "float32" in backend["properties"]["INFERENCE_PRECISION_HINT"].lower()
    assert not backend["exported"]["reused"] and _cached_under(report, cache_dir).parent == cache_dir / "exports"
    assert sorted(os.listdir(tmp_path)) == ["a.pt", "b.pt", "home", "work"]  # no a_openvino_model beside a.pt
    assert os.listdir(cache_dir) == ["exports"] and stat.S_IMODE((cache_dir / "exports").stat().st_mode) == 0o700
    assert [str(path.relative_to(home)) for path in home.rglob("*")] == []


@pytest.mark.slow
def test_torchscript_benches_end_to_end_a_model_built_from_a_yaml_exported_afresh_and_never_cached(cli, tmp_path,
                                                                                                   dataset):
    """(the ONNX and OpenVINO runs show a checkpoint's export cached; a YAML's export is the same code for every
    format)"""
    result, report = _bench(cli, "torchscript", "yolov8n.yaml", dataset, tmp_path)  # NAME@FORMAT without --name
    assert "not cached: the model was built from a YAML" in result.stdout
    exported_record = report.settings.backend["exported"]
    assert exported_record["cached_at"] is None and "built from a YAML" in exported_record["not_cached"]


@pytest.fixture(scope="module")
def early_errors(tmp_path_factory, yaml_checkpoint, dataset) -> dict[str, tuple[Path, Any]]:
    """Command lines that each end with one error, each in a folder of its own, run in one child (torch imported
    once): name -> (its folder, its outcome). Exports go to an empty cache: none of the session's is found."""
    names = ("exported-file", "study-mode", "name-format", "export-bound")
    folders = {name: tmp_path_factory.mktemp(name) for name in names}
    onnx = folders["exported-file"] / "model.onnx"
    onnx.write_bytes(b"not really")
    models = f"{yaml_checkpoint}@pytorch,{yaml_checkpoint}@onnx"
    cases = {
        "exported-file": ["bench", "--weights", onnx, "--device", "cpu"],
        "study-mode": ["ablate", "--models", models, "--device", "cpu", "--channels-last", "--out",
                       folders["study-mode"] / "out"],
        "name-format": ["bench", "--weights", "yolov8n.yaml", "--name", "v8n@onnx", "--device", "cpu"],
        "export-bound": ["bench", "--weights", yaml_checkpoint, "--data", dataset, "--format", "onnx", "--device",
                         "cpu", "--imgsz", "64", "--warmup", "1", "--iters", "2", "--threads", "1",
                         "--export-timeout", "1"],
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DETBENCH_CACHE_DIR", str(tmp_path_factory.mktemp("empty-cache")))
        outcomes = run_cli_batch({name: (args, folders[name]) for name, args in cases.items()},
                                 tmp_path_factory.mktemp("batch"))
    return {name: (folders[name], outcomes[name]) for name in cases}


@pytest.mark.slow
def test_an_exported_file_as_weights_says_to_pass_the_checkpoint_with_format(early_errors):
    folder, result = early_errors["exported-file"]
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: --weights {folder / 'model.onnx'}: an exported model, not a checkpoint; "
                                     "pass the .pt it was exported from with --format onnx (detbench exports it, "
                                     "with the PyTorch model's params and GFLOPs)")


@pytest.mark.slow
def test_a_study_refuses_a_backend_that_cannot_run_before_any_worker_starts(early_errors):
    folder, result = early_errors["study-mode"]
    assert result.returncode == 2 and "--format onnx: --channels-last applies to PyTorch eager only" in result.stderr
    assert not (folder / "out" / "study.json").exists()


@pytest.mark.slow
def test_a_name_that_names_another_backend_than_format_is_refused(early_errors):
    _folder, result = early_errors["name-format"]
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: --name v8n@onnx: names the onnx backend but --format is pytorch; pass "
                                     "--format onnx or another --name")


@pytest.mark.slow
def test_the_cli_stops_an_export_at_its_bound_with_one_line(early_errors, yaml_checkpoint):
    """(test_export_child.py checks that the export's process is killed at its bound, with everything it started)"""
    _folder, result = early_errors["export-bound"]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: --format onnx: exporting {yaml_checkpoint} took more than 1 s, detbench's limit; if the model is "
        f"genuine and large, raise --export-timeout")


@pytest.mark.slow
def test_one_study_compares_backends_of_one_model_and_compare_keeps_them_in_one_table(cli, tmp_path, onnx_export,
                                                                                     yaml_checkpoint, dataset):
    stem = yaml_checkpoint.stem
    out = tmp_path / "backends"
    result = cli("ablate", "--models", f"{yaml_checkpoint}@pytorch,{yaml_checkpoint}@onnx", "--baseline",
                 f"{stem}@pytorch", "--out", str(out), "--data", str(dataset), "--workers-per-model", "1",
                 "--no-until-decided", "--iters", "12", "--quiet", *QUICK, cwd=tmp_path,
                 env={"DETBENCH_CACHE_DIR": str(onnx_export.cache_dir)})  # its ONNX worker reuses the export
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((out / "study.json").read_text())
    assert record["formats"] == ["onnx", "pytorch"]
    onnx = load_report(out / f"{stem}@onnx.json")
    assert onnx.settings.backend["format"] == "onnx" and onnx.parity["within_tolerance"]
    assert load_report(out / f"{stem}@pytorch.json").settings.backend is None
    code, lines, _warnings = captured(report_paths_or_dir=out, baseline=f"{stem}@pytorch")  # `detbench compare OUT`
    printed = "\n".join(lines)
    assert code == 0 and "groups" not in printed.splitlines()[1]
    assert "backend several (onnx, pytorch), compared in interleaved study" in printed
    assert f"{stem}@onnx" in printed
