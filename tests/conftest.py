"""Session fixtures: real images, real checkpoints (saved from YAML and trained by Ultralytics)."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from detbench.comparison.run import run_compare
from detbench.data.artifacts import make_dataset, save_untrained, train_tiny
from detbench.data.benchmark_list import LIST_FILENAME, sample_list, write_list
from detbench.models.ultralytics_env import configure_process
from detbench.report.model import SCHEMA_VERSION, Report
from detbench.report.schema import validate_report, write_report
from detbench.stats.summary import summarize


def _own_cores_per_pytest_worker() -> None:
    """Under `pytest -n N`, worker k keeps every N-th core from k: the processes its tests start inherit that,
    so studies of two workers (which pin to the last cores they may use) never time on the same core."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not (worker and count and hasattr(os, "sched_setaffinity")):
        return
    cores = sorted(os.sched_getaffinity(0))
    mine = cores[int(worker.removeprefix("gw")) % len(cores)::int(count)]
    if mine:
        os.sched_setaffinity(0, mine)


_own_cores_per_pytest_worker()
# Ultralytics writes its settings file on import: each test process (pytest worker) and its children get their
# own folder, unless the user chose one; a worker replaces the one it inherited from pytest's main process
if "YOLO_CONFIG_DIR" not in os.environ or os.environ.get("DETBENCH_TESTS_YOLO_DIR") == os.environ["YOLO_CONFIG_DIR"]:
    os.environ["YOLO_CONFIG_DIR"] = os.environ["DETBENCH_TESTS_YOLO_DIR"] = tempfile.mkdtemp(
        prefix="detbench-tests-yolo-")
    atexit.register(shutil.rmtree, os.environ["YOLO_CONFIG_DIR"], ignore_errors=True)
# exported models (--format) are cached per user: the test run keeps them in a private folder of its own
# (made by pytest's main process, shared by its workers, which end before it)
if "DETBENCH_TESTS_CACHE_DIR" not in os.environ:
    os.environ["DETBENCH_CACHE_DIR"] = os.environ["DETBENCH_TESTS_CACHE_DIR"] = tempfile.mkdtemp(
        prefix="detbench-tests-cache-")
    atexit.register(shutil.rmtree, os.environ["DETBENCH_CACHE_DIR"], ignore_errors=True)
configure_process()  # offline, quiet, restricted: before any test imports Ultralytics

pytest_plugins = ("rect_forgery",)  # its fixture: the images of the --rect forgery tests
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    """data.yaml of a synthetic dataset: 16 train and 60 val images of mixed sizes."""
    return make_dataset(tmp_path_factory.mktemp("data"), n_train=16, n_val=60, seed=1)


@pytest.fixture(scope="session")
def yaml_checkpoint(tmp_path_factory, dataset) -> Path:
    """YOLOv8n built from yolov8n.yaml, saved with train_args['data'] pointing at `dataset`."""
    return save_untrained("yolov8n.yaml", tmp_path_factory.mktemp("ckpt") / "yolov8n.pt", dataset)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, dataset) -> Path:
    """A 1-epoch Ultralytics training at imgsz 64: runs/baseline/seed0/{weights/best.pt,results.csv}."""
    root = tmp_path_factory.mktemp("runs")
    return train_tiny("yolov8n.yaml", dataset, root / "runs" / "baseline", "seed0")


@pytest.fixture(scope="session")
def trained_best(trained_run) -> Path:
    return trained_run / "weights" / "best.pt"


@pytest.fixture(scope="session")
def trained_seeds(trained_run, dataset) -> Path:
    """RUNS/{baseline,ghost}/seed{0,1,2}: `trained_run` and two more 1-epoch trainings (seeds 1 and 2) of the same
    YOLOv8n, each run under both names (the names are what compare sees); returns RUNS."""
    runs = trained_run.parent.parent.parent / "seeded"
    shutil.copytree(trained_run, runs / "baseline" / "seed0")
    for seed in (1, 2):
        train_tiny("yolov8n.yaml", dataset, runs / "baseline", f"seed{seed}", seed=seed)
    shutil.copytree(runs / "baseline", runs / "ghost")
    return runs


