"""Hostile checkpoints and model files, in process: each class of attack is refused with one line by the static
checks and by a full load (the command lines, bounded in time and memory: tests/e2e/test_checkpoint_security_cli.py).
For the payloads that run code, the same file is also loaded the unsafe way (`unsafe_load=True`), and the payload
does run: what stops it by default is detbench's refusal, nothing else.
"""

from __future__ import annotations

import sys
import time

import pytest
import torch
from hostile_checkpoints import (
    MakeMarker,
    Reduce,
    refused,
    save_model_edit,
    save_with,
)
from torch import nn

from detbench.errors import DetbenchError
from detbench.models.loading import load_model


@pytest.mark.parametrize("name, payload, pattern", [
    ("wrapper", lambda: Reduce(torch._utils._rebuild_wrapper_subclass, nn.Linear, torch.float32, (1,), (1,), 0,
                               torch.strided, torch.device("cpu"), False),
     r"would call torch\.(_utils\._rebuild_wrapper_subclass|serialization\._get_layout), which a saved model never "
     r"needs"),
    ("with_state", lambda: Reduce(torch._utils._rebuild_parameter_with_state, torch.zeros(1), False, {}, {}),
     r"would call torch\._utils\._rebuild_parameter_with_state"),
    ("class_value", lambda: nn.Linear, r"passes torch\.nn\.modules\.linear\.Linear as a value"),
    ("class_in_set", lambda: Reduce(set, [nn.Linear]), r"builtins\.set with a set of other than plain literals"),
    ("ordered_dict_of_object", lambda: Reduce(__import__("collections").OrderedDict, nn.ReLU()),
     r"collections\.OrderedDict with arguments where none are expected"),
    ("getattr_init", lambda: Reduce(getattr, nn.Module, "__init__"),
     r"builtins\.getattr with getattr of other than forward/forward_fuse"),
    ("called_layer", lambda: Reduce(nn.Linear, 100_000, 100_000), r"would call torch\.nn\.modules\.linear\.Linear"),
    ("lstm", lambda: nn.LSTM(2, 2), r"restoring it would run code: LSTM has its own __setstate__"),
    ("device_tensor", lambda: Reduce(torch._utils._rebuild_device_tensor_from_numpy, None, torch.float32, "cpu",
                                     False), r"would call torch\._utils\._rebuild_device_tensor_from_numpy"),
])
def test_variants_of_calling_what_a_callable_is_given(tmp_path, yaml_checkpoint, name, payload, pattern):
    weights = save_with(yaml_checkpoint, tmp_path / f"{name}.pt", payload=payload())
    refused(weights, pattern)


def test_audited_setstate_gets_integers_only(tmp_path, yaml_checkpoint):
    """AAttn's __setstate__ multiplies head_dim by num_heads: 'x' * 10**12 would be a 1 TB string."""
    from ultralytics.nn.modules.block import AAttn

    attention = AAttn(64, 2)
    del attention.__dict__["all_head_dim"]
    attention.head_dim, attention.num_heads = "x", 10**12
    weights = save_with(yaml_checkpoint, tmp_path / "aattn.pt", payload=attention)
    refused(weights, r"gives ultralytics\.nn\.modules\.block\.AAttn a non-integer 'head_dim'")


EVIL_LAYERS = '''
import os
from pathlib import Path
from torch import nn

MARKER = Path(os.environ.get("EVIL_MARKER", "/nonexistent"))


class StateLayer(nn.Module):
    def __setstate__(self, state):
        MARKER.mkdir(exist_ok=True)
        super().__setstate__(state)


class InitLayer(nn.Module):
    def __init__(self, marker=None):
        super().__init__()
        if marker:
            Path(marker).mkdir(exist_ok=True)
'''


