"""A bench beside competing processes warns that the CPU is busy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def _lowest_priority() -> None:
    os.nice(19)


@pytest.mark.slow
def test_bench_beside_competing_processes_warns_cpu_busy(cli, tmp_path, yaml_checkpoint):
    """Processes that spin on every core the test may use, then a bench: the report and the console say so. The
    spinners run at the lowest priority: always runnable (so they compete, and are counted), they take the core
    only when the bench leaves it, and the test takes no longer than the bench itself. The bounded check of the
    weights is not what this test is about: --unsafe-load loads them in the bench's own process."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=_lowest_priority)
                for _ in range(cores + 1)]
    try:
        result = cli("bench", "--weights", str(yaml_checkpoint), "--device", "cpu", "--imgsz", "64", "--warmup",
                     "2", "--iters", "30", "--threads", "1", "--unsafe-load", "--out", str(tmp_path / "o"))
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "o" / "yolov8n.json").read_text())
    assert report["host_load"]["other_runnable_max"] >= 1
    busy = [w for w in report["warnings"] if w.startswith("CPU busy")]
    assert busy and "other programs compete with the benchmark" in busy[0], report["warnings"]
    assert "warning: CPU busy" in result.stdout
