"""`detbench demo`: workspace, checkpoints, the interleaved study, verdicts, comparison table, plots and the page
(report.html, opened in headless Chromium with the network blocked)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from browser import open_offline, plain_number
from conftest import run_cli

from detbench.cli import parse
from detbench.errors import DetbenchError
from detbench.models.loading import load_model
from detbench.report.schema import load_report
from detbench.workflows.demo import DemoOptions, ensure_checkpoints, ensure_dataset, options_from_args, run_demo

pytestmark = pytest.mark.slow  # subprocesses and whole runs

TINY = ["--imgsz", "64", "--warmup", "1", "--iters", "20", "--study-time", "20", "--val-images", "24", "--threads",
        "1", "--device", "cpu", "--workers-per-model", "1"]  # the demo's default of two costs a second start


MAX_PAGE_BYTES = 2 * 2**20  # the six-model demo's page is about 150 KB
MODELS = ["baseline", "ghost_eca_p2"]  # two of the six keep the test short; the full study is `make demo`


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """A demo at tiny settings in ws/ of a fresh folder: the folder and the run."""
    root = tmp_path_factory.mktemp("demo")
    return root, run_cli("demo", "--workspace", "ws", "--models", ",".join(MODELS), *TINY, cwd=root)


def test_demo_end_to_end_at_tiny_settings(demo_run, tmp_path):
    root, result = demo_run
    models = MODELS
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("detbench demo")
    head = "\n".join(lines[:10])
    assert "imgsz 64" in head and "warmup 1, at least 20 samples per model" in head and "no mAP" in head

    ws = root / "ws"
    data_yaml = ws / "data" / "data.yaml"
    assert len(list((ws / "data" / "images" / "val").glob("*.jpg"))) == 24
    bench = ws / "results" / "bench"
    for name in models:
        loaded = load_model(str(ws / "results" / "runs" / name / "seed0" / "weights" / "best.pt"))
        assert Path(loaded.train_args["data"]) == data_yaml.resolve()
        report = load_report(bench / f"{name}.json").to_dict()
        metadata = report["metadata"]
        assert (metadata["imgsz"], metadata["iters_requested"]) == (64, 20)
        assert metadata["iters"] == len(report["samples"]["latency_ms"]) >= 20  # the turns the study ran

    with (bench / "comparison.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["model"] for row in rows) == sorted(models)
    assert not any("map" in column.lower() for column in rows[0])  # untrained: no accuracy column
    assert "| baseline |" in (bench / "comparison.md").read_text()
    assert r"\texttt{ghost\char95{}eca\char95{}p2}" in (bench / "comparison.tex").read_text()  # CSV, MD and LaTeX
    plots = sorted((bench / "plots").glob("*.png"))
    assert plots and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in plots)
    assert "Base metrics" in result.stdout and "Change relative to baseline" in result.stdout
    assert lines[-1] == f"✓ saved: {Path('ws') / 'results' / 'bench' / 'report.html'}"
    assert 0 < (bench / "report.html").stat().st_size <= MAX_PAGE_BYTES
    study = json.loads((bench / "study.json").read_text())
    assert [m["status"] for m in study["models"]] == ["ok", "ok"]
    (p2,) = study["comparisons"]
    assert p2["model"] == "ghost_eca_p2" and p2["verdict"] == "slower"  # about +60 % even at imgsz 64
    assert "ghost_eca_p2     vs baseline:" in result.stdout and "-> slower" in result.stdout
    assert {row["model"]: row["verdict"] for row in rows} == {"baseline": "baseline", "ghost_eca_p2": "slower"}

    # a second demo reuses the dataset and the checkpoints (and `detbench ablate` skips up-to-date reports)
    said: list[str] = []
    stamp = data_yaml.stat().st_mtime_ns
    assert ensure_dataset(ws / "data", 24, said.append) == (data_yaml, False)
    ensure_checkpoints(tuple(models), ws / "results" / "runs", data_yaml, 0, 64, said.append)
    assert data_yaml.stat().st_mtime_ns == stamp
    assert said == [f"✓ dataset: {data_yaml} (reused: 24 val images)", "✓ checkpoints reused: baseline, ghost_eca_p2"]
    copy = shutil.copytree(ws / "data", tmp_path / "data")  # the workspace stays as it is for the next test
    assert ensure_dataset(copy, 30, said.append) == (copy / "data.yaml", True)  # another size: written anew
    assert len(list((copy / "images" / "val").glob("*.jpg"))) == 30


def test_demo_refuses_unknown_models_and_bad_counts(tmp_path):
    with pytest.raises(DetbenchError, match="not a zoo model"):
        run_demo(DemoOptions(workspace=str(tmp_path), models=("resnet",)), echo=lambda _: None)
    with pytest.raises(DetbenchError, match="--val-images"):
        run_demo(DemoOptions(workspace=str(tmp_path), val_images=0), echo=lambda _: None)
    with pytest.raises(DetbenchError, match="--formats tensorrt: not a backend"):
        run_demo(DemoOptions(workspace=str(tmp_path), formats=("tensorrt",)), echo=lambda _: None)


def test_demo_with_formats_runs_every_model_in_each_backend_and_prints_the_matrix(demo_run):
    """In the workspace of the demo above: its dataset and checkpoints serve again, and the results go to a folder
    of their own. The command line's own behaviour is the test above's: this demo runs in-process (its flags
    parsed as the command line parses them; the study's workers are processes as ever). TorchScript is the backend
    the quickest to export; any would do."""
    root = demo_run[0]
    lines: list[str] = []
    args = parse(["demo", "--workspace", str(root / "ws"), "--models", "baseline", "--formats", "torchscript", *TINY])
    assert run_demo(options_from_args(args), echo=lines.append) == 0, lines
    stdout = "\n".join(lines)
    assert "(reused: 24 val images)" in stdout and "✓ checkpoints reused: baseline" in stdout
    out = root / "ws" / "results" / "bench-torchscript"
    assert {p.name for p in out.glob("*@*.json")} == {"baseline@pytorch.json", "baseline@torchscript.json"}
    assert "Median latency per model and backend" in stdout
    assert (out / "plots" / "latency_by_backend.png").is_file()
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Backend matrix" in page and "torchscript" in page
    matrix = stdout.split("Median latency per model and backend")[1].splitlines()
    assert matrix[1].split() == ["Model", "pytorch", "torchscript"] and matrix[2].startswith("baseline")


def test_the_demo_page_opens_offline_in_chromium_with_the_reports_numbers(demo_run, tmp_path):
    """One load of the demo's report.html, every request but file: and data: aborted: no console error, no request
    out, every cell of the table equal to the reports' and the study's numbers, the plots shown with alt text, the
    page within 390 px; screenshots at 1280 and 390 px kept in the test's folder. A folder without reports is one
    line and writes nothing."""
    root, result = demo_run
    assert result.returncode == 0, result.stdout + result.stderr
    bench = root / "ws" / "results" / "bench"
    run = open_offline(bench / "report.html", tmp_path / "screenshots")
    print(f"screenshots: {', '.join(str(path) for path in run.screenshots)}")
    assert run.console_errors == [] and run.outside_requests == []
    assert all(path.stat().st_size > 10_000 for path in run.screenshots)
    assert run.widths == {1280: 1280, 390: 390}  # the table scrolls in its own box; the page does not
    assert run.verdicts_shown == {1280: True, 390: True}  # on a phone each row is a card, its verdict near the top
    assert "by detbench demo" in run.header

    assert len(run.images) >= 3 and all(image["alt"] and image["width"] > 0 and image["shown"] > 0
                                         for image in run.images), run.images
    study = json.loads((bench / "study.json").read_text())
    comparisons = {item["model"]: item for item in study["comparisons"]}
    assert [row["model"] for row in run.tables] == MODELS
    for row in run.tables:
        report, cells = load_report(bench / f"{row['model']}.json"), row["cells"]
        complexity = report.model_complexity
        numbers = {"params_M": (complexity.params_M, 2),
                   "gflops": (complexity.gflops, 2 if complexity.gflops >= 1 else 3),
                   "median_ms": (report.latency.median_ms, 2), "fps": (report.throughput.fps_mean, 1),
                   "mem_MB": (report.memory.model_memory_MB, 1)}
        for column, (value, digits) in numbers.items():
            assert float(cells[column]["value"]) == value, column
            assert plain_number(cells[column]["text"]).split(" ")[0] == f"{value:.{digits}f}", column
        low, high = report.statistics.median_ci95_ms
        assert (float(cells["median_ms"]["low"]), float(cells["median_ms"]["high"])) == (low, high)
        assert plain_number(cells["median_ms"]["text"]) == f"{report.latency.median_ms:.2f} [{low:.2f}, {high:.2f}]"
        if row["model"] == "baseline":
            assert cells["verdict"]["text"] == "baseline" and cells["delta_pct"]["text"] == "0.0"
            continue
        recorded = comparisons[row["model"]]
        assert cells["verdict"]["text"] == recorded["verdict"] == "slower"
        assert float(cells["delta_pct"]["value"]) == pytest.approx(recorded["delta_pct"], rel=1e-9)
        assert [float(cells["delta_pct"]["low"]), float(cells["delta_pct"]["high"])] == pytest.approx(
            recorded["ci_pct"], rel=1e-9)
        assert plain_number(cells["delta_pct"]["text"]).startswith(
            f"{recorded['delta_pct']:+.1f} [{recorded['ci_pct'][0]:+.1f}, {recorded['ci_pct'][1]:+.1f}]")
        assert float(cells["mde_pct"]["value"]) == pytest.approx(recorded["mde_pct"], rel=1e-9)
        assert cells["mde_pct"]["text"] == f"{recorded['mde_pct']:.1f}"

    missing = run_cli("report", str(tmp_path / "nowhere"))
    empty = run_cli("report", str(tmp_path / "screenshots"))  # a folder without reports
    assert missing.returncode == 2 and missing.stdout == "" and missing.stderr.count("\n") == 1
    assert empty.returncode == 2 and "no benchmark report" in empty.stderr and empty.stderr.count("\n") == 1
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "screenshots" / "report.html").exists()
