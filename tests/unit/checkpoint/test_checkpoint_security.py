"""Hostile checkpoints and model files: each class of attack is refused with one line, in bounded time and memory.

Runs of the CLI on hostile files happen in a subprocess with a wall-clock limit and an
address-space limit (`bounded_cli`); a hang or a runaway allocation fails the test instead
of the machine. For the payloads that run code, the same file is also loaded the unsafe
way (`--unsafe-load`, or torch's own restricted loader with the old allow-list), and the
payload does run: what stops it by default is detbench's refusal, nothing else.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hostile_checkpoints import (
    MakeMarker,
    Reduce,
    checkpoint_archive,
    from_type_payload,
    inflating_record,
    list_dag,
    mark_list_bomb,
    nested_tuple_key,
    save_model_edit,
    save_with,
    shared_module_dag,
    strided_view,
    upsampling_bomb,
)
from torch import nn

from detbench.errors import DetbenchError
from detbench.models.loading import load_model, precheck_model

REPO = Path(__file__).resolve().parents[3]
QUICK = ["--device", "cpu", "--imgsz", "64", "--warmup", "1", "--iters", "2", "--threads", "1",
         "--benchmark_size", "4"]
MEMORY_LIMIT = 10 * 2**30  # address space of the CLI process: torch's import alone maps about 3.4 GB
TIME_LIMIT = 120


def bounded_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """`python -m detbench.cli ARGS` with a wall-clock and an address-space limit; (result, seconds)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "detbench.cli", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=TIME_LIMIT, preexec_fn=limit, env={**os.environ, **(env or {})})
    return result, time.monotonic() - start


def refused_by_cli(weights: Path, tmp_path: Path, pattern: str, *extra: str, env: dict[str, str] | None = None,
                   seconds: float = 45) -> str:
    """The CLI ends with exit 2, exactly one `error:` line matching `pattern`, no traceback, no output folder."""
    out = tmp_path / "out"
    result, elapsed = bounded_cli("bench", "--weights", str(weights), *QUICK, "--out", str(out), *extra,
                                  cwd=tmp_path, env=env)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert re.search(pattern, lines[0]), lines[0]
    assert elapsed < seconds, f"took {elapsed:.1f} s"
    assert not out.exists()
    return lines[0]


def refused(weights: Path, pattern: str, plugins: tuple[str, ...] = ()) -> str:
    """In-process: the static checks refuse it, and so does a full (checked) load."""
    with pytest.raises(DetbenchError) as first:
        precheck_model(str(weights), plugins)
    with pytest.raises(DetbenchError) as second:
        load_model(str(weights), plugins=list(plugins))
    for info in (first, second):
        assert "\n" not in str(info.value) and re.search(pattern, str(info.value)), str(info.value)
    return str(first.value)


# ---------------------------------------------------------------- classes are restored, never called

@pytest.mark.slow
def test_allowed_class_passed_to_a_rebuild_helper_runs_nothing(tmp_path, yaml_checkpoint):
    """`_rebuild_from_type_v2(DetectionModel, ...)` calls DetectionModel(cfg), which eval()s the cfg."""
    marker = tmp_path / "marker"
    evil = save_with(yaml_checkpoint, tmp_path / "evil.pt", payload=from_type_payload(marker))
    line = refused_by_cli(evil, tmp_path, r"refused to load: it calls torch\._tensor\._rebuild_from_type_v2 with "
                                          r"ultralytics\.nn\.tasks\.DetectionModel as the function it calls",
                          env={"ULTRALYTICS_SAFE_LOAD": "0"})
    assert "--unsafe-load only if you trust the file" in line
    assert not marker.exists()


@pytest.mark.slow
def test_the_payload_is_live_without_detbench_refusing_it(tmp_path, yaml_checkpoint):
    """Fault injection: torch's restricted loader with a class allow-list, or --unsafe-load, runs the payload."""
    marker_torch, marker_cli = tmp_path / "marker-torch", tmp_path / "marker-cli"
    evil = tmp_path / "evil.pt"
    torch.save({"payload": from_type_payload(marker_torch)}, evil)  # needs no global but DetectionModel
    code = ("import torch, sys\nfrom ultralytics.nn.tasks import DetectionModel\n"
            "with torch.serialization.safe_globals([DetectionModel]):\n"
            "    try: torch.load(sys.argv[1], weights_only=True)\n    except Exception: pass\n")
    env = {**os.environ, "ULTRALYTICS_SAFE_LOAD": "0", "YOLO_OFFLINE": "1"}
    subprocess.run([sys.executable, "-c", code, str(evil)], env=env, capture_output=True, timeout=120, check=True)
    assert marker_torch.is_dir()  # weights_only=True plus an allowed class is not enough on its own

    trusted = save_with(yaml_checkpoint, tmp_path / "trusted.pt", payload=from_type_payload(marker_cli))
    bounded_cli("bench", "--weights", str(trusted), *QUICK, "--out", str(tmp_path / "out"), "--unsafe-load",
                cwd=tmp_path, env={"ULTRALYTICS_SAFE_LOAD": "0"})
    assert marker_cli.is_dir()


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


