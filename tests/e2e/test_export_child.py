"""The export for --format in its bounded child process: time and memory bounds, dying with its parent, the cache
entry checks through real exports. (test_backends_cli.py runs the CLI's exports: one that writes only in its own
folder, and the CLI's one line at the time bound.)"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

import pytest
import torch

from detbench.backends.deploy import export_notes
from detbench.backends.export import Target, Unusable, _stored, export_limit, exported, not_cached_because
from detbench.backends.export_child import ExportBounds, ExportSource
from detbench.backends.formats import FORMATS
from detbench.errors import DetbenchError
from detbench.models import loading
from detbench.models.loading import file_sha256, load_model, prepare_for_inference

ONNX = FORMATS["onnx"]
# its fixture: one cached ONNX export of the session's checkpoint (imported by pytest only: the scripts below import
# this module on a path without it)
pytest_plugins = ("exported_onnx",)
# a model YAML of 0.2 KB: 3000 tiny 1x1 convolutions build and run in seconds (the bounded check passes), and
# Ultralytics' ONNX export of them runs for minutes (2000 of them: 65 s on 2 cores)
EXPORT_BOMB = """nc: 1
backbone:
  - [-1, 1, Conv, [16, 3, 2]]
  - [-1, 1, Conv, [16, 3, 2]]
  - [-1, 1, Conv, [16, 3, 2]]
  - [-1, 3000, Conv, [16, 1, 1]]
head:
  - [[3], 1, Detect, [nc]]
"""
# as slow to export (1000 convolutions: over 15 s), and loaded in a fraction of the time
SLOW_EXPORT = EXPORT_BOMB.replace("3000, Conv", "1000, Conv")
# a plugin that registers no layer of its own: through a helper module it imports, it patches Ultralytics' Conv so
# that every convolution also computes cosines (slower, and numerically the same, so parity would pass)
PATCHING_PLUGIN = """import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("conv_patch_helper", Path(__file__).with_name("conv_patch_helper.py"))
helper = importlib.util.module_from_spec(spec)
spec.loader.exec_module(helper)
helper.patch()
"""
PATCH_HELPER = """import torch
from ultralytics.nn.modules.conv import Conv


def slower(out):
    for _ in range(4):
        out = out + torch.cos(out) * 1e-30
    return out


def patch():
    forward, fused = Conv.forward, Conv.forward_fuse
    Conv.forward = lambda self, x: slower(forward(self, x))
    Conv.forward_fuse = lambda self, x: slower(fused(self, x))
"""


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


def _cosines(onnx_bytes: bytes) -> int:
    import onnx

    return sum(node.op_type == "Cos" for node in onnx.load_from_string(onnx_bytes).graph.node)


def _pythonpath() -> str:
    """This folder (a script can import this module's helpers) and the PYTHONPATH of the tests, if any."""
    return os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))


def _processes_with(token: str) -> list[int]:
    """The live processes whose environment holds `token` (the children of a test that set it)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if token.encode() in Path(f"/proc/{pid}/environ").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.mark.slow  # starts the export's child process
def test_an_export_made_with_a_plugin_that_patches_ultralytics_is_never_cached_or_reused(tmp_path, onnx_export,
                                                                                          no_plugins):
    plugin = tmp_path / "conv_patch_plugin.py"
    plugin.write_text(PATCHING_PLUGIN)
    (tmp_path / "conv_patch_helper.py").write_text(PATCH_HELPER)
    root = tmp_path / "exports"
    source, fused = onnx_export.source, onnx_export.fused
    patched = exported(ExportSource(source.weights, source.sha256, "checkpoint", (str(plugin),)), fused, ONNX,
                       Target(64, 1), root)
    assert _cosines(patched.files["model.onnx"]) > 0  # the child ran the plugin: its export is the patched model
    assert patched.cached_at is None and "code other than detbench's ran in this process (plugin" in patched.not_cached
    assert patched.record()["not_cached"] == patched.not_cached and not root.exists()  # nothing stored
    # a later run without the plugin: this process ran none of it, so its export is cached, and is the clean model
    # (as the session's export, made the same way in another cache, is)
    assert not_cached_because(source) is None
    assert onnx_export.artifact.cached_at and _cosines(onnx_export.artifact.files["model.onnx"]) == 0
    loading.load_plugin(str(plugin))  # the Python API: a plugin an earlier call loaded stays imported
    assert "conv_patch_plugin" in not_cached_because(source)


def _first_conv(torchscript_bytes: bytes) -> torch.Tensor:
    """The weights of the exported model's first convolution (3 input channels)."""
    with warnings.catch_warnings():  # torch's deprecation notice of torch.jit, as the TorchScript runtime loads it
        warnings.simplefilter("ignore", FutureWarning)
        weights = torch.jit.load(io.BytesIO(torchscript_bytes), map_location="cpu").state_dict().values()
    return next(w for w in weights if w.ndim == 4 and w.shape[1] == 3)


