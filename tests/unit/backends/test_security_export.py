"""The export for `--format` against hostile inputs: the cache is shared only by exports that depend on
the checkpoint's bytes alone, an export is bounded in time and memory in a child that dies with its parent, it
writes only inside its own folder, parity cannot pass on NaN, every file of a cache entry is checked, and nothing
is written under the home folder.

The payloads are real: a plugin that patches Ultralytics' own Conv through a helper module, a 0.2 KB model YAML
whose export runs for minutes, paths holding `.pt`, a backend answering NaN.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from detbench.backends.export import Unusable, _stored, not_cached_because
from detbench.backends.export_child import (
    ENGINE_EXPORT_TIMEOUT_S,
    EXPORT_FORWARDS,
    EXPORT_TIMEOUT_S,
    ExportBounds,
    ExportSource,
)
from detbench.backends.formats import FORMATS, quiet_import, require
from detbench.backends.parity import check_parity, parity_warnings
from detbench.errors import DetbenchError
from detbench.models import loading
from detbench.models.loading import load_model, prepare_for_inference

ONNX = FORMATS["onnx"]


@pytest.fixture
def no_plugins(monkeypatch):
    """This process as a fresh one: no plugin imported by an earlier test, Ultralytics' Conv restored after."""
    from ultralytics.nn.modules.conv import Conv

    monkeypatch.setattr(loading, "_plugin_prefixes", [])
    monkeypatch.setattr(loading, "_foreign_code", [])
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setattr(Conv, "forward", Conv.forward)
    monkeypatch.setattr(Conv, "forward_fuse", Conv.forward_fuse)
    yield
    sys.modules.pop("conv_patch_plugin", None)


def _loaded(weights: Path | str, plugins: tuple[str, ...] = ()) -> tuple[ExportSource, torch.nn.Module]:
    loaded = load_model(str(weights), plugins=list(plugins))
    return ExportSource.of(loaded, plugins), prepare_for_inference(loaded.model)


def test_what_may_be_cached_depends_on_the_checkpoint_alone(no_plugins):
    checkpoint = ExportSource("m.pt", "a" * 64, "checkpoint")
    assert not_cached_because(checkpoint) is None
    assert "built from a YAML" in not_cached_because(ExportSource("m.yaml", "b" * 64, "yaml"))
    assert "--unsafe-load" in not_cached_because(ExportSource("m.pt", "a" * 64, "checkpoint", unsafe_load=True))
    assert "plugin" in not_cached_because(ExportSource("m.pt", "a" * 64, "checkpoint", ("layers.py",)))


def test_the_default_time_bound_follows_the_format_the_batch_and_the_models_forward_pass():
    assert ExportBounds(timeout_s=5).seconds(ONNX, 8) == 5
    assert ExportBounds().seconds(ONNX, 1) == EXPORT_TIMEOUT_S  # YOLOv8x's bounded export: 12-22 s on 2 cores
    assert ExportBounds(forward_s=0.5).seconds(ONNX, 4) == EXPORT_TIMEOUT_S + EXPORT_FORWARDS * 4 * 0.5
    assert ExportBounds().seconds(FORMATS["engine"], 1) == ENGINE_EXPORT_TIMEOUT_S  # TensorRT times kernels


def _untrained(anchors: int = 84) -> torch.Tensor:
    """[1, 4 + 80, anchors] as an untrained Detect head gives it: boxes in pixels, every score far below 0.3."""
    torch.manual_seed(0)
    return torch.cat([torch.rand(1, 4, anchors) * 64, torch.rand(1, 80, anchors) * 0.01], dim=1)


@pytest.mark.parametrize("broken", [
    lambda out: torch.full_like(out, float("nan")),
    lambda out: out.index_put((torch.tensor([0]), torch.tensor([2]), torch.tensor([5])), torch.tensor(float("nan"))),
    lambda out: out.index_put((torch.tensor([0]), torch.tensor([50]), torch.tensor([5])), torch.tensor(float("inf"))),
], ids=["all-nan", "one-nan-box", "one-inf-score"])
def test_a_backend_answering_nan_fails_parity_even_when_pytorch_finds_nothing(broken):
    preds = _untrained()
    found = check_parity(lambda x: preds, lambda x: broken(preds.clone()), [torch.zeros(1)], 64, 80)
    assert found["detections_pytorch"] == 0 and not found["within_tolerance"]
    assert found["nonfinite_values"]["backend"] >= 1 and "NaN or infinite" in found["problem"]
    (warning,) = parity_warnings(found, "ONNX Runtime")
    assert "NaN or infinite where PyTorch's are finite" in warning


def test_parity_without_detections_still_compares_the_raw_outputs():
    preds = _untrained()
    same = check_parity(lambda x: preds, lambda x: preds.clone(), [torch.zeros(1)], 64, 80)
    assert same["within_tolerance"] and same["detection_agreement"] is None
    moved = preds.clone()
    moved[0, :4] += 0.5  # every box half a pixel off, with no detection either way
    found = check_parity(lambda x: preds, lambda x: moved, [torch.zeros(1)], 64, 80)
    assert not found["within_tolerance"] and found["box_max_abs_diff_px"] == pytest.approx(0.5)
    nan_reference = check_parity(lambda x: torch.full_like(preds, float("nan")), lambda x: preds, [torch.zeros(1)],
                                 64, 80)
    assert not nan_reference["within_tolerance"] and "PyTorch's own output" in nan_reference["problem"]


