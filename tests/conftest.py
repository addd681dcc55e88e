"""Session fixtures: real images, real checkpoints (saved from YAML and trained by Ultralytics)."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from detbench.data.artifacts import make_dataset, save_untrained, train_tiny
from detbench.models.ultralytics_env import configure_process


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


def run_cli(*args: str, cwd: Path | str | None = None, timeout: int = 600,
            script: str | None = None) -> subprocess.CompletedProcess:
    """Run `python -m detbench.cli ARGS` (or a scripts/ file) as a user would, capturing output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, str(REPO / "scripts" / script)] if script else [sys.executable, "-m",
                                                                              "detbench.cli"]
    return subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


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


SLOW_FIXTURES = {"cli", "trained_run", "trained_best", "real_reports", "real_report", "rounds_report", "two_reports",
                 "measured"}


E2E = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(items) -> None:
    """Every test under tests/e2e is `slow`, and so is any test that runs the CLI, trains, or builds reports through
    the CLI: the unit tier (`pytest -m "not slow"`, or `pytest tests/unit`) starts none of that."""
    for item in items:
        if E2E in Path(item.path).parents or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