@pytest.fixture
def evil_plugin(tmp_path, monkeypatch):
    """A plugin module whose layers have side effects in __setstate__ / __init__."""
    import importlib

    path = tmp_path / "evil_layers_q7.py"
    path.write_text(EVIL_LAYERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("evil_layers_q7")
    yield path, module
    sys.modules.pop("evil_layers_q7", None)


def test_plugin_layers_with_side_effects_are_refused_and_run_only_unsafe(tmp_path, yaml_checkpoint, evil_plugin,
                                                                         monkeypatch):
    plugin, module = evil_plugin
    marker = tmp_path / "marker"
    monkeypatch.setenv("EVIL_MARKER", str(marker))
    state = save_with(yaml_checkpoint, tmp_path / "state.pt", payload=module.StateLayer())
    init = save_with(yaml_checkpoint, tmp_path / "init.pt", payload=Reduce(module.InitLayer, str(marker)))
    sys.modules.pop("evil_layers_q7")  # --plugin imports the file under its own name, as a user's run would
    refused(state, r"StateLayer has its own __setstate__", plugins=(str(plugin),))
    refused(init, r"would call evil_layers_q7\.InitLayer", plugins=(str(plugin),))
    assert not marker.exists()
    load_model(str(state), unsafe_load=True, plugins=[str(plugin)])
    assert marker.is_dir()  # the same file, loaded the unsafe way, runs __setstate__
    marker.rmdir()
    load_model(str(init), unsafe_load=True, plugins=[str(plugin)])
    assert marker.is_dir()  # and calls the class


def test_plain_payload_runs_only_with_unsafe_load(tmp_path, yaml_checkpoint):
    marker = tmp_path / "marker"
    weights = save_with(yaml_checkpoint, tmp_path / "mkdir.pt", payload=MakeMarker(marker))
    refused(weights, r"it needs posix\.mkdir, not on detbench's allow-list; pass --plugin MODULE")
    assert not marker.exists()
    load_model(str(weights), unsafe_load=True)
    assert marker.is_dir()


def _other_forward(model: nn.Module) -> None:
    from ultralytics.nn.tasks import DetectionModel

    other = DetectionModel("yolov8n.yaml", verbose=False)
    model.__dict__["forward"] = other.forward


@pytest.mark.parametrize("edit, pattern", [
    (_other_forward, r"attribute 'forward' is a method of another object"),
    (lambda m: m.__dict__.__setitem__("fuse", type(m.model[-1]).forward),
     r"attribute 'fuse' replaces the DetectionModel method of that name"),
    (lambda m: m.model[-1].register_forward_hook(type(m.model[-1]).forward), r"carries _forward_hooks"),
    (lambda m: m.model.__setitem__(5, m.model[3]), r"shared by two parents"),
    (lambda m: m.__dict__.__setitem__("hidden", nn.Linear(2, 2)), r"holds the layer 'hidden' outside the module tree"),
    (lambda m: setattr(m, "stride", torch.tensor([10.0**9])), r"stride .* is not an integer between 1 and 256"),
])
def test_borrowed_behaviour_and_shared_layers_are_refused(tmp_path, yaml_checkpoint, edit, pattern):
    weights = save_model_edit(yaml_checkpoint, tmp_path / "edited.pt", edit)
    with pytest.raises(DetbenchError, match=pattern):
        load_model(str(weights))


def test_genuine_fused_checkpoint_with_shared_activations_loads(tmp_path, yaml_checkpoint):
    """Ultralytics shares one SiLU among its Conv layers and fuses `forward = forward_fuse`: both are fine."""
    weights = save_model_edit(yaml_checkpoint, tmp_path / "fused.pt", lambda m: m.fuse(verbose=False))
    loaded = load_model(str(weights))
    assert sum(1 for _ in loaded.model.modules()) > 100


BILLION_LAUGHS = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else ', '.join(['x'] * 9)}]\n"
                         for i in range(9))


def test_yaml_alias_bombs_are_refused_before_anything_walks_them(tmp_path):
    """9 levels of 9 aliases: 387 million values once expanded (e.g. by str() in an error message)."""
    from detbench.data.datasets import find_val_images

    model = tmp_path / "bomb.yaml"
    model.write_text(BILLION_LAUGHS + "activation: *l8\nnc: 1\nbackbone: [[-1, 1, Conv, [16, 3, 2]]]\n"
                                      "head: [[-1, 1, Detect, [nc]]]\n")
    start = time.monotonic()
    refused(model, r"its aliases expand it beyond 100,000 values \(a YAML bomb\)")
    data = tmp_path / "data.yaml"
    data.write_text(BILLION_LAUGHS + "val: *l8\n")
    with pytest.raises(DetbenchError, match=r"--data .*data\.yaml: its aliases expand it beyond 100,000 values"):
        find_val_images(data)
    assert time.monotonic() - start < 20


def _hide_a_bigger_network(model: nn.Module) -> None:
    """A plain list of layers under the name the forward pass iterates, shadowing the registered Sequential."""
    layers = list(model.model)
    layers[9] = nn.Sequential(layers[9], *(nn.Conv2d(256, 256, 3, padding=1) for _ in range(2)))
    model.__dict__["model"] = layers


@pytest.mark.parametrize("edit, pattern", [
    (_hide_a_bigger_network, r"attribute 'model' hides the registered layer or tensor of that name"),
    (lambda m: m.model[2].__dict__.__setitem__("extra", [nn.Identity()] * 3),
     r"attribute 'extra' holds layers or functions outside the module tree"),
])
def test_layers_hidden_from_the_checks_and_the_counts_are_refused(tmp_path, yaml_checkpoint, edit, pattern):
    weights = save_model_edit(yaml_checkpoint, tmp_path / "hidden.pt", edit)
    with pytest.raises(DetbenchError, match=pattern):
        load_model(str(weights))


def test_yaml_layer_that_downloads_weights_is_refused(tmp_path):
    spec = tmp_path / "tv.yaml"
    spec.write_text("nc: 1\nbackbone:\n  - [-1, 1, TorchVision, [576, mobilenet_v3_small, DEFAULT, True, 1, False]]\n"
                    "head:\n  - [-1, 1, Detect, [nc]]\n")
    refused(spec, r"layer 0 is TorchVision, which downloads weights from the network")


def test_numpy_dtype_state_must_be_a_plain_one(tmp_path, yaml_checkpoint):
    import numpy as np

    class OddDtype:
        def __reduce__(self):
            return np.dtype, ("f8", False, True), (3, "<", None, None, None, -1, -1, 4)

    weights = save_with(yaml_checkpoint, tmp_path / "dtype.pt", payload=OddDtype())
    refused(weights, r"gives numpy\.dtype a state other than a plain numeric dtype's")


def test_checkpoint_archive_declaring_millions_of_entries_is_refused_from_its_end_record(tmp_path):
    from detbench.checkpoint.archive import ArchiveError, check_central_directory

    end = b"PK\x05\x06" + bytes(6) + (65535).to_bytes(2, "little") + (470 * 2**20).to_bytes(4, "little") + bytes(6)
    with pytest.raises(ArchiveError, match=r"declares 65,535 entries in a 470\.0 MiB directory"):
        check_central_directory(b"x" * 100 + end)
