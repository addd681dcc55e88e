"""Hostile inputs: each gives one line naming the file or flag and the fix, a non-zero exit, and writes nothing.

Checkpoints are real ones (saved from yolov8n.yaml) with payloads added; a payload
only ever makes a marker folder, so a failing test does no harm.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from cli_batch import run_cli_batch
from hostile_checkpoints import save_with
from torch import nn

from detbench.checkpoint.model_check import KnownCheck
from detbench.config import BenchConfig
from detbench.data.benchmark_list import read_list
from detbench.data.synthetic import make_dataset
from detbench.errors import DetbenchError
from detbench.report.schema import load_report
from detbench.workflows.bench import run_bench

QUICK = {"device": "cpu", "imgsz": 64, "warmup": 1, "iters": 2, "threads": 1, "benchmark_size": 10}
CLI_QUICK = ["--device", "cpu", "--imgsz", "64", "--warmup", "1", "--iters", "2", "--threads", "1",
             "--benchmark_size", "10"]


def snapshot(folder: Path) -> dict[str, tuple[int, int]] | None:
    """Every file and folder under `folder` with its mtime and size; None if it does not exist."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.rglob("*"))}


# the bounded check of a checkpoint's bytes, made once and reused by the later runs of the same bytes (as a study's
# workers do): the runs here are about lists and files, not the check
KNOWN = KnownCheck()


def bench(out: Path, **settings):
    cfg = BenchConfig(**{**QUICK, "out": str(out), **settings})
    return run_bench(cfg, echo=lambda line: None, argv=["detbench", "bench"], known=KNOWN)


def fails_cleanly(out: Path, pattern: str, **settings) -> str:
    """Run a benchmark in-process that must fail: one-line DetbenchError matching `pattern`, `out` untouched."""
    before = snapshot(out)
    with pytest.raises(DetbenchError) as info:
        bench(out, **settings)
    message = str(info.value)
    assert "\n" not in message and re.search(pattern, message), message
    assert snapshot(out) == before
    return message


def spawn(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "detbench.cli", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen, timeout: int = 300) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stdout, stderr


def error_line(stderr: str) -> str:
    """The CLI's error: exactly one line on stderr that starts with `error: `."""
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return lines[0]


class MakeMarker:
    """Unpickling this calls os.mkdir(path): stands for any code a checkpoint could run."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return os.mkdir, (self.path,)


def onnx_like_bytes() -> bytes:
    """A minimal ONNX ModelProto (protobuf) as torch.onnx.export begins one; the onnx package is not installed."""

    def field(number: int, payload: bytes | int) -> bytes:
        if isinstance(payload, int):
            return bytes([number << 3 | 0, payload])
        return bytes([number << 3 | 2, len(payload)]) + payload

    node = field(1, b"images") + field(2, b"/model.0/conv/Conv_output_0") + field(3, b"/model.0/conv/Conv") \
        + field(4, b"Conv")
    graph = field(1, node) + field(2, b"main_graph")
    return field(1, 8) + field(2, b"pytorch") + field(3, b"2.14.1") + field(7, graph) + field(8, field(2, 17))


def fresh_dataset(tmp_path: Path, n_val: int = 6, seed: int = 3) -> Path:
    return make_dataset(tmp_path / "data", n_train=0, n_val=n_val, seed=seed)


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory, yaml_checkpoint, dataset) -> dict[str, tuple[Path, Any]]:
    """Command lines, each in a folder of its own, run in one child (torch imported once): name -> (its folder,
    its outcome). All but the trusted checkpoint's end with an error before any model is loaded."""
    folders = {name: tmp_path_factory.mktemp(name) for name in ("evil", "trusted", "image", "escapes")}
    evil, trusted = folders["evil"], folders["trusted"]
    refused_weights = save_with(yaml_checkpoint, evil / "evil.pt", payload=MakeMarker(evil / "marker-refused"))
    trusted_weights = save_with(yaml_checkpoint, trusted / "trusted.pt", payload=MakeMarker(trusted / "marker"))
    image = next((dataset.parent / "images" / "val").glob("*.jpg"))
    renamed = folders["image"] / "model.pt"
    renamed.write_bytes(image.read_bytes())
    cases = {"evil": ["bench", "--weights", refused_weights, *CLI_QUICK, "--out", evil / "refused"],
             "trusted": ["bench", "--weights", trusted_weights, *CLI_QUICK, "--out", trusted / "out", "--unsafe-load"],
             "image": ["bench", "--weights", renamed, *CLI_QUICK, "--data", dataset],
             "escapes": ["bench", "--weights", "evil\x1b[2J\x1b[31m.pt", "--device", "cpu"]}
    outcomes = run_cli_batch({name: (args, folders[name]) for name, args in cases.items()},
                             tmp_path_factory.mktemp("batch"))
    return {name: (folders[name], outcomes[name]) for name in cases}


