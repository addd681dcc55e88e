"""Checkpoint loading against hostile files in process: the pickle scan, allowed classes, model YAMLs, own
layers and plugins."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO
from hostile_checkpoints import save_with
from torch import nn

from detbench.checkpoint.pickle_scan import scan_pickle
from detbench.errors import DetbenchError
from detbench.models.loading import load_model


class MakeMarker:
    """Unpickling this calls os.mkdir(path): stands for any code a checkpoint could run."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return os.mkdir, (self.path,)


class CallClass:
    """Unpickling this calls `cls(*args)` (REDUCE), which a saved model never needs."""

    def __init__(self, cls, *args) -> None:
        self.cls, self.args = cls, args

    def __reduce__(self):
        return self.cls, self.args


def test_allowed_classes_cannot_be_called_while_loading(tmp_path, yaml_checkpoint):
    """An allowed layer class is restored with __new__ + state; calling it (REDUCE) is refused."""
    from ultralytics.nn.autobackend import AutoBackend
    from ultralytics.nn.modules.conv import Conv

    marker = tmp_path / "marker"
    inner = save_with(yaml_checkpoint, tmp_path / "inner.pt", payload=MakeMarker(marker))
    # AutoBackend(path) would load `inner.pt` with a full pickle load: refused by name before any unpickling
    chained = save_with(yaml_checkpoint, tmp_path / "chained.pt", payload=CallClass(AutoBackend, str(inner)))
    with pytest.raises(DetbenchError, match=r"refused to load: it needs ultralytics\.nn\.autobackend\.AutoBackend"):
        load_model(str(chained))
    assert not marker.exists()
    for cls, args in ((Conv, (3, 16)), (nn.Linear, (100_000, 100_000))):  # the latter: a 40 GB allocation
        called = save_with(yaml_checkpoint, tmp_path / f"{cls.__name__}.pt", payload=CallClass(cls, *args))
        with pytest.raises(DetbenchError, match=rf"would call {re.escape(cls.__module__)}\.{cls.__name__}, "
                                                r".*--unsafe-load"):
            load_model(str(called))
    hooked = save_with(yaml_checkpoint, tmp_path / "getattr.pt", payload=CallClass(getattr, nn.Module, "__init__"))
    with pytest.raises(DetbenchError, match=r"it calls builtins\.getattr with getattr of other than forward"):
        load_model(str(hooked))


def test_checkpoint_data_that_ultralytics_saves_still_loads(tmp_path, yaml_checkpoint):
    base = torch.load(yaml_checkpoint, map_location="cpu", weights_only=False)
    detect = base["model"].model[-1]
    saved = save_with(yaml_checkpoint, tmp_path / "extra.pt", bound_forward=detect.forward,
                      save_dir=Path("/runs/detect/train"), pure=Path("C:/runs"))
    loaded = load_model(str(saved))
    assert loaded.kind == "checkpoint" and not loaded.unsafe_load


def test_model_yaml_cannot_run_code(tmp_path):
    """Ultralytics eval()s `activation:` and calls whatever a layer name finds in its module; both are refused."""
    baseline = (REPO / "src" / "detbench" / "zoo" / "baseline.yaml").read_text()
    marker = tmp_path / "marker"
    evil_act = tmp_path / "act.yaml"
    evil_act.write_text(baseline + f"activation: __import__('os').mkdir('{marker}')\n")
    with pytest.raises(DetbenchError, match=r"refused: 'activation: __import__.*' is not of the form nn\.Name\("
                                            r"literal arguments\), and Ultralytics would eval\(\) it"):
        load_model(str(evil_act))
    assert not marker.exists()
    evil_layer = tmp_path / "layer.yaml"
    evil_layer.write_text(baseline.replace("[-1, 1, SPPF, [1024, 5]]", "[-1, 1, torch_safe_load, [evil.pt]]"))
    with pytest.raises(DetbenchError, match=r"refused: layer 9 names 'torch_safe_load', which is not a layer class"):
        load_model(str(evil_layer))
    fine = tmp_path / "relu.yaml"
    fine.write_text(baseline + "activation: nn.ReLU(inplace=True)\n")
    assert isinstance(load_model(str(fine)).model, nn.Module)


def test_own_layers_are_refused_by_name_and_allowed_with_plugin(tmp_path, yaml_checkpoint):
    import importlib

    plugin = tmp_path / "my_layers_x1.py"
    plugin.write_text("from torch import nn\n\n\nclass Gate(nn.Module):\n    def forward(self, x):\n"
                      "        return x\n")
    sys.path.insert(0, str(tmp_path))
    try:
        gate = importlib.import_module("my_layers_x1").Gate()
        weights = save_with(yaml_checkpoint, tmp_path / "custom.pt", extra_layer=gate)
    finally:
        sys.path.remove(str(tmp_path))
        del sys.modules["my_layers_x1"]
    with pytest.raises(DetbenchError, match=r"refused to load: it needs my_layers_x1\.Gate, not on detbench's "
                                            r"allow-list; pass --plugin MODULE for your own layers"):
        load_model(str(weights))
    loaded = load_model(str(weights), plugins=[str(plugin)])
    assert loaded.kind == "checkpoint" and not loaded.unsafe_load


def test_pickle_scan_follows_memo_and_names_calls():
    import pickle
    import pickletools

    from detbench.checkpoint.pickle_scan import ScanError

    payload = pickle.dumps([CallClass(nn.Linear, 1, 1), CallClass(nn.Linear, 2, 2)], protocol=2)
    ops = [op.name for op, _, _ in pickletools.genops(payload)]
    assert ops.count("GLOBAL") == 1 and ops.count("REDUCE") == 2  # the second call reaches Linear via the memo
    scan = scan_pickle(payload)
    assert scan.globals_named == {"torch.nn.modules.linear.Linear"}
    assert [call.callee.value for call in scan.calls] == ["torch.nn.modules.linear.Linear"] * 2
    assert scan.calls[0].callee is scan.calls[1].callee  # one global node, fetched from the memo
    with pytest.raises(ScanError):
        scan_pickle(payload[: len(payload) // 2])


def test_plugin_that_fails_to_import_is_one_line(tmp_path):
    plugin = tmp_path / "broken_layers.py"
    plugin.write_text("raise RuntimeError('boom\\nsecond line')\n")
    with pytest.raises(DetbenchError, match=r"^--plugin .*broken_layers\.py: importing it failed \(RuntimeError: "
                                            r"boom\); fix the file$"):
        load_model("yolov8n.yaml", plugins=[str(plugin)])


def test_scan_of_a_real_checkpoint_finds_only_allowed_calls(yaml_checkpoint):
    from detbench.checkpoint.archive import read_archive
    from detbench.checkpoint.policy import SCHEMAS, judge

    archive = read_archive(yaml_checkpoint.read_bytes())
    scan = scan_pickle(archive.pickle)
    called = {call.callee.value for call in scan.calls}
    assert called and called <= set(SCHEMAS), called
    verdict = judge(scan, archive)
    assert verdict.view_bytes == verdict.storage_bytes > 6_000_000 and verdict.tensors > 300