# ---------------------------------------------------------------- the model is what its layers say

def _other_forward(model: nn.Module) -> None:
    from ultralytics.nn.tasks import DetectionModel

    other = DetectionModel("yolov8s.yaml", verbose=False)
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


# ---------------------------------------------------------------- bounded in time and memory

@pytest.mark.slow
@pytest.mark.parametrize("build, pattern", [
    (lambda base, path: mark_list_bomb(base, path),
     r"refused to load: (more than 1,000,000 pickle opcodes|opcode LIST)"),
    (lambda base, path: checkpoint_archive(base, nested_tuple_key(64), path),
     r"refused to load: its objects expand to more than 5,000,000"),
    (lambda base, path: save_with(base, path, model=shared_module_dag(48)),
     r"refused to load: its objects expand to more than"),
    (lambda base, path: save_with(base, path, train_args={"data": list_dag(133)}),
     r"refused to load: its objects expand to more than"),
    (lambda base, path: save_with(base, path, payload=strided_view()),
     r"a tensor view of 1,073,741,824 elements .* over a storage of 1"),
    (lambda base, path: inflating_record(base, path),
     r"refused to load: its entries inflate to \d+ MiB from a \d+\.\d MiB file"),
], ids=["mark-list", "tuple-key", "module-dag", "data-list", "strided-view", "inflating-zip"])
def test_hostile_checkpoints_end_in_seconds(tmp_path, yaml_checkpoint, build, pattern):
    weights = build(yaml_checkpoint, tmp_path / "hostile.pt")
    refused_by_cli(weights, tmp_path, pattern, seconds=30)


@pytest.mark.slow
def test_huge_pickle_is_refused_before_inflating(tmp_path, yaml_checkpoint):
    """A 600 KiB deflated pickle that inflates to 600 MB is refused from the declared size."""
    weights = checkpoint_archive(yaml_checkpoint, b"\x80\x02]" + b"]a" * (300 * 2**20) + b".",
                                 tmp_path / "big.pt", deflate=True)
    assert weights.stat().st_size < 2 * 2**20
    refused(weights, r"(its entries inflate to 600 MiB from a 0\.6 MiB file|its pickle is 600\.0 MiB)")


@pytest.mark.slow
def test_model_that_explodes_when_run_is_stopped_by_the_memory_bound(tmp_path, yaml_checkpoint, dataset):
    """Passes every static check, then needs gigabytes in one forward pass: the bounded child stops it."""
    bomb = save_model_edit(yaml_checkpoint, tmp_path / "upsample.pt", upsampling_bomb)
    precheck_model(str(bomb))  # nothing static to object to
    refused_by_cli(bomb, tmp_path, r"(needs more than detbench's limit of 1\.0 GiB|fails to load and run once)",
                   "--data", str(dataset), "--imgsz", "320", "--load-memory", "1024", seconds=60)


@pytest.mark.slow
def test_model_that_takes_forever_to_build_is_stopped_by_the_time_bound(tmp_path, dataset):
    spec = (REPO / "src" / "detbench" / "zoo" / "baseline.yaml").read_text()
    slow = tmp_path / "slow.yaml"
    slow.write_text(spec.replace("[-1, 1, SPPF, [1024, 5]]", "[-1, 200000, Conv, [1024, 3, 1]]", 1))
    refused_by_cli(slow, tmp_path, r"loading and checking the model took more than 8 s, detbench's limit; .*"
                                   r"--load-timeout", "--data", str(dataset), "--load-timeout", "8", seconds=40)


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


@pytest.mark.slow
def test_a_run_that_would_outlast_its_time_budget_is_refused_before_it_starts(tmp_path, yaml_checkpoint, dataset):
    refused_by_cli(yaml_checkpoint, tmp_path, r"one forward pass took [\d.e-]+ s, so 1000001 of them at --batch 1 need "
                                              r"at least \d+ min, beyond --time-budget 1 s",
                   "--data", str(dataset), "--iters", "1000000", "--time-budget", "1")


def test_checkpoint_archive_declaring_millions_of_entries_is_refused_from_its_end_record(tmp_path):
    from detbench.checkpoint.archive import ArchiveError, check_central_directory

    end = b"PK\x05\x06" + bytes(6) + (65535).to_bytes(2, "little") + (470 * 2**20).to_bytes(4, "little") + bytes(6)
    with pytest.raises(ArchiveError, match=r"declares 65,535 entries in a 470\.0 MiB directory"):
        check_central_directory(b"x" * 100 + end)
