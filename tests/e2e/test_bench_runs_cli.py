"""Reports of real `detbench bench` runs through the CLI. Three runs share one output folder, whose default list is
a link to a list elsewhere, and each is checked for several things: the --pipeline breakdown, --rect, statistics
and stopping, set-up reuse, a forged set-up cache entry, the model's own memory of two model sizes, and no link
followed below the output folder. The runs are command lines of one child process (tests/cli_batch.py), which
imports torch and Ultralytics once; each run starts its bounded model check as a process of its own would."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from batch_child import CaseOutcome
from cli_batch import run_cli_batch
from conftest import file_tree, linked_list
from rect_forgery import IMGSZ

from detbench.data import cache as setup_cache
from detbench.data.synthetic import make_dataset
from detbench.measure.pipeline import STAGES
from detbench.report.schema import load_report
from detbench.stats import summary as stats

# Four images of two shapes, in the order the linked list's seeded draw takes them (0 and 3, then 1 and 2): each
# batch of two holds one shape, so --rect times true rectangles
SIZES = ((240, 320), (320, 240), (320, 240), (240, 320))
TRUE_SHAPES = {"96x128": 1, "128x96": 1}
COMMON = ("--device", "cpu", "--imgsz", str(IMGSZ), "--rect", "--batch", "2", "--threads", "1", "--out", "OUT",
          "--use_benchmark_list")
# between the second run and the third: the set-up cache entry forged as an attacker would (tests/rect_forgery.py);
# prints the shapes a run trusting it would time
FORGE = (f"sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})\nimport json\nfrom pathlib import Path\n"
         "from rect_forgery import forge_original_sizes\nprint(json.dumps(forge_original_sizes(Path(sys.argv[2]))))")


@dataclass
class Run:
    result: CaseOutcome
    path: Path

    def raw(self) -> dict:
        assert self.result.returncode == 0, self.result.stdout + self.result.stderr
        return json.loads(self.path.read_text())

    def report(self) -> dict:
        assert self.result.returncode == 0, self.result.stdout + self.result.stderr
        return load_report(self.path).to_dict()

    @property
    def output(self) -> str:
        return self.result.stdout + self.result.stderr


@dataclass
class Runs:
    first: Run  # yolov8n, --pipeline: the first run in the folder
    second: Run  # yolov8n again, --min-time: reuses the first's set-up
    large: Run  # yolov8x, after the set-up cache entry was forged
    forged_shapes: dict[str, int]  # what a run trusting the forged entry would time
    other: Path  # the folder the linked list lies in
    other_before: dict[str, bytes | None]
    out: Path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, yaml_checkpoint) -> Runs:
    folder = tmp_path_factory.mktemp("bench-runs")
    data = make_dataset(folder / "data", n_train=0, n_val=4, seed=4, sizes=SIZES)
    other, out, _ = linked_list(folder, data)
    other_before = file_tree(other)

    def bench(name: str, weights: str | Path, *args: str) -> tuple[list[str], Path]:
        return ["bench", "--weights", str(weights), *COMMON, "--name", name, *args], folder

    outcomes = run_cli_batch({
        "first": bench("first", yaml_checkpoint, "--pipeline", "--warmup", "2", "--iters", "6"),
        "second": bench("second", yaml_checkpoint, "--warmup", "2", "--iters", "8", "--min-time", "0.3"),
        "forge": ([out / setup_cache.CACHE_DIRNAME], folder, FORGE),
        "yolov8x": bench("yolov8x", "yolov8x.yaml", "--warmup", "0", "--iters", "1"),
    }, tmp_path_factory.mktemp("batch"))
    forged = outcomes["forge"]
    assert forged.returncode == 0, forged.stderr
    return Runs(*(Run(outcomes[name], out / f"{name}.json") for name in ("first", "second", "yolov8x")),
                json.loads(forged.stdout), other, other_before, out)


# ---------------------------------------------------------------- --pipeline and --rect (the first run)

def test_cli_pipeline_section_has_each_stage_with_statistics(runs):
    report = runs.first.report()
    assert "✓ pipeline (median): preprocess " in runs.first.result.stdout
    section, raw = report["pipeline"], report["samples"]["pipeline_ms"]
    assert section["nms"]["conf"] == 0.25 and section["nms"]["iou"] == 0.7
    assert section["n_samples"] == 6 and section["stop_reason"] == "iters"
    for stage in STAGES:
        assert len(raw[stage]) == 6
        assert section[stage]["median_ms"] == pytest.approx(float(np.median(raw[stage])))
        assert section[stage]["statistics"]["n_samples"] == 6
        assert section[stage]["statistics"]["median_ci95_ms"] is not None
    parts = np.add(np.add(raw["preprocess"], raw["inference"]), raw["postprocess"])
    assert np.allclose(parts, raw["total"], atol=1e-6)
    assert report["timing_phases_s"]["pipeline"] > 0


def test_cli_rect_records_the_shapes_of_the_list_warms_each_and_gives_per_image_stages(runs):
    report = runs.first.report()
    shapes = report["inputs"]["shapes"]
    assert sum(shapes.values()) == -(-report["inputs"]["n_images"] // 2) and "--rect" in report["inputs"]["letterbox"]
    assert all(int(h) <= IMGSZ and int(w) <= IMGSZ and int(h) % 32 == 0 == int(w) % 32
               for h, w in (key.split("x") for key in shapes))
    assert shapes == TRUE_SHAPES
    assert report["config"]["rect"] is True and any(f"square {IMGSZ}x{IMGSZ}" in note for note in report["notes"])
    assert any(f"--rect: {len(shapes)} untimed forward(s), one per input shape" in note for note in report["notes"])
    section = report["pipeline"]
    assert section["per_image_ms"]["total"]["median_ms"] == pytest.approx(section["total"]["median_ms"] / 2)
    assert section["letterbox"].startswith("--rect")


def test_rect_with_a_cuda_graph_is_refused(cli, tmp_path):
    result = cli("bench", "--weights", "yolov8n.yaml", "--rect", "--cuda-graph", cwd=tmp_path)
    assert result.returncode != 0 and "--rect gives inputs of varying shape" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- statistics, stopping and phases (the second run)

def test_cli_rejects_max_time_without_target_ci(cli, tmp_path):
    result = cli("bench", "--weights", "baseline", "--max-time", "5", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: --max-time bounds the --target-ci extension")


def test_report_carries_statistics_stopping_and_phases(runs):
    report = runs.second.report()
    samples = report["samples"]["latency_ms"]
    section = report["statistics"]
    assert section["n_samples"] == len(samples) == report["latency"]["n_samples"] >= 8
    low, high = stats.quantile_ci_ranks(len(samples), 0.5)
    assert section["median_ci95_ms"] == [sorted(samples)[low - 1], sorted(samples)[high - 1]]
    assert section["iqr_ms"] == pytest.approx(np.subtract(*np.percentile(samples, [75, 25])))
    assert section["outliers"]["count"] == len(section["outliers"]["indices"])
    stopping = report["stopping"]
    assert stopping["reason"] in {"iters", "min_time"} and stopping["timed_s"] >= 0.3
    assert stopping["iterations"] == len(samples) and stopping["min_time_s"] == 0.3
    phases = report["timing_phases_s"]
    assert set(phases) >= {"import", "load", "list", "decode", "warmup", "timed"}
    assert phases["timed"] == pytest.approx(stopping["timed_s"], abs=1e-3)
    printed = [line for line in runs.second.result.stdout.splitlines() if line.startswith("  warning: ")]
    for warning in section["warnings"]:
        assert f"  warning: {warning}" in printed
    assert set(section["warnings"]) <= set(report["warnings"])
    assert f"{len(samples)} samples, stopped by {stopping['reason']}" in runs.second.result.stdout


# ---------------------------------------------------------------- the set-up cache: reused, and a forged entry refused

def test_second_cli_run_reuses_set_up_with_identical_results(runs):
    first, second = runs.first.raw(), runs.second.raw()
    assert first["setup_cache"]["inputs_reused"] is False and second["setup_cache"]["inputs_reused"] is True
    assert second["model_complexity"] == first["model_complexity"]
    assert second["inputs"] == first["inputs"]


def test_cli_rect_run_with_a_forged_entry_times_the_true_shapes_and_says_so(runs):
    a, b = runs.second.raw(), runs.large.raw()
    assert set(runs.forged_shapes).isdisjoint(a["inputs"]["shapes"])  # trusting the entry would time other shapes
    assert b["setup_cache"]["inputs_reused"] is False
    assert b["inputs"]["shapes"] == a["inputs"]["shapes"] and b["inputs"] == a["inputs"]
    assert "set-up cache entry" in runs.large.output and "not used" in runs.large.output


# ---------------------------------------------------------------- memory of two model sizes; links below OUT

def test_yolov8x_weighs_at_least_200_mb_more_than_yolov8n_on_cpu(runs):
    """The model's own memory, not the process's: YOLOv8x has 65 M parameters (248 MiB in fp32) more than v8n."""
    small, large = runs.first.raw()["memory"], runs.large.raw()["memory"]
    assert large["model_memory_MB"] - small["model_memory_MB"] >= 200, (small, large)
    assert 240 < large["weights_MB"] - small["weights_MB"] < 256  # (68.2 M - 3.2 M parameters) x 4 B = 248 MiB
    assert small["activation_peak_rss_MB"] >= 0 and small["loop_peak_rss_MB"] > 0


def test_bench_with_a_linked_default_list_writes_nothing_outside_out(runs):
    for run in (runs.first, runs.second, runs.large):
        assert run.result.returncode == 0, run.output
    assert file_tree(runs.other) == runs.other_before
    assert list((runs.out / setup_cache.CACHE_DIRNAME).glob("inputs-*.npy"))