def test_parity_with_outputs_that_hardly_vary_says_it_proves_little():
    """An untrained model's outputs are its head's biases, whatever the input: a backend that ignored its input
    would agree. With more than one input that is measured and warned of."""
    constant = _untrained()
    varying = [constant + 5.0 * torch.rand_like(constant) for _ in range(3)]
    inputs = [torch.full((1,), float(i)) for i in range(3)]
    blind = check_parity(lambda x: constant, lambda x: constant.clone(), inputs, 64, 80)
    assert blind["within_tolerance"] and blind["informative"] is False and blind["reference_spread"]["box_px"] < 1e-4
    (warning,) = parity_warnings(blind, "ONNX Runtime")
    assert "hardly vary from one input to another" in warning and "says little" in warning
    seeing = check_parity(lambda x: varying[int(x)], lambda x: varying[int(x)].clone(), inputs, 64, 80)
    assert seeing["within_tolerance"] and seeing["informative"] and parity_warnings(seeing, "ONNX Runtime") == []


def test_a_plugin_that_fails_half_way_or_an_unsafe_load_keeps_every_later_export_out_of_the_cache(
        tmp_path, yaml_checkpoint, no_plugins):
    source, _fused = _loaded(yaml_checkpoint)
    assert not_cached_because(source) is None
    sloppy = tmp_path / "sloppy_plugin_q9.py"  # it has run (and could have patched anything) before it fails
    sloppy.write_text("import os\nos.environ['DETBENCH_TEST_SLOPPY'] = '1'\nimport a_module_that_is_not_there\n")
    with pytest.raises(DetbenchError, match="importing it failed"):
        loading.load_plugin(str(sloppy))
    assert "sloppy_plugin_q9.py" in not_cached_because(source)
    os.environ.pop("DETBENCH_TEST_SLOPPY", None)

    loading._foreign_code.clear()
    loading.load_checkpoint_bytes(Path(yaml_checkpoint).read_bytes(), yaml_checkpoint, unsafe=True)
    assert "loaded with --unsafe-load" in not_cached_because(source)


def test_code_on_the_pythonpath_keeps_an_export_out_of_the_cache(yaml_checkpoint, no_plugins, monkeypatch):
    source, _fused = _loaded(yaml_checkpoint)
    monkeypatch.setenv("PYTHONPATH", "/somewhere/with/a/sitecustomize")
    assert "PYTHONPATH is set" in not_cached_because(source)


def test_importing_a_runtime_quietly_leaves_the_environment_as_it_was(monkeypatch):
    """The variables that keep ONNX Runtime and OpenVINO from writing under the home folder are set only while they
    are imported: the run's children, and the user's code after an API call, do not inherit them."""
    for key in ("ORT_DISABLE_TELEMETRY", "CI"):
        monkeypatch.delenv(key, raising=False)
    with quiet_import():
        assert os.environ["ORT_DISABLE_TELEMETRY"] == "1" and os.environ["CI"] == "true"
    assert "ORT_DISABLE_TELEMETRY" not in os.environ and "CI" not in os.environ
    require(FORMATS["torchscript"])  # every runtime is imported so (torch: already imported, nothing to pay)
    assert "ORT_DISABLE_TELEMETRY" not in os.environ and "CI" not in os.environ


def test_the_api_gives_back_the_whole_environment_a_plugin_changed():
    from detbench.api import _detbench_settings

    before = dict(os.environ)
    with _detbench_settings():
        os.environ["PYTHONPATH"] = "/planted"  # what a sloppy plugin did, for detbench's children to inherit
        os.environ.pop("HOME", None)
    assert dict(os.environ) == before


def test_a_cache_entry_that_is_deep_or_has_names_that_are_not_text_is_refused_not_fatal(tmp_path):
    from detbench.backends.export import MAX_TREE_DEPTH, read_tree

    deep = tmp_path / "deep"
    os.makedirs(deep.joinpath(*["d"] * (MAX_TREE_DEPTH + 2)), mode=0o700)
    deep.chmod(0o700)
    with pytest.raises(Unusable, match="nested more than"):
        read_tree(deep, 2**20)
    odd = tmp_path / "odd"
    odd.mkdir(mode=0o700)
    os.makedirs(os.path.join(os.fsencode(odd), b"files"), mode=0o700)
    fd = os.open(os.path.join(os.fsencode(odd), b"files", b"\xff"), os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    with pytest.raises(Unusable, match="not text"):
        read_tree(odd, 2**20)
    recursion = tmp_path / "recursion"  # an entry whose record is nested past Python's recursion limit
    (recursion / "files").mkdir(parents=True)
    (recursion / "files" / "model.onnx").write_bytes(b"an export")
    (recursion / "export.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(Unusable, match="missing or not a record"):
        _stored(recursion, ONNX, 2**30)


def test_parity_takes_the_class_count_from_the_detection_head_not_the_checkpoints_attribute(yaml_checkpoint):
    from detbench.backends.deploy import head_classes

    _source, fused = _loaded(yaml_checkpoint)
    real = fused.model[-1].nc
    fused.nc = real + 3  # a checkpoint may say anything here; the head's layout decides the output
    assert head_classes(fused) == real
    assert head_classes(torch.nn.Conv2d(3, 3, 1)) is None


def test_cache_folder_given_relative_or_with_a_tilde_is_made_absolute(monkeypatch, tmp_path):
    from detbench.backends.export import CACHE_ENV, user_cache_root

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(CACHE_ENV, "relative-cache")
    assert user_cache_root() == tmp_path / "relative-cache" / "exports"
    monkeypatch.setenv(CACHE_ENV, "~/somewhere")
    assert user_cache_root() == Path.home() / "somewhere" / "exports"
