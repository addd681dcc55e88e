"""The user's workflow where the user runs it: a project folder holding results/runs/ of trained checkpoints and a
clone of this repository named detbench/, the README's commands in the README's order, the spec's scripts; the
working folder's .py files and detbench/ folder never run inside detbench's children."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, run_command
from tripwires import plant

SMALL = ["--device", "cpu", "--imgsz", "64", "--warmup", "2", "--iters", "10", "--benchmark_size", "10",
         "--threads", "1"]
STUDY = ["--device", "cpu", "--imgsz", "64", "--warmup", "2", "--iters", "20", "--benchmark_size", "10",
         "--threads", "1", "--workers-per-model", "1", "--no-until-decided"]


@pytest.fixture(scope="module")
def project(tmp_path_factory, trained_run) -> Path:
    """results/runs/{baseline,ghost}/seed0 (one Ultralytics training, twice: the names are what the commands see)
    and a clone-like detbench/ folder (no __init__.py: a namespace package if Python ever looked there), whose
    modules are tripwires."""
    root = tmp_path_factory.mktemp("project")
    for name in ("baseline", "ghost"):
        shutil.copytree(trained_run, root / "results" / "runs" / name / "seed0")
    clone = root / "detbench"
    (clone / "scripts").mkdir(parents=True)
    (clone / "README.md").write_text("# detbench\n")
    plant(clone, root / "shadow-ran.txt", ("cli.py", "api.py", "proc.py", "__main__.py", "study/cli.py",
                                           "study/__main__.py"))
    return root


ISOLATED = {"PYTHONPATH": None, "PYTHONSAFEPATH": None}  # the children's import path is the one under test


def run(command: list[str], cwd: Path, timeout: int = 600,
        pythonpath: str | None = None) -> subprocess.CompletedProcess:
    return run_command(command, cwd=cwd, env={**ISOLATED, "PYTHONPATH": pythonpath}, timeout=timeout)


def script(name: str, *args: str) -> list[str]:
    if name.endswith(".sh"):
        return ["bash", str(REPO / "scripts" / name), *args]
    return [sys.executable, str(REPO / "scripts" / name), *args]


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stdout + result.stderr
    return result.stdout


def readme_api_snippet() -> str:
    """The README's API example, at a tiny size on the CPU."""
    readme = (REPO / "README.md").read_text()
    code = re.search(r"```python\n(import detbench\n.*?)```", readme, re.S).group(1)
    assert code.count('imgsz=640, device="0"') == 2, code
    return code.replace('imgsz=640, device="0"', 'imgsz=64, device="cpu", warmup=2, iters=10, benchmark_size=10, '
                                                 'threads=1')


