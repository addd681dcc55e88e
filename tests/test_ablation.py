"""`detbench ablate`: discovery, one fresh process per model and round, failure isolation, resume, merged rounds."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from detbench.cli import build_parser
from detbench.errors import DetbenchError
from detbench.flags import config_argv
from detbench.report.model import Report
from detbench.report.schema import load_report
from detbench.stats import summary as stats
from detbench.study.ablation import (
    ModelRun,
    Progress,
    bench_defaults,
    discover_runs,
    merge_rounds,
    resolve_models,
    run_child,
    stale_reason,
)
from detbench.workflows.artifacts import save_untrained

pytestmark = pytest.mark.slow  # subprocesses and whole runs

QUICK = ["--device", "cpu", "--imgsz", "64", "--warmup", "1", "--iters", "4", "--threads", "1", "--quiet"]


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_discover_picks_lowest_seed_sorts_and_ignores_other_folders(tmp_path):
    runs = tmp_path / "runs"
    _touch(runs / "ghost" / "seed2" / "weights" / "best.pt")
    _touch(runs / "ghost" / "seed10" / "weights" / "best.pt")
    _touch(runs / "baseline" / "seed0" / "weights" / "best.pt")
    _touch(runs / "baseline" / "seed1" / "weights" / "best.pt")
    _touch(runs / "eca" / "weights" / "best.pt")  # plain Ultralytics layout, no seed level
    _touch(runs / "p2" / "seed0" / "weights" / "last.pt")  # no best.pt: not a finished run
    _touch(runs / "odd" / "seedling" / "weights" / "best.pt")  # not a seed folder

    found = discover_runs(runs)
    assert [run.name for run in found] == ["baseline", "eca", "ghost"]
    by_name = {run.name: run for run in found}
    assert by_name["baseline"].weights == str(runs / "baseline" / "seed0" / "weights" / "best.pt")
    assert by_name["ghost"].weights.endswith("seed2/weights/best.pt")  # numeric order: seed2 before seed10
    assert "2 seeds (seed2, seed10)" in by_name["ghost"].note
    assert by_name["eca"].note == ""

    with pytest.raises(DetbenchError, match="no such folder"):
        discover_runs(tmp_path / "missing")
    with pytest.raises(DetbenchError, match="no NAME/seed"):
        discover_runs(runs / "p2")


def test_models_flag_takes_run_names_paths_and_zoo_names(tmp_path):
    runs = tmp_path / "runs"
    best = _touch(runs / "baseline" / "seed0" / "weights" / "best.pt")
    other = _touch(tmp_path / "elsewhere" / "mine.pt")
    chosen = resolve_models(["baseline", str(other), "ghost_eca"], runs)
    assert chosen == [ModelRun("baseline", str(best)), ModelRun("mine", str(other)),
                      ModelRun("ghost_eca", "ghost_eca", "zoo YAML: untrained weights (latency only)")]
    with pytest.raises(DetbenchError, match="--models nope: no run folder"):
        resolve_models(["nope"], runs)
    with pytest.raises(DetbenchError, match="file not found"):
        resolve_models([str(tmp_path / "missing.pt")], runs)
    with pytest.raises(DetbenchError, match="both be named 'baseline'"):
        resolve_models(["baseline", str(best)], runs)


def test_child_gets_only_the_flags_that_differ_and_they_parse_back():
    values = {**bench_defaults(), "imgsz": 64, "device": "cpu", "cudnn_benchmark": False, "pipeline": True,
              "plugins": ["a.py", "b.py"], "min_time": 0.5}
    argv = config_argv(values)
    assert "--batch" not in argv and "--warmup" not in argv  # defaults stay implicit
    parsed = build_parser().parse_args(["bench", "--weights", "w.pt", *argv])
    for dest in ("imgsz", "device", "cudnn_benchmark", "pipeline", "plugins", "min_time", "iters"):
        assert getattr(parsed, dest) == values[dest], dest


@pytest.fixture(scope="module")
def study(tmp_path_factory, yaml_checkpoint, dataset):
    """Three runs (baseline, ghost and a damaged `broken`) benchmarked with --rounds 2, all in one call."""
    root = tmp_path_factory.mktemp("study")
    runs = root / "results" / "runs"
    baseline = runs / "baseline" / "seed0" / "weights" / "best.pt"
    baseline.parent.mkdir(parents=True)
    shutil.copy(yaml_checkpoint, baseline)
    save_untrained("ghost", runs / "ghost" / "seed0" / "weights" / "best.pt", dataset)
    broken = runs / "broken" / "seed0" / "weights" / "best.pt"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(yaml_checkpoint.read_bytes()[:4096])  # a truncated copy
    first = run_cli("ablate", "--rounds", "2", *QUICK, cwd=root)
    return root, first


def test_failure_is_isolated_recorded_and_makes_the_exit_non_zero(study):
    root, first = study
    assert first.returncode == 1, first.stdout + first.stderr
    bench = root / "results" / "bench"
    summary = json.loads((bench / "ablation_summary.json").read_text())
    status = {m["name"]: m for m in summary["models"]}
    assert {name: m["status"] for name, m in status.items()} == {"baseline": "ok", "broken": "failed",
                                                                  "ghost": "ok"}
    assert "cannot load" in status["broken"]["error"] and status["broken"]["exit_code"] == 2
    assert status["broken"]["rounds_done"] == 0 and summary["counts"]["failed"] == 1
    assert "✗ broken" in first.stdout and "cannot load" in first.stdout
    assert not (bench / "broken.json").exists()
    # the list was made once, up front, and every report used it
    out = first.stdout
    assert out.count("✓ created benchmark list") == 1 and out.index("✓ created") < out.index("[1/")
    digests = {load_report(bench / f"{name}.json").inputs.list_sha256 for name in ("baseline", "ghost")}
    assert digests == {summary["list_sha256"]}


def test_rounds_run_interleaved_and_merge_into_one_report(study):
    root, first = study
    order = re.findall(r"^\[\d+/\d+\] (\w+) · round (\d)/2 · elapsed [\d:]+ · ETA ([\d:?]+)$", first.stdout, re.M)
    # broken fails in round 1, so its round 2 is dropped: A B C A C
    assert [(name, k) for name, k, _ in order] == [("baseline", "1"), ("broken", "1"), ("ghost", "1"),
                                                    ("baseline", "2"), ("ghost", "2")]
    assert order[0][2] == "?" and re.fullmatch(r"\d+:\d\d", order[-1][2])
    bench = root / "results" / "bench"
    assert not (bench / ".rounds").exists()
    for name in ("baseline", "ghost"):
        report = load_report(bench / f"{name}.json").to_dict()
        samples = report["samples"]["latency_ms"]
        assert len(samples) == 8 and report["latency"]["n_samples"] == 8
        assert [r["round"] for r in report["rounds"]] == [1, 2]
        for index, entry in enumerate(report["rounds"]):
            own = samples[4 * index:4 * index + 4]
            assert entry["n"] == 4 and entry["median_ms"] == pytest.approx(float(np.median(own)))
            assert entry["p95_ms"] == pytest.approx(stats.summarize(own)["p95_ms"])
        whole = stats.summarize(samples)
        assert report["latency"]["median_ms"] == pytest.approx(whole["median_ms"])
        assert report["latency"]["p95_ms"] == pytest.approx(whole["p95_ms"])
        assert report["throughput"]["fps_mean"] == pytest.approx(1000.0 / whole["mean_ms"])
        assert report["metadata"]["model_name"] == name and report["metadata"]["iters"] == 4
        assert any("merged from 2 interleaved rounds" in note for note in report["notes"])
        assert report["statistics"]["n_samples"] == 8
        assert len(report["statistics"]["warmup_check"]["per_round"]) == 2  # each round warmed up on its own


def test_merge_takes_the_peak_memory_and_refuses_rounds_on_other_inputs(study):
    root, _ = study
    report = load_report(root / "results" / "bench" / "baseline.json").to_dict()
    one = {**report, "samples": {**report["samples"], "latency_ms": [1.0, 2.0, 3.0]},
           "memory": {**report["memory"], "peak_rss_MB": 100.0}}
    two = {**report, "samples": {**report["samples"], "latency_ms": [4.0, 5.0]},
           "memory": {**report["memory"], "peak_rss_MB": 250.0}}
    merged = merge_rounds([Report.from_dict(one), Report.from_dict(two)], "baseline").to_dict()
    assert merged["samples"]["latency_ms"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert merged["memory"]["peak_rss_MB"] == 250.0
    assert [r["median_ms"] for r in merged["rounds"]] == [2.0, 4.5]
    assert merged["latency"]["median_ms"] == 3.0 and merged["latency"]["max_ms"] == 5.0
    other = {**two, "inputs": {**two["inputs"], "list_sha256": "0" * 64}}
    with pytest.raises(DetbenchError, match="round 2 differs from round 1 in its benchmark list"):
        merge_rounds([Report.from_dict(one), Report.from_dict(other)], "baseline")


def test_resume_skips_up_to_date_reports_and_force_reruns(study):
    root, _ = study
    bench = root / "results" / "bench"
    before = {name: (bench / f"{name}.json").stat().st_mtime_ns for name in ("baseline", "ghost")}
    again = run_cli("ablate", "--rounds", "2", "--models", "baseline,ghost", *QUICK, cwd=root)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "· baseline: up to date" in again.stdout and "· ghost: up to date" in again.stdout
    assert not re.findall(r"^\[\d+/\d+\]", again.stdout, re.M)  # no process started
    assert {name: (bench / f"{name}.json").stat().st_mtime_ns for name in before} == before

    forced = run_cli("ablate", "--rounds", "2", "--models", "ghost", "--force", *QUICK, cwd=root)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert (bench / "ghost.json").stat().st_mtime_ns != before["ghost"]
    assert (bench / "baseline.json").stat().st_mtime_ns == before["baseline"]
    summary = json.loads((bench / "ablation_summary.json").read_text())
    assert [(m["name"], m["status"], m["why_run"]) for m in summary["models"]] == [("ghost", "ok", "--force")]


def test_a_report_made_differently_is_not_up_to_date(study):
    root, _ = study
    report_path = root / "results" / "bench" / "baseline.json"
    report = load_report(report_path).to_dict()
    run = ModelRun("baseline", str(root / "results/runs/baseline/seed0/weights/best.pt"))
    values = {**bench_defaults(), "imgsz": 64, "warmup": 1, "iters": 4, "threads": 1, "device": "cpu"}
    sha = report["inputs"]["list_sha256"]
    assert stale_reason(report_path, run, values, "cpu", sha, 2) is None
    assert "--iters 4, now 300" in stale_reason(report_path, run, {**values, "iters": 300}, "cpu", sha, 2)
    assert "--batch" in stale_reason(report_path, run, {**values, "batch": 2}, "cpu", sha, 2)
    assert "--pipeline" in stale_reason(report_path, run, {**values, "pipeline": True}, "cpu", sha, 2)
    assert "--threads" in stale_reason(report_path, run, {**values, "threads": 2}, "cpu", sha, 2)
    assert "ran on cpu, now cuda:0" in stale_reason(report_path, run, values, "cuda:0", sha, 2)
    assert "another benchmark list" in stale_reason(report_path, run, values, "cpu", "f" * 64, 2)
    assert "2 round(s), now 1" in stale_reason(report_path, run, values, "cpu", sha, 1)
    other = ModelRun("baseline", str(root / "results/runs/ghost/seed0/weights/best.pt"))
    assert "other weights" in stale_reason(report_path, other, values, "cpu", sha, 2)
    assert stale_reason(report_path.with_name("absent.json"), run, values, "cpu", sha, 2) == "no report yet"


def test_a_killed_or_crashing_process_is_reported_with_its_last_words():
    said: list[str] = []
    killed = run_child([sys.executable, "-c", "import os, signal, sys; print('working'); "
                        "print('allocating', file=sys.stderr); os.kill(os.getpid(), signal.SIGKILL)"],
                       said.append, quiet=False)
    assert not killed.ok and killed.returncode == -9
    assert killed.error == "killed by SIGKILL (out of memory?): allocating"
    assert said == ["    working"]
    crashed = run_child([sys.executable, "-c", "raise RuntimeError('CUDA out of memory')"], said.append, quiet=True)
    assert crashed.returncode == 1 and crashed.error == "RuntimeError: CUDA out of memory"
    assert crashed.stderr_tail[0].startswith("Traceback")


def test_eta_uses_each_models_own_duration_and_drops_a_failed_models_rounds():
    progress = Progress([(1, "a"), (1, "b"), (2, "a"), (2, "b")])
    assert progress.line("a", 1, 2).startswith("[1/4] a · round 1/2 · elapsed 0:00 · ETA ?")
    progress.finished("a", 10.0)
    assert progress.eta() == "0:30"  # b unknown: the mean so far stands in
    progress.finished("b", 50.0)
    assert progress.eta() == "1:00"
    progress.drop_model("b", progress.done)
    assert progress.eta() == "0:10" and progress.line("a", 2, 2).startswith("[3/3] a · round 2/2")