def run_command(command: Sequence[str], *, cwd: Path | str | None = None, env: Mapping[str, str | None] | None = None,
                timeout: float = 600, preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess:
    """Run `command` as a user would, its output captured as text, stopped after `timeout` seconds. `env` changes
    this process's environment for it: a string sets a variable, None removes it."""
    changed = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    environment = {key: value for key, value in changed.items() if value is not None}
    return subprocess.run(list(command), cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=preexec_fn)


def run_cli(*args: str, cwd: Path | str | None = None, timeout: float = 600, script: str | None = None,
            env: Mapping[str, str | None] | None = None,
            preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess:
    """Run `python -m detbench.cli ARGS` (or a scripts/ file) as a user would: `run_command`'s options."""
    command = [sys.executable, str(REPO / "scripts" / script)] if script else [sys.executable, "-m",
                                                                              "detbench.cli"]
    return run_command([*command, *args], cwd=cwd, env=env, timeout=timeout, preexec_fn=preexec_fn)


def file_tree(root: Path) -> dict[str, bytes | None]:
    """Every path below `root` with its bytes (None for a folder)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def linked_list(tmp_path: Path, dataset: Path) -> tuple[Path, Path, list[str]]:
    """OUT/benchmark_list.txt -> ../other/benchmark_list.txt (a valid list with its sidecar beside both)."""
    other, out = tmp_path / "other", tmp_path / "OUT"
    other.mkdir()
    out.mkdir()
    blist = sample_list(dataset, 4, 42)
    write_list(blist, other / LIST_FILENAME)
    os.symlink(f"../other/{LIST_FILENAME}", out / LIST_FILENAME)
    os.symlink(f"../other/{LIST_FILENAME}.json", out / f"{LIST_FILENAME}.json")
    return other, out, list(blist.paths)


def alive(pid: int) -> bool:
    """The process runs (it exists and is not a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def gone_within(pids: list[int], seconds: float) -> list[int]:
    """The processes of `pids` still alive after waiting up to `seconds` for them to end."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.1)
    return [pid for pid in pids if alive(pid)]


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time in clock ticks) of every process, from /proc/PID/stat."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            table[int(entry.name)] = (int(fields[1]), fields[19])
    return table


@pytest.fixture
def cli():
    return run_cli


SLOW_FIXTURES = {"cli", "trained_run", "trained_best", "trained_seeds", "real_reports", "real_report", "rounds_report",
                 "two_reports", "measured"}


E2E = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(items) -> None:
    """Every test under tests/e2e is `slow`, and so is any test that runs the CLI, trains, or builds reports through
    the CLI: the unit tier (`pytest -m "not slow"`, or `pytest tests/unit`) starts none of that."""
    for item in items:
        if E2E in Path(item.path).parents or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


# ---------------------------------------------------------------- reports built in memory (the typed report factory)

def make_report(name: str, samples, *, params_m: float = 3.0, gflops: float = 8.0, mem: float = 500.0,
                rounds: list[list[float]] | None = None, weights: str | None = None, **meta) -> dict:
    """A valid report whose latency summary is computed from `samples` (or from `rounds`, concatenated)."""
    if rounds is not None:
        samples = [x for chunk in rounds for x in chunk]
    summary = summarize(samples)
    report = {
        "schema_version": SCHEMA_VERSION, "status": "ok",
        "metadata": {"model_name": name, "weights": weights or f"{name}.pt", "model_source": "checkpoint",
                     "imgsz": 640, "batch": 1, "device": "cpu", **meta},
        "model_complexity": {"params_M": params_m, "gflops": gflops},
        "latency": {**summary, "n_samples": len(samples)},
        "throughput": {"fps_mean": 1000.0 / summary["mean_ms"], "fps_p50": 1000.0 / summary["p50_ms"]},
        "memory": {"peak_gpu_mem_MB": None, "peak_rss_MB": 900.0, "model_memory_MB": mem, "unit": "MiB"},
        "inputs": {"list_sha256": "a" * 64, "decoded_sha256": "b" * 64, "n_images": 200},
        "settings": {"threads": 2, "precision": "fp32"},
        "environment": {"cpu": "Test CPU", "ultralytics": "8.4.190"},
        "samples": {"latency_ms": list(samples)},
    }
    if rounds is not None:
        report["rounds"] = [{"round": k + 1, "median_ms": float(np.median(chunk)), "mean_ms": float(np.mean(chunk)),
                             "n": len(chunk)} for k, chunk in enumerate(rounds)]
    return report


def save(folder: Path, report: dict) -> Path:
    return write_report(report, folder / f"{report['metadata']['model_name']}.json")


def spread(center: float, n: int = 30, rel: float = 0.02) -> list[float]:
    """Deterministic samples symmetric around `center` (their mean is `center`)."""
    offsets = np.linspace(-rel, rel, n)
    return list(center * (1.0 + offsets))


def table_row(lines: list[str], header: str, model: str, nth: int = 0) -> list[str]:
    """Cells of `model`'s row in the nth console table whose header contains `header`."""
    starts = [i for i, line in enumerate(lines) if line.startswith("Model") and header in line]
    for line in lines[starts[nth] + 1:]:
        if not line or line.startswith(("Model", "Change", "Sig.", "Group", "Base")):
            break
        if line.split()[0] == model:
            return line.split()
    raise AssertionError(f"{model} not in table {header!r}")


def captured(**kwargs) -> tuple[int, list[str], list[str]]:
    lines: list[str] = []
    warnings: list[str] = []
    code = run_compare(echo=lines.append, warn=warnings.append, **kwargs)
    return code, lines, warnings


def study_report(name: str, factor: float, rounds: int = 60, study_id: str = "s1", seed: int = 0) -> dict:
    """A report as an interleaved study writes it: two workers, one sample per round each, with pairing lists."""
    rng = np.random.default_rng(seed)
    drift = np.cumsum(np.random.default_rng(99).normal(0, 0.01, rounds))  # shared by every model of the study
    latency, round_index, worker = [], [], []
    for w in (0, 1):
        for r in range(rounds):
            latency.append(float(10.0 * factor * np.exp(drift[r] + rng.normal(0, 0.02))))
            round_index.append(r)
            worker.append(w)
    report = make_report(name, latency)
    report["samples"].update(round=round_index, worker=worker)
    report["study"] = {"id": study_id, "baseline": "baseline", "planned_looks": [rounds], "looks_at_rounds": [rounds],
                       "alpha": 0.05, "min_effect": 0.02, "models": list(STUDY_MODELS),
                       "finished_models": list(STUDY_MODELS)}
    return report


STUDY_MODELS = ("baseline", "p2", "twin")


def typed_report(name: str = "baseline", samples=(10.0, 10.5, 11.0, 9.5, 10.2), **fields) -> Report:
    """make_report as the typed `Report` detbench reads (validated as a report read from disk is)."""
    return Report.from_dict(validate_report(make_report(name, list(samples), **fields)))


def one_line_error(exc: pytest.ExceptionInfo | BaseException | str) -> str:
    """The message of a DetbenchError (or a process's stderr): exactly one line, no traceback; the line."""
    text = str(exc.value) if isinstance(exc, pytest.ExceptionInfo) else str(exc)
    text = text.removesuffix("\n")
    assert text and "\n" not in text and "Traceback" not in text, text
    return text