@pytest.mark.slow  # starts the export's child process
def test_a_model_built_from_a_yaml_is_exported_with_the_runs_own_weights(tmp_path, no_plugins):
    """Its weights are random in every process: the child is handed the run's, so the export is of the model the run
    times (an untrained model's outputs hardly depend on its weights, so parity alone could not tell)."""
    small = tmp_path / "small.yaml"
    small.write_text(EXPORT_BOMB.replace("3000, Conv", "2, Conv"))
    source, fused = _loaded(small)
    # the same for every format: TorchScript's child imports the least, and its export is the quickest
    artifact = exported(source, fused, FORMATS["torchscript"], Target(64, 1))
    assert artifact.cached_at is None and "built from a YAML" in artifact.not_cached
    exported_conv = _first_conv(artifact.files["model.torchscript"])
    assert torch.equal(exported_conv, fused.model[0].conv.weight)
    assert not torch.equal(exported_conv, _loaded(small)[1].model[0].conv.weight)  # another build's


@pytest.mark.slow  # starts the export's child process
def test_an_export_that_outlasts_its_time_bound_is_killed_with_everything_it_started(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(EXPORT_BOMB)
    source, fused = _loaded(bomb)
    token = f"detbench-test-{uuid.uuid4()}"
    monkeypatch.setenv("DETBENCH_TEST_MARK", token)
    began = time.monotonic()
    with pytest.raises(DetbenchError) as error:
        exported(source, fused, ONNX, Target(64, 1), tmp_path / "exports", ExportBounds(timeout_s=5))
    assert str(error.value) == (f"--format onnx: exporting {bomb} took more than 5 s, detbench's limit; if the model "
                                f"is genuine and large, raise --export-timeout")
    assert time.monotonic() - began < 17  # the export alone would run for minutes
    assert _processes_with(token) == []


@pytest.mark.slow  # starts the export's child process
def test_an_export_that_needs_more_memory_than_its_bound_stops_with_one_line(tmp_path, onnx_export, no_plugins):
    source, fused = onnx_export.source, onnx_export.fused
    with pytest.raises(DetbenchError) as error:
        exported(source, fused, ONNX, Target(64, 1), tmp_path / "exports", ExportBounds(memory_bytes=32 * 2**20))
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"--format onnx: exporting {source.weights}")
    assert message.endswith("raise --load-memory") and ("32 MiB" in message or "killed by signal" in message)


GREEDY = """import sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
open(sys.argv[1], "w").write(str(rss()))
hoard = [b"x" * 2**20 for _ in range(512)]  # 512 MiB, touched
input()
"""


@pytest.mark.slow  # starts a process
def test_a_gpu_export_is_bounded_by_the_resident_memory_the_parent_watches(tmp_path):
    """On a GPU the child's address space is not limited (CUDA reserves far more than it uses): the parent watches
    its resident memory from what it held when ready."""
    from detbench.backends.export_child import _wait

    ready = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", GREEDY, str(ready)], stdin=subprocess.PIPE)
    try:
        began = time.monotonic()
        assert _wait(child, 60, str(ready), 64 * 2**20) == "memory" and time.monotonic() - began < 30
    finally:
        child.kill()
        child.wait()
        child.stdin.close()


DIES_WITH_PARENT = """import sys
from pathlib import Path
from detbench.backends.export import Target, exported
from detbench.backends.export_child import ExportBounds
from detbench.backends.formats import FORMATS
from test_export_child import _loaded

source, fused = _loaded(sys.argv[1])
print("exporting", flush=True)
exported(source, fused, FORMATS["onnx"], Target(64, 1), Path(sys.argv[2]), ExportBounds(timeout_s=600))
"""


def _exporting(token: str, parent: int) -> list[int]:
    """The children of `parent` (with `token`) past their start-up, where they ask to die with their parent: they
    have loaded torch, which the export's child imports first."""
    found = []
    for pid in _processes_with(token):
        try:
            if pid != parent and "libtorch" in Path(f"/proc/{pid}/maps").read_text():
                found.append(pid)
        except OSError:
            pass
    return found