@pytest.mark.slow
def test_crafted_checkpoint_runs_no_code_by_default_and_loads_with_unsafe_load(cli_runs):
    folder, refused = cli_runs["evil"]
    evil, refused_marker, refused_out = folder / "evil.pt", folder / "marker-refused", folder / "refused"
    folder, trusted = cli_runs["trusted"]
    trusted_marker, trusted_out = folder / "marker", folder / "out"
    trusted_code, trusted_stdout, trusted_stderr = trusted.returncode, trusted.stdout, trusted.stderr

    assert refused.returncode == 2
    line = error_line(refused.stderr)
    assert line == (f"error: --weights {evil}: refused to load: it needs posix.mkdir, not on detbench's allow-list; "
                    f"pass --plugin MODULE for your own layers, or --unsafe-load if you trust the file (runs its code)")
    assert not refused_marker.exists() and not refused_out.exists()

    assert trusted_code == 0, trusted_stderr
    assert trusted_marker.is_dir()  # the full pickle load ran the payload, as the flag says it will
    report = load_report(trusted_out / "trusted.json").to_dict()
    assert report["status"] == "ok" and report["metadata"]["unsafe_load"] is True
    assert any("--unsafe-load" in note for note in report["notes"])
    assert "warning: checkpoint loaded with --unsafe-load" in trusted_stdout


def _torchscript(path: Path, traced: bool) -> Path:
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    scripted = torch.jit.trace(module, torch.zeros(1, 3, 8, 8)) if traced else torch.jit.script(module)
    torch.jit.save(scripted, str(path))
    return path


def _legacy(path: Path, base: Path) -> Path:
    torch.save(torch.load(base, map_location="cpu", weights_only=False), path, _use_new_zipfile_serialization=False)
    return path


WEIGHT_CASES = {
    "missing": r"file not found; pass the \.pt checkpoint file itself",
    "folder": r"is a folder; pass the \.pt file inside it",
    "empty": r"the file is empty",
    "truncated_half": r"zip archive is truncated or damaged",
    "truncated_head": r"zip archive is truncated or damaged",
    "zip_not_torch": r"a zip archive but not a PyTorch checkpoint",
    "random_bytes": r"truncated, damaged or not a PyTorch checkpoint",
    "torchscript_scripted": r"TorchScript archive \(torch\.jit\.save\), not an Ultralytics \.pt checkpoint; pass the",
    "torchscript_traced": r"TorchScript archive",
    "onnx_as_pt": r"looks like an ONNX model",
    "legacy_format": r"legacy \(pre-1\.6, non-zip\) torch\.save format.*--unsafe-load",
    "state_dict_only": r"no model inside \(keys: w\)",
    "tensor": r"holds a Tensor, not an Ultralytics checkpoint",
    "onnx_suffix": r"an exported model, not a checkpoint; pass the \.pt it was exported from with --format onnx",
    "device_file": r"is a device, not a regular file",
}