def test_the_quick_start_runs_as_written_in_a_project_folder_with_a_clone(project, monkeypatch):
    """And while the commands that start detbench's children run, the project folder also holds resource.py
    (imported by the bounded check) and runpy.py (by every `python -m`); the study runs with an empty PYTHONPATH
    entry too (as `PYTHONPATH=$PYTHONPATH:/x` leaves: the working folder): none of them runs in the study's
    coordinator, its bounded check or its workers, nor in a bench's bounded check."""
    bench = project / "results" / "bench"
    marker = project / "ran.txt"
    planted = plant(project, marker, ("resource.py", "runpy.py"))
    first = ok(run(script("benchmark_model.py", "--weights", "results/runs/baseline/seed0/weights/best.pt", *SMALL),
                   project))
    assert "✓ created benchmark list: results/bench/benchmark_list.txt" in first
    ok(run(script("benchmark_model.py", "--weights", "results/runs/ghost/seed0/weights/best.pt", *SMALL,
                  "--use_benchmark_list"), project))
    separate = {name: (bench / f"{name}.json").read_bytes() for name in ("baseline", "ghost")}

    # the study replaces neither silently nor refuses: each separate run is kept, and said so
    studied = ok(run(script("batch_benchmark.sh", *STUDY), project, pythonpath=f"{os.pathsep}/nonexistent"))
    for name in ("baseline", "ghost"):
        assert f"kept the separate run of {name} as results/bench/separate_runs/{name}.json" in studied
        assert (bench / "separate_runs" / f"{name}.json").read_bytes() == separate[name]
        assert json.loads((bench / f"{name}.json").read_text())["study"]
    assert json.loads((bench / "ghost.json").read_text())["metadata"]["iters"] == 20  # what ran: 20 rounds
    assert not marker.exists(), marker.read_text()
    # the payloads are real: `python -m`, as the children were started before, runs them
    control = run([sys.executable, "-m", "detbench.checkpoint.model_check"], project, timeout=60)
    assert control.returncode == 97 and marker.exists()
    for path in planted:  # a `python -c` or `python -m` of the user's own would import them, as Python does
        path.unlink()

    # compare --output: the CSV, the Markdown and LaTeX beside it, and the plots in its folder
    compared = ok(run(script("compare_benchmarks.py", "--output", "results/bench/comparison.csv"), project))
    for suffix in (".csv", ".md", ".tex"):
        assert (bench / f"comparison{suffix}").is_file() and f"comparison{suffix}" in compared
    assert sorted(p.name for p in (bench / "plots").glob("*.png"))
    assert "\\`" not in (bench / "comparison.md").read_text()

    # the README's API example as it stands, from the project folder (in this process: its own start is that of
    # `python -m detbench.cli clean` below, which also puts the folder first on the import path)
    api = project / "api"
    snippet = readme_api_snippet().replace('r.save("results/api")', f'r.save({str(api)!r})')
    with monkeypatch.context() as here:
        here.chdir(project)
        exec(snippet, {})
    assert json.loads((api / "ghost.json").read_text())["metadata"]["model_name"] == "ghost"

    # a backend without --name gets NAME@FORMAT: the PyTorch run's report is not touched
    pytest.importorskip("onnxruntime")
    before = (bench / "baseline.json").read_bytes()
    onnx = ok(run(script("benchmark_model.py", "--weights", "results/runs/baseline/seed0/weights/best.pt", *SMALL,
                         "--use_benchmark_list", "--format", "onnx"), project))
    assert "✓ saved: results/bench/baseline@onnx.json" in onnx
    assert (bench / "baseline.json").read_bytes() == before

    # the spec's test command, from the project folder, in one pytest process (-p no:xdist): the whole suite
    # collected (tests: the repository's, as the folder has none) and one file's tests run (a path from here)
    budget_tests = REPO / "tests" / "unit" / "study" / "test_budget.py"
    tested = ok(run(script("test_benchmark.py", "tests", str(budget_tests), "-k", "test_budget", "-p", "no:xdist",
                           "-p", "no:cacheprovider"), project)).splitlines()[-1]
    assert re.fullmatch(r"\d+ passed, \d+ deselected in .*", tested), tested

    # the helper files, named in the README, go with one command; the results stay
    helpers = [bench / ".detbench-cache", bench / "benchmark_list.txt.lock", bench / ".detbench-study.lock"]
    assert all(os.path.lexists(path) for path in helpers)
    cleaned = ok(run([sys.executable, "-m", "detbench.cli", "clean"], project))
    assert "✓ removed results/bench/.detbench-cache" in cleaned
    assert not any(os.path.lexists(path) for path in helpers)
    assert {p.name for p in bench.glob("*.json")} >= {"baseline.json", "ghost.json", "study.json",
                                                      "baseline@onnx.json"}
    assert not (project / "shadow-ran.txt").exists()


def test_a_namespace_detbench_is_refused_in_one_line(tmp_path):
    """An installation where a folder named detbench/ without __init__.py wins (the editable finder of a flat
    layout did that): the command line refuses to run as that namespace package, in one line."""
    package = Path(__import__("detbench").__file__).parent
    code = ("import sys, types; shadow = types.ModuleType('detbench'); shadow.__path__ = [" + repr(str(package))
            + ", " + repr(str(tmp_path)) + "]; sys.modules['detbench'] = shadow; "
            "from detbench.cli import main; sys.exit(main(['--version']))")
    result = run([sys.executable, "-c", code], tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: 'detbench' was imported from {package}, {tmp_path}, a folder without "
                           "__init__.py that shadows the installed package;"), line