@pytest.mark.slow  # starts the export's child process
def test_an_export_dies_with_the_process_that_started_it(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(SLOW_EXPORT)
    script = tmp_path / "parent.py"
    script.write_text(DIES_WITH_PARENT)
    token = f"detbench-test-{uuid.uuid4()}"
    temp = tmp_path / "temp"  # a process killed with SIGKILL cleans nothing up: its temporary folders go here
    temp.mkdir()
    env = {**os.environ, "DETBENCH_TEST_MARK": token, "TMPDIR": str(temp), "PYTHONPATH": _pythonpath()}
    log = tmp_path / "parent.log"
    with open(log, "wb") as stderr:
        parent = subprocess.Popen([sys.executable, str(script), str(bomb), str(tmp_path / "exports")], env=env,
                                  stdout=subprocess.PIPE, stderr=stderr)
    try:
        for line in parent.stdout:  # past anything else it prints first
            if line == b"exporting\n":
                break
        else:
            pytest.fail(f"the parent ended before it exported: {log.read_text()[-2000:]}")
        deadline = time.monotonic() + 60
        while not _exporting(token, parent.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _exporting(token, parent.pid), "the export's child never started"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 20
        while _processes_with(token) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _processes_with(token) == []
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.stdout.close()


def _chown_to_nobody(path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("changing a file's owner needs root")
    os.chown(path, 65534, -1, follow_symlinks=False)


def _symlink_a_copy(path: Path) -> None:
    copy = path.with_name("copy")
    shutil.copy(path, copy)
    path.unlink()
    path.symlink_to(copy)


@pytest.mark.slow  # the entry is made by a real export
@pytest.mark.parametrize("edit, reason", [
    (lambda e: (e / "files" / "model.onnx").chmod(0o664), r"files/model\.onnx is writable by group or others"),
    (lambda e: (e / "export.json").chmod(0o606), r"export\.json is writable by group or others"),
    (lambda e: (e / "files").chmod(0o770), r"files is writable by group or others"),
    (lambda e: e.chmod(0o777), r"entry is writable by group or others"),
    (lambda e: _chown_to_nobody(e / "files" / "model.onnx"), r"files/model\.onnx is owned by another user"),
    (lambda e: _chown_to_nobody(e / "files"), r"files is owned by another user"),
    (lambda e: _symlink_a_copy(e / "files" / "model.onnx"), r"files/model\.onnx is a symlink"),
    (lambda e: (e / "files" / "more").symlink_to(e / "files", target_is_directory=True), r"files/more is a symlink"),
    (lambda e: os.mkfifo(e / "files" / "pipe"), r"files/pipe is not a regular file"),
    (lambda e: (e / "notes.txt").write_text("x"), r"holds notes\.txt, which no export writes"),
    (lambda e: (e / "files" / "model.onnx").write_bytes(b"other"), r"do not hash to the sha256"),
], ids=["file-mode", "record-mode", "folder-mode", "entry-mode", "file-owner", "folder-owner", "file-symlink",
        "folder-symlink", "fifo", "stray-file", "changed-bytes"])
def test_every_file_and_folder_of_a_cache_entry_is_checked_before_use(tmp_path, onnx_export, edit, reason):
    fused = onnx_export.fused
    copy = tmp_path / "entry"
    shutil.copytree(onnx_export.entry, copy, symlinks=True)
    assert _stored(copy, ONNX, export_limit(fused)).reused  # the copy holds, before the edit
    edit(copy)
    with pytest.raises(Unusable, match=reason):
        _stored(copy, ONNX, export_limit(fused))


@pytest.mark.slow  # the entry is replaced by a real export
def test_an_entry_that_fails_its_checks_is_not_used_and_the_run_says_so(onnx_export, no_plugins):
    """The session's export found an entry planted in its place whose file does not hash to its record (the
    parametrized test above checks each way an entry can fail the checks)."""
    artifact, entry = onnx_export.artifact, onnx_export.entry
    assert not artifact.reused and artifact.refused_entry.startswith(f"{entry}: ")
    assert "do not hash" in artifact.refused_entry
    assert any("was not used, and the model was exported afresh" in note for note in export_notes(artifact))
    assert artifact.record()["refused_cache_entry"] == artifact.refused_entry
    assert artifact.cached_at == str(entry)
    again = exported(onnx_export.source, onnx_export.fused, ONNX, Target(64, 1), onnx_export.root)
    assert again.reused and again.sha256 == artifact.sha256  # replaced by a fresh, private entry
    assert not list(onnx_export.root.glob(".export-*"))  # no work folder left behind


@pytest.mark.slow  # starts the export's child process
def test_a_checkpoints_hash_is_what_the_child_checks(tmp_path, yaml_checkpoint, no_plugins):
    """The child loads the file again: a file changed since the run hashed it is refused, not exported."""
    weights = tmp_path / "m.pt"
    shutil.copy(yaml_checkpoint, weights)
    source, fused = _loaded(weights)
    assert source.sha256 == file_sha256(str(weights))
    weights.write_bytes(weights.read_bytes() + b"\0")
    with pytest.raises(DetbenchError, match=r"the file changed while detbench was checking it"):
        # the same load for every format: TorchScript's child imports the least before it
        exported(source, fused, FORMATS["torchscript"], Target(64, 1), tmp_path / "exports")
