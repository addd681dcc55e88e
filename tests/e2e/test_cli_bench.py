"""The runner as a user calls it: scripts/benchmark_model.py and `detbench bench` in subprocesses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from batch_child import CaseOutcome
from cli_batch import READ_TEXT, run_cli_batch

from detbench.config import BenchConfig
from detbench.report.schema import REQUIRED_LATENCY, load_report

SPEC_FLAGS = ["--weights", "--imgsz", "--device", "--warmup", "--iters", "--batch", "--data", "--seed",
              "--benchmark_size", "--use_benchmark_list", "--name", "--out", "--threads"]
QUICK = ["--device", "cpu", "--imgsz", "64", "--warmup", "2", "--iters", "6", "--threads", "1"]


def test_help_lists_every_flag(cli):
    result = cli("--help", script="benchmark_model.py")
    assert result.returncode == 0
    for flag in SPEC_FLAGS:
        assert flag in result.stdout
    assert "--benchmark-size" in result.stdout


def test_trained_checkpoint_without_data_then_second_model_reuses_list(cli, tmp_path, trained_best,
                                                                      yaml_checkpoint):
    first = cli("--weights", str(trained_best), *QUICK, "--batch", "2", script="benchmark_model.py", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    expected = ["✓ created benchmark list: results/bench/benchmark_list.txt", "✓ model loaded", "✓ params: ",
                "✓ GFLOPs: ", "✓ latency (mean): ", "✓ saved: results/bench/baseline.json"]
    ticks = [line for line in lines if line.startswith("✓")]
    assert len(ticks) == len(expected)
    for line, start in zip(ticks, expected, strict=True):
        assert line.startswith(start), (line, start)
    assert re.search(r"✓ params: [\d,]+$", first.stdout, re.M)

    second = cli("--weights", str(yaml_checkpoint), *QUICK, "--use_benchmark_list", "--name", "other",
                 script="benchmark_model.py", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "✓ loaded benchmark list" in second.stdout

    a = load_report(tmp_path / "results/bench/baseline.json").to_dict()
    b = load_report(tmp_path / "results/bench/other.json").to_dict()
    assert a["inputs"]["list_sha256"] == b["inputs"]["list_sha256"]
    assert a["inputs"]["decoded_sha256"] == b["inputs"]["decoded_sha256"]
    assert a["metadata"]["benchmark_size"] == 60 and a["inputs"]["truncated"]

    meta = a["metadata"]
    assert (meta["model_name"], meta["imgsz"], meta["batch"], meta["device"]) == ("baseline", 64, 2, "cpu")
    assert (meta["warmup"], meta["iters"], meta["benchmark_size_requested"], meta["seed"]) == (2, 6, 200, 42)
    for key in REQUIRED_LATENCY:
        assert a["latency"][key] > 0
    assert len(a["samples"]["latency_ms"]) == 6
    assert a["throughput"]["fps_mean"] == 2 * 1000 / a["latency"]["mean_ms"]
    assert a["memory"]["peak_gpu_mem_MB"] is None and a["memory"]["peak_rss_MB"] > 0
    assert a["model_complexity"]["gflops"] > 0 and a["model_complexity"]["params_M"] > 0
    assert a["settings"]["threads"] == 1
    assert a["environment"]["torch"] and a["environment"]["ultralytics"]

    # the report JSON round-trips, and its config section is every setting, describing the same run again
    path = tmp_path / "results/bench/other.json"
    report = json.loads(path.read_text())
    assert json.loads(json.dumps(report)) == report
    assert set(report) >= {"metadata", "model_complexity", "latency", "throughput", "memory", "schema_version",
                           "environment", "inputs", "command", "settings", "config"}
    assert not list(path.parent.glob(".*.tmp"))
    assert BenchConfig.from_dict(report["config"]) == BenchConfig(
        weights=str(yaml_checkpoint), device="cpu", imgsz=64, warmup=2, iters=6, threads=1, use_benchmark_list=True,
        name="other")


# the suite's own checkpoint, loaded in the bench's process only: the bounded model check's child (a torch import of
# its own) is not what the replacing of reports is about
NO_CHECK_CHILD = ["--unsafe-load"]


def error_cases(folder: Path, checkpoint: Path) -> dict[str, tuple[list, Path]]:
    """Command lines that each fail with one line; the name is what the line must hold."""
    cases = {
        "file not found": ["--weights", folder / "missing.pt"],
        "--iters": ["--weights", checkpoint, "--iters", "0"],
        "--device": ["--weights", checkpoint, "--device", "cuda:99" if torch.cuda.is_available() else "0"],
        "--use_benchmark_list": ["--weights", checkpoint, "--use_benchmark_list"],
    }
    return {needle: (["bench", *args, "--out", folder / "out", "--imgsz", "64"], folder)
            for needle, args in cases.items()}


def replacing_cases(folder: Path, checkpoint: Path, dataset: Path) -> dict[str, tuple]:
    """A report at imgsz 64; other settings refused (and a mistyped checkpoint path of the report's name); the same
    settings again; other settings with --force (at imgsz 70, not a multiple of the stride). The report's text is
    read between them."""
    out = folder / "o"
    path = out / "yolov8n.json"
    settings = ["--device", "cpu", "--warmup", "0", "--iters", "2", "--threads", "1", "--data", dataset,
                "--benchmark_size", "6", "--out", out, *NO_CHECK_CHILD]
    common = ["--weights", checkpoint, *settings]
    many = [*common[:common.index("--warmup")], "--warmup", "1", "--iters", "3", *common[common.index("--threads"):]]
    return {
        "first": (["bench", *common, "--imgsz", "64"], folder),
        "first report": ([path], folder, READ_TEXT),
        "imgsz": (["bench", *common, "--imgsz", "96"], folder),
        "many": (["bench", *many, "--imgsz", "96", "--batch", "2"], folder),
        "typo": (["bench", "--weights", folder / "yolov8n.pt", *settings, "--imgsz", "64"], folder),
        "report after refusals": ([path], folder, READ_TEXT),
        "again": (["bench", *common, "--imgsz", "64"], folder),
        "report again": ([path], folder, READ_TEXT),
        "forced": (["bench", *common, "--imgsz", "70", "--force"], folder),
    }


@pytest.fixture(scope="module")
def cli_cases(tmp_path_factory, yaml_checkpoint, dataset) -> tuple[dict[str, Path], dict[str, CaseOutcome]]:
    """The command lines of the tests below, in order, in one child (torch imported once); each case is what its own
    process gives. Returns each group's folder and every case's outcome."""
    folders = {"errors": tmp_path_factory.mktemp("errors"), "replacing": tmp_path_factory.mktemp("replacing")}
    cases = {**error_cases(folders["errors"], yaml_checkpoint),
             **replacing_cases(folders["replacing"], yaml_checkpoint, dataset)}
    return folders, run_cli_batch(cases, tmp_path_factory.mktemp("batch"))


def test_errors_are_one_line_and_write_nothing(cli_cases):
    folders, outcomes = cli_cases
    for needle in ("file not found", "--iters", "--device", "--use_benchmark_list"):
        result = outcomes[needle]
        assert result.returncode != 0
        message = result.stderr.strip()
        assert message.startswith("error:") and "\n" not in message and needle in message, message
        assert "Traceback" not in result.stderr
    out = folders["errors"] / "out"
    assert not list(out.glob("*.json")) if out.exists() else True


def test_a_report_of_other_settings_is_not_replaced_without_force(cli_cases):
    """Same --out and name at another imgsz: refused in one line, the first report untouched; --force replaces.
    A mistyped checkpoint path of the report's name is "file not found", not a refusal of other settings."""
    folders, outcomes = cli_cases
    path, typo = folders["replacing"] / "o" / "yolov8n.json", folders["replacing"] / "yolov8n.pt"
    assert outcomes["first"].returncode == 0, outcomes["first"].stderr
    first = outcomes["first report"].stdout

    refused = outcomes["imgsz"]
    assert refused.returncode != 0
    (line,) = refused.stderr.strip().splitlines()
    assert "already holds a report of other settings (--imgsz 64, now 96)" in line
    assert all(flag in line for flag in ("--name", "--out", "--force")), line

    # every difference is named, not the first three and "and 1 more"
    (line,) = outcomes["many"].stderr.strip().splitlines()
    for difference in ("--imgsz 64, now 96", "--batch 1, now 2", "--warmup 0, now 1", "--iters 2, now 3"):
        assert difference in line, line
    assert " more)" not in line

    mistyped = outcomes["typo"]
    assert mistyped.returncode == 2 and mistyped.stdout == "", mistyped.stdout
    (line,) = mistyped.stderr.strip().splitlines()
    assert line.startswith(f"error: --weights {typo}: file not found;"), line
    assert outcomes["report after refusals"].stdout == first

    assert outcomes["again"].returncode == 0, outcomes["again"].stderr  # the same benchmark again replaces it
    again = outcomes["report again"].stdout
    assert again != first and json.loads(again)["metadata"]["imgsz"] == 64
    forced = outcomes["forced"]
    assert forced.returncode == 0, forced.stderr
    report = load_report(path).to_dict()
    assert (report["metadata"]["imgsz"], report["metadata"]["imgsz_requested"]) == (96, 70)
    assert "stride" in " ".join(report["notes"])


def test_flag_mistakes_are_one_line(cli):
    for args, expected in ((["--weights", "x.pt", "--imgzs", "320"], "error: detbench bench: unrecognized arguments: "
                                                                     "--imgzs 320; did you mean --imgsz?"),
                           (["--weights", "x.pt", "--imgsz", "abc"], "error: detbench bench: argument --imgsz: invalid "
                                                                     "int value: 'abc'; see detbench bench --help")):
        result = cli("bench", *args)
        assert result.returncode == 2 and result.stdout == "" and result.stderr == expected + "\n", result.stderr
