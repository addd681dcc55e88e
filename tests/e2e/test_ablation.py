"""`detbench ablate`: discovery, the interleaved study (workers, order, pairing), failure isolation, resume."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from conftest import captured, run_cli

from detbench.config import BenchConfig
from detbench.data.artifacts import save_untrained
from detbench.errors import DetbenchError
from detbench.report.merge import merge_workers
from detbench.report.model import Report
from detbench.report.schema import load_report
from detbench.stats import summary as stats
from detbench.study.ablation import study_key
from detbench.study.models import ModelRun, discover_runs, resolve_models
from detbench.study.options import StudyConfig
from detbench.workflows.existing import set_aside

pytestmark = pytest.mark.slow  # subprocesses and whole runs

QUICK = ["--device", "cpu", "--imgsz", "64", "--warmup", "1", "--threads", "1", "--quiet"]
FIXED = ["--workers-per-model", "2", "--no-until-decided", "--iters", "40", *QUICK]  # 20 rounds
ONE_WORKER = ["--workers-per-model", "1", "--no-until-decided", "--iters", "4", *QUICK]  # where workers are not tested


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
    assert [run.name for run in found] == ["baseline", "ghost", "eca"]  # the zoo's ablation order
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


@pytest.fixture(scope="module")
def study(tmp_path_factory, yaml_checkpoint, dataset):
    """Three runs (baseline, ghost and a damaged `broken`), two workers each, 20 interleaved rounds. Before it, as
    in the README's quick start, ghost was benchmarked alone into the same folder (its list kept elsewhere, so that
    the study still makes its own): the study, the first output, and the bytes of that separate run's report.
    How the weights are loaded is no part of what the tests read: --unsafe-load spares each worker, and the bench,
    the bounded check, and --data the study its reading of the dataset from a checkpoint (the demo's studies run
    with both)."""
    root = tmp_path_factory.mktemp("study")
    runs = root / "results" / "runs"
    baseline = runs / "baseline" / "seed0" / "weights" / "best.pt"
    baseline.parent.mkdir(parents=True)
    shutil.copy(yaml_checkpoint, baseline)
    ghost = save_untrained("ghost", runs / "ghost" / "seed0" / "weights" / "best.pt", dataset)
    broken = runs / "broken" / "seed0" / "weights" / "best.pt"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(yaml_checkpoint.read_bytes()[:4096])  # a truncated copy
    alone = run_cli("bench", "--weights", str(ghost), "--iters", "5", "--data", str(dataset), "--list",
                    str(root / "alone" / "benchmark_list.txt"), "--unsafe-load", *QUICK[:-1],
                    cwd=root)  # bench has no --quiet
    assert alone.returncode == 0, alone.stderr
    separate = (root / "results" / "bench" / "ghost.json").read_bytes()
    first = run_cli("ablate", *FIXED, "--bias-probe", "3", "--unsafe-load", "--data", str(dataset), cwd=root)
    return root, first, separate


def test_failure_is_isolated_recorded_and_makes_the_exit_non_zero(study):
    root, first, _ = study
    assert first.returncode == 1, first.stdout + first.stderr
    bench = root / "results" / "bench"
    record = json.loads((bench / "study.json").read_text())
    status = {m["name"]: m for m in record["models"]}
    assert {name: m["status"] for name, m in status.items()} == {"baseline": "ok", "broken": "failed",
                                                                  "ghost": "ok"}
    assert "cannot load" in status["broken"]["error"] and record["status"] == "failed"
    assert "✗ broken failed (worker 0)" in first.stdout and "cannot load" in first.stdout
    assert "its turns stop in every worker, the other models go on" in first.stdout
    assert not (bench / "broken.json").exists()
    assert "cannot load" in (bench / ".study" / "w0.log").read_text()  # the worker's log, kept for a failed study
    assert not any(label.startswith("broken#") for turns in record["order"] for label in turns)  # no turn of it
    out = first.stdout  # the list was made once, before any worker started, and every report used it
    assert out.count("✓ created benchmark list") == 1
    assert out.index("✓ created") < out.index("2 worker processes ready and warm, each holding 2 models")
    digests = {load_report(bench / f"{name}.json").inputs.list_sha256 for name in ("baseline", "ghost")}
    assert digests == {record["list_sha256"]}
    page = (bench / "report.html").read_text(encoding="utf-8")  # the page of what finished, though a model failed
    assert out.splitlines()[-1].startswith("✓ saved: ") and out.splitlines()[-1].endswith("report.html")
    assert page.count('<tr data-model="') == 2 * 2 and f"study {record['id']}" in page  # ablation and latency tables


def test_every_worker_process_takes_a_turn_of_every_model_in_a_recorded_order_and_reports_keep_the_pairing(study):
    root, _, _ = study
    bench = root / "results" / "bench"
    record = json.loads((bench / "study.json").read_text())
    assert record["rounds_done"] == 20 and record["stop_reason"] == "rounds done" and len(record["order"]) == 20
    labels = {"baseline#0", "baseline#1", "ghost#0", "ghost#1"}
    assert all(sorted(turns) == sorted(labels) for turns in record["order"])  # every (worker, model) once a round
    assert record["processes_hold_every_model"] is True and "paired within each process" in record["design"]
    assert [(w["worker"], w["turns"], w["lost"]) for w in record["workers"]] == [
        (k, {"baseline": 20, "ghost": 20}, None) for k in (0, 1)]
    assert len({tuple(turns) for turns in record["order"]}) > 1  # in a drawn order, not a fixed one
    ids = set()
    for name in ("baseline", "ghost"):
        report = load_report(bench / f"{name}.json")
        samples = report.samples
        assert len(samples.latency_ms) == 40 and report.latency.n_samples == 40
        assert sorted(zip(samples.worker, samples.round, strict=True)) == [(w, r) for w in (0, 1) for r in range(20)]
        whole = stats.summarize(samples.latency_ms)
        assert report.latency.median_ms == pytest.approx(whole["median_ms"])
        assert report.throughput.fps_mean == pytest.approx(1000.0 / whole["mean_ms"])
        assert [w["worker"] for w in report.study["workers"]] == [0, 1]
        assert report.study["processes_hold_every_model"] is True
        assert report.study["looks_at_rounds"] == [20] and report.config["iters"] == 40
        assert len(report.statistics.warmup_check["per_worker"]) == 2  # each worker warmed up on its own
        ids.add(report.study["id"])
    assert ids == {record["id"]}
    (comparison,) = record["comparisons"]
    assert comparison["model"] == "ghost" and comparison["verdict"] in ("faster", "slower", "equivalent", "undecided")
    # 20 rounds give an interval only where the differences' lag-1 autocorrelation is below about -0.1
    assert comparison["n_rounds"] == 20 and (len(comparison["ci_pct"] or []) == 2
                                             or "20 rounds are too few" in comparison["reason"])
    assert comparison["process_agreement"]["processes"] == 2 and record["process_spread"] is None


def test_the_bias_probe_is_recorded_in_the_study_file_and_kept_out_of_the_reports(study):
    root, first, _ = study
    bench = root / "results" / "bench"
    record = json.loads((bench / "study.json").read_text())
    probe = record["interleaving_bias"]
    assert record["bias_probe_forwards"] == 3 and probe["forwards"] == 3 and len(probe["probes"]) == 20
    assert all(p["steady_n"] == 2 and p["first_ms"] > 0 and p["worker"].split("#")[0] in ("baseline", "ghost")
               for p in probe["probes"])
    assert set(probe["models"]) == {"baseline", "ghost"}
    probed = {p["worker"].split("#")[0] for p in probe["probes"]}
    for name in probed:
        found = probe["models"][name]
        assert found["paired"] == sum(p["worker"].startswith(name) for p in probe["probes"])
        assert found["loop_median_ms"] > 0 and found["turn_median_ms"] > 0
    assert "interleaving bias baseline" in first.stdout
    assert len(load_report(bench / "ghost.json").samples.latency_ms) == 40  # the probe's forwards are not samples


def test_the_bias_probe_changes_the_study_key_only_when_on():
    assert StudyConfig().design("b") == StudyConfig(bias_probe=0).design("b")
    assert "bias_probe" not in StudyConfig().design("b")
    assert StudyConfig(bias_probe=3).design("b")["bias_probe"] == 3


def test_compare_rebuilds_the_studys_verdicts_from_the_reports(study):
    root, _, _ = study
    bench = root / "results" / "bench"
    record = json.loads((bench / "study.json").read_text())
    (expected,) = record["comparisons"]
    code, lines, _ = captured(report_paths_or_dir=str(bench), output=root / "c.csv")
    assert code == 0
    assert "interleaved study" in "\n".join(lines)
    rows = {row["model"]: row for row in __import__("csv").DictReader(open(root / "c.csv", newline=""))}
    assert rows["ghost"]["verdict"] == expected["verdict"]
    low = rows["ghost"]["ci_low_pct"]
    assert (float(low) == pytest.approx(expected["ci_pct"][0])) if expected["ci_pct"] else low == ""
    assert float(rows["ghost"]["tested_delta_pct"]) == pytest.approx(expected["delta_pct"])
    assert rows["ghost"]["reason"] == (expected["reason"] or "")
    assert rows["ghost"]["study"] == record["id"] and rows["baseline"]["verdict"] == "baseline"


def test_merge_takes_the_peak_memory_and_refuses_workers_on_other_inputs(study):
    root, _, _ = study
    report = load_report(root / "results" / "bench" / "baseline.json").to_dict()
    one = {**report, "samples": {"latency_ms": [1.0, 2.0, 3.0], "round": [0, 1, 2]},
           "memory": {**report["memory"], "peak_rss_MB": 100.0}}
    two = {**report, "samples": {"latency_ms": [4.0, 5.0], "round": [0, 1]},
           "memory": {**report["memory"], "peak_rss_MB": 250.0}}
    merged = merge_workers([Report.from_dict(one), Report.from_dict(two)], "baseline")
    assert merged.samples.latency_ms == [1.0, 2.0, 3.0, 4.0, 5.0] and merged.samples.worker == [0, 0, 0, 1, 1]
    assert merged.samples.round == [0, 1, 2, 0, 1] and merged.memory.peak_rss_MB == 250.0
    assert [w["median_ms"] for w in merged.study["workers"]] == [2.0, 4.5]
    assert merged.latency.median_ms == 3.0 and merged.latency.max_ms == 5.0
    other = {**two, "inputs": {**two["inputs"], "list_sha256": "0" * 64}}
    with pytest.raises(DetbenchError, match="worker 1 differs from worker 0 in its benchmark list"):
        merge_workers([Report.from_dict(one), Report.from_dict(other)], "baseline")


def test_the_study_key_changes_with_anything_that_changes_the_numbers(tmp_path):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"one")
    runs = [ModelRun("baseline", str(weights)), ModelRun("ghost", "ghost")]
    cfg = BenchConfig(weights="ablate", imgsz=64, iters=40, threads=1, device="cpu")
    design = {"workers_per_model": 2, "alpha": 0.05}
    key = study_key(runs, cfg, "cpu", "a" * 64, design)
    assert key == study_key(runs, BenchConfig(weights="ablate", imgsz=64, iters=40, threads=1, device="cpu",
                                              load_timeout=10.0), "cpu", "a" * 64, design)  # how to load: same
    changed = [
        study_key(runs, BenchConfig(weights="ablate", imgsz=96, iters=40, threads=1, device="cpu"), "cpu", "a" * 64,
                  design),
        study_key(runs, BenchConfig(weights="ablate", imgsz=64, iters=40, threads=2, device="cpu"), "cpu", "a" * 64,
                  design),
        study_key(runs, BenchConfig(weights="ablate", imgsz=64, iters=40, threads=1, pipeline=True), "cpu", "a" * 64,
                  design),
        study_key(runs, cfg, "cuda:0", "a" * 64, design),
        study_key(runs, cfg, "cpu", "b" * 64, design),
        study_key(runs, cfg, "cpu", "a" * 64, {**design, "workers_per_model": 1}),
        study_key(runs[:1], cfg, "cpu", "a" * 64, design),
    ]
    weights.write_bytes(b"two")  # the same path, other content
    changed.append(study_key(runs, cfg, "cpu", "a" * 64, design))
    assert len({key, *changed}) == len(changed) + 1


@pytest.mark.parametrize("value", [-1, 1, 1001])
def test_an_impossible_bias_probe_is_refused_naming_the_flag(value):
    with pytest.raises(DetbenchError, match=r"--bias-probe must be 0 \(off\) or between 2 and 1000 forwards"):
        StudyConfig(bias_probe=value).validate()


def test_a_study_keeps_a_bench_report_of_its_folder_as_a_separate_run(study, tmp_path):
    """The README's quick start: a model benchmarked alone, then the study into the same folder, without --force:
    the study's report takes NAME.json, and the separate run moves to separate_runs/NAME.json, said so."""
    root, first, before = study
    bench = root / "results" / "bench"
    assert ("results/bench/ghost.json holds a separate `detbench bench` run of ghost: the study's report takes its "
            "place, and the run is kept as results/bench/separate_runs/ghost.json") in first.stdout
    assert "kept the separate run of ghost as results/bench/separate_runs/ghost.json" in first.stdout
    assert (bench / "separate_runs" / "ghost.json").read_bytes() == before
    assert load_report(bench / "ghost.json").study and (bench / "study.json").is_file()
    assert not (bench / "separate_runs" / "baseline.json").exists()  # nothing was there to keep
    # what follows changes the folder: on a copy of it
    shutil.copytree(root / "results", tmp_path / "results", symlinks=True)
    bench = tmp_path / "results" / "bench"
    # a second separate run kept beside the first, never over it (as the study above kept the first)
    (bench / "ghost.json").write_bytes(before)
    assert set_aside(bench / "ghost.json") == bench / "separate_runs" / "ghost-2.json"
    assert (bench / "separate_runs" / "ghost-2.json").read_bytes() == before
    # a separate_runs that is a link is refused before the study runs, not after it
    (bench / "ghost.json").write_bytes(before)
    shutil.move(bench / "separate_runs", tmp_path / "elsewhere")
    (bench / "separate_runs").symlink_to(tmp_path / "elsewhere")
    study_before = (bench / "study.json").read_bytes()
    refused = run_cli("ablate", *FIXED, cwd=tmp_path)
    assert refused.returncode == 2 and "separate_runs: is a symlink or not a folder" in refused.stderr
    assert (bench / "study.json").read_bytes() == study_before and (bench / "ghost.json").read_bytes() == before
    # a report of another backend under the same name is no separate run of the study's model: refused as before
    (bench / "separate_runs").unlink()
    onnx = run_cli("ablate", *ONE_WORKER, "--format", "onnx", "--models", "ghost", cwd=tmp_path)
    assert onnx.returncode == 2, onnx.stderr
    assert ("ghost.json: already holds a report of other settings (made by `detbench bench`, not by a study; "
            "--iters 5, now 4; --format 'pytorch', now 'onnx')") in onnx.stderr
    assert (bench / "ghost.json").read_bytes() == before
    # with --force that report would be replaced: it is kept aside like one of the study's own backend
    from detbench.study import ablation
    from detbench.study.options import bench_defaults

    lines: list[str] = []
    values = {**bench_defaults(), "threads": 1, "format": "onnx"}
    forced = ablation._Study(StudyConfig(force=True), lines.append, values, BenchConfig(weights="x", threads=1),
                             "cpu", bench, bench / "benchmark_list.txt", [ModelRun("ghost", "ghost")], "ghost",
                             sys.executable)
    ablation.refuse_replacing_reports(forced)
    assert forced.separate_runs == ["ghost"] and "holds a separate `detbench bench` run of ghost" in lines[0]


@pytest.mark.parametrize(("quiet", "every"), [(False, 15.0), (True, None)])
def test_quiet_turns_the_progress_lines_off(tmp_path, quiet, every):
    from detbench.study import ablation
    from detbench.study.options import bench_defaults

    values = {**bench_defaults(), "threads": 1}
    study = ablation._Study(StudyConfig(quiet=quiet), print, values, BenchConfig(weights="x", threads=1), "cpu",
                            tmp_path, tmp_path / "benchmark_list.txt", [ModelRun("baseline", "baseline")], "baseline",
                            sys.executable)
    assert ablation._plan(study, "0" * 64).progress_every == every