def make_weights(case: str, folder: Path, base: Path) -> Path:
    """The file for one WEIGHT_CASES entry, made from the real checkpoint `base` where it needs one."""
    path = folder / f"{case}.pt"
    data = base.read_bytes()
    if case == "folder":
        path.mkdir()
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "truncated_half":
        path.write_bytes(data[: len(data) // 2])
    elif case == "truncated_head":
        path.write_bytes(data[:100])
    elif case == "zip_not_torch":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("readme.txt", "not a model")
    elif case == "random_bytes":
        path.write_bytes(os.urandom(4096))
    elif case.startswith("torchscript"):
        _torchscript(path, traced=case.endswith("traced"))
    elif case == "onnx_as_pt":
        path.write_bytes(onnx_like_bytes())
    elif case == "onnx_suffix":
        path = path.with_suffix(".onnx")
        path.write_bytes(onnx_like_bytes())
    elif case == "legacy_format":
        _legacy(path, base)
    elif case == "state_dict_only":
        torch.save({"w": torch.zeros(2)}, path)
    elif case == "tensor":
        torch.save(torch.zeros(2), path)
    elif case == "device_file":
        path.symlink_to("/dev/zero")  # endless: reading it whole would never finish
    return path


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(WEIGHT_CASES))
def test_unusable_weights_fail_cleanly(case, tmp_path, yaml_checkpoint, dataset):
    weights = make_weights(case, tmp_path, yaml_checkpoint)
    message = fails_cleanly(tmp_path / "results", WEIGHT_CASES[case], weights=str(weights), data=str(dataset))
    assert message.startswith(f"--weights {weights}")


@pytest.mark.slow
def test_image_renamed_pt_fails_cleanly_in_the_cli(cli_runs):
    folder, result = cli_runs["image"]
    renamed = folder / "model.pt"
    assert result.returncode == 2
    assert error_line(result.stderr) == (f"error: --weights {renamed}: cannot load: it is an image, not a "
                                         f"checkpoint; pass the model's .pt checkpoint")
    assert not (folder / "results").exists()


@pytest.mark.slow
def test_data_yaml_problems_fail_cleanly(tmp_path, yaml_checkpoint):
    out = tmp_path / "results"
    run = {"weights": str(yaml_checkpoint)}
    (tmp_path / "empty_val").mkdir()
    cases = {
        "missing.yaml": (None, r"--data .*missing\.yaml: file not found"),
        "broken.yaml": ("path: [unclosed\nval: : :\n", r"--data .*broken\.yaml: not valid YAML \(.*\); fix the file"),
        "list.yaml": ("- a\n- b\n", r"expected a mapping with a 'val' entry, got list"),
        "noval.yaml": ("train: images/train\n", r"no 'val' entry; add the validation split"),
        "emptyval.yaml": (f"path: {tmp_path}\nval: empty_val\n", r"the val split \(empty_val\) holds no images"),
        "goneval.yaml": (f"path: {tmp_path}\nval: gone\n", r"val entry .*gone does not exist"),
        "numval.yaml": ("val: 3\n", r"'val' must be a folder, a \.txt list or a list of them"),
        "bomb.yaml": ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                      "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nval: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
                      r"'val' must be a folder, a \.txt list or a list of them"),
        "binary.yaml": (b"\xff\xfe\x00\x01", r"not valid YAML"),
    }
    for name, (content, pattern) in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content)
        message = fails_cleanly(out, pattern, data=str(path), **run)
        assert message.startswith(f"--data {path}")


@pytest.mark.slow
def test_undecodable_image_in_val_split_writes_no_list(tmp_path, yaml_checkpoint):
    data = fresh_dataset(tmp_path)
    images = sorted((data.parent / "images" / "val").glob("*.jpg"))
    images[2].write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    images[4].write_bytes(b"")
    fails_cleanly(tmp_path / "results", r"benchmark list: 2 not decodable of 6 images \(first: .*\); restore them",
                  weights=str(yaml_checkpoint), data=str(data))


@pytest.mark.slow
def test_listed_images_missing_are_named_and_counted(tmp_path, yaml_checkpoint):
    data = fresh_dataset(tmp_path)
    out = tmp_path / "results"
    bench(out, weights=str(yaml_checkpoint), data=str(data), name="first")
    listed = read_list(out / "benchmark_list.txt").paths
    Path(listed[1]).unlink()
    Path(listed[3]).unlink()
    message = fails_cleanly(out, r"benchmark list: 2 missing of 6 images \(first: .*\); restore them, or delete "
                                 r"the list", weights=str(yaml_checkpoint), data=str(data), use_benchmark_list=True)
    assert listed[1] in message


@pytest.mark.slow
def test_existing_list_from_other_data_seed_or_size_is_kept(tmp_path, yaml_checkpoint, dataset):
    data = fresh_dataset(tmp_path)
    other = make_dataset(tmp_path / "other", n_train=0, n_val=7, seed=4)
    same_names = fresh_dataset(tmp_path / "copy")  # the same file names, in another folder
    out = tmp_path / "results"
    bench(out, weights=str(yaml_checkpoint), data=str(data), name="first")
    refused = r"benchmark_list\.txt was made from other data, seed or size .*--use_benchmark_list"
    fails_cleanly(out, refused, weights=str(yaml_checkpoint), data=str(data), seed=7)  # the whole run, once
    from detbench.data.benchmark_list import obtain_list

    listed = (out / "benchmark_list.txt").read_bytes()
    for data_yaml, size, seed in ((data, 5, 42), (other, 200, 42), (same_names, 200, 42)):
        with pytest.raises(DetbenchError, match=refused):
            obtain_list(out / "benchmark_list.txt", data_yaml, size, seed, use_existing=False)
    assert (out / "benchmark_list.txt").read_bytes() == listed


@pytest.mark.slow
def test_incomplete_list_file_is_refused(tmp_path, dataset):
    from detbench.data.benchmark_list import obtain_list

    path = tmp_path / "benchmark_list.txt"
    obtain_list(path, dataset, 20, 42, use_existing=False)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-5]) + "\n" + lines[-5][: len(lines[-5]) // 2])  # a half-written tail
    edited = r"does not match its sidecar benchmark_list\.txt\.json \(the list was edited after it was made\); delete "
    with pytest.raises(DetbenchError, match=edited + r"benchmark_list\.txt and benchmark_list\.txt\.json"):
        read_list(path)


@pytest.mark.slow
def test_flag_errors_from_the_cli_write_nothing(tmp_path, capsys):
    from detbench.cli import main

    runs = [spawn("bench", "--weights", "yolov8n.yaml", *args, "--out", str(tmp_path / "results"), cwd=tmp_path)
            for args in (["--benchmark_size", "0"], ["--iters", "-3"])]
    lines = [error_line(finish(run)[2]) for run in runs]
    assert [run.returncode for run in runs] == [2, 2]
    assert lines == ["error: --benchmark_size must be between 1 and 1000000, got 0",
                     "error: --iters must be between 1 and 1000000, got -3"]
    device = "cuda:99" if torch.cuda.is_available() else "0"
    assert main(["bench", "--weights", "yolov8n.yaml", "--device", device, "--out", str(tmp_path / "results")]) == 2
    assert error_line(capsys.readouterr().err).startswith(f"error: --device {device}")
    assert not (tmp_path / "results").exists()


@pytest.fixture(scope="module")
def real_reports(tmp_path_factory, yaml_checkpoint) -> Path:
    """Two real reports (baseline, other: the same run under another name) in a folder of their own."""
    out = tmp_path_factory.mktemp("reports") / "bench"
    bench(out, weights=str(yaml_checkpoint), name="baseline")
    report = json.loads((out / "baseline.json").read_text())
    report["metadata"]["model_name"] = "other"
    (out / "other.json").write_text(json.dumps(report))
    return out


def test_report_with_edited_latency_is_refused(tmp_path, real_reports):
    report = json.loads((real_reports / "baseline.json").read_text())
    report["latency"]["median_ms"] = "fast"
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(report))
    with pytest.raises(DetbenchError, match=r"median_ms not numeric; the file was edited or damaged"):
        load_report(path)


def test_compare_skips_bad_reports_with_a_warning_naming_them(tmp_path, real_reports, capsys):
    import shutil

    folder = tmp_path / "bench"
    folder.mkdir()
    for name in ("baseline", "other"):
        shutil.copy(real_reports / f"{name}.json", folder)
    (folder / "broken.json").write_text("{not json")
    (folder / "future.json").write_text(json.dumps({"schema_version": 99}))
    code, stdout, stderr = finish(spawn("compare", str(folder), cwd=tmp_path))
    assert code == 0, stderr
    warnings = [line for line in stderr.splitlines() if line.startswith("warning: ")]
    assert any(str(folder / "broken.json") in line and "not valid JSON" in line for line in warnings), stderr
    assert any(str(folder / "future.json") in line and "unknown schema_version 99" in line for line in warnings)
    assert "other" in stdout

    from detbench.cli import main

    (folder / "baseline.json").unlink()
    (folder / "other.json").unlink()
    assert main(["compare", str(folder)]) == 2  # none remain
    assert error_line(capsys.readouterr().err).startswith("error: no readable benchmark report to compare")


@pytest.mark.slow
def test_error_lines_never_carry_terminal_escape_sequences(cli_runs):
    _, result = cli_runs["escapes"]
    assert result.returncode == 2 and "\x1b" not in result.stderr
    assert error_line(result.stderr).startswith("error: --weights evil\\x1b[2J\\x1b[31m.pt: ")

