"""Faults: signals mid-run, two runs at once, out of memory, an output folder that cannot be written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from detbench.cli import main
from detbench.comparison.analysis import load_entries, report_files
from detbench.config import BenchConfig
from detbench.data.benchmark_list import obtain_list, read_list, sample_list
from detbench.errors import DetbenchError
from detbench.files.atomic import write_text_atomic
from detbench.report.schema import load_report
from detbench.workflows import bench as runner

pytestmark = pytest.mark.slow  # subprocesses and whole runs

QUICK = ["--device", "cpu", "--imgsz", "64", "--warmup", "1", "--threads", "1", "--benchmark_size", "10"]
# the suite's own checkpoint, loaded in this process only: the bounded model check's child (a torch import of its
# own, ended before the list is made) is not what these tests are about
NO_CHECK_CHILD = ["--unsafe-load"]


def spawn(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Ctrl-C as a user's shell delivers it, even where the suite itself runs with SIGINT ignored (a background job)
    return subprocess.Popen([sys.executable, "-m", "detbench.cli", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".write-test"))


def wait_for_line(process: subprocess.Popen, start: str, timeout: float = 240) -> list[str]:
    """Read stdout until a line starting with `start` (the process keeps running)."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith(start):
            return lines
    raise AssertionError(f"never printed {start!r}: {lines}")


def wait_for_inputs(out: Path, timeout: float = 240) -> None:
    """Until the run's decoded inputs are in its set-up cache: its warm-up and timed loop come next."""
    deadline = time.monotonic() + timeout
    while not list((out / ".detbench-cache").glob("inputs-*.json")):
        assert time.monotonic() < deadline, f"{out}: the inputs were never decoded"
        time.sleep(0.05)


# ---------------------------------------------------------------- signals

def test_signal_mid_loop_leaves_no_partial_report_and_the_next_run_is_clean(tmp_path, yaml_checkpoint, dataset,
                                                                            capsys):
    """Ctrl-C, SIGTERM and SIGKILL during a timed loop of 10^6 iterations, three runs side by side."""
    signals = {"int": signal.SIGINT, "term": signal.SIGTERM, "kill": signal.SIGKILL}
    runs = {key: spawn("bench", "--weights", str(yaml_checkpoint), *QUICK, *NO_CHECK_CHILD, "--iters", "1000000",
                       "--time-budget", "86400", "--name", "m",
                       "--out", str(tmp_path / key), cwd=tmp_path) for key in signals}
    try:
        for key, process in runs.items():
            wait_for_line(process, "✓ GFLOPs")  # inputs are decoded next, then the warm-up and the timed loop
            wait_for_inputs(tmp_path / key)
        time.sleep(1)  # the warm-up (one forward) is over: each run is in its timed loop
        for key, process in runs.items():
            assert process.poll() is None, f"{key}: ended before the signal"
            process.send_signal(signals[key])
        results = {key: process.communicate(timeout=120) for key, process in runs.items()}
    finally:  # a failed step must not leave runs of 10^6 iterations burning the CPU
        for process in runs.values():
            if process.poll() is None:
                process.kill()
                process.communicate()

    assert runs["int"].returncode == 130 and runs["term"].returncode == 143
    assert runs["kill"].returncode == -signal.SIGKILL
    for key in ("int", "term"):
        stderr = results[key][1]
        assert "interrupted" in stderr and "Traceback" not in stderr, stderr
    expected = sample_list(dataset, 10, 42)
    for key in signals:
        out = tmp_path / key
        visible = sorted(p.name for p in out.iterdir() if not (p.is_dir() and p.name.startswith(".")))  # caches
        # no report, whole or partial
        assert visible == ["benchmark_list.txt", "benchmark_list.txt.json", "benchmark_list.txt.lock"], key
        assert not list(out.rglob("*.tmp")), key
        assert read_list(out / "benchmark_list.txt").paths == expected.paths  # whole, not half-written

    # A kill in the middle of a write leaves a hidden temporary beside the target; the next run ignores it.
    out = tmp_path / "kill"
    (out / ".benchmark_list.txt.k1ll3d.tmp").write_text("# detbench benchmark list v1\n# seed: 4")
    (out / ".m.json.k1ll3d.tmp").write_text('{"schema_version": 1, "stat')
    assert main(["bench", "--weights", str(yaml_checkpoint), *QUICK, *NO_CHECK_CHILD, "--iters", "3", "--name", "m",
                 "--out", str(out)]) == 0
    assert "✓ loaded benchmark list" in capsys.readouterr().out
    report = load_report(out / "m.json").to_dict()
    assert report["inputs"]["list_sha256"] == expected.sha256
    assert report_files([out]) == [out / "m.json"]


def test_interrupted_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "m.json"
    target.write_text("old")

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("detbench.files.atomic.os.fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(target, "new " * 10_000)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


# ---------------------------------------------------------------- two runs at once

def test_two_runs_at_once_agree_on_one_list_and_both_finish(tmp_path, yaml_checkpoint):
    out = tmp_path / "results" / "bench"
    runs = [spawn("bench", "--weights", str(yaml_checkpoint), *QUICK, *NO_CHECK_CHILD, "--iters", "3", "--name",
                  name, "--out", str(out), cwd=tmp_path) for name in ("a", "b")]
    outputs = [process.communicate(timeout=300) for process in runs]
    assert [process.returncode for process in runs] == [0, 0], [err for _, err in outputs]
    verbs = sorted("created" if "✓ created benchmark list" in stdout else "loaded" for stdout, _ in outputs)
    assert verbs == ["created", "loaded"]
    a, b = load_report(out / "a.json").to_dict(), load_report(out / "b.json").to_dict()
    assert a["inputs"]["list_sha256"] == b["inputs"]["list_sha256"] == read_list(out / "benchmark_list.txt").sha256
    assert leftovers(out) == []


def test_many_threads_creating_the_list_at_once_make_one(tmp_path, dataset):
    path = tmp_path / "benchmark_list.txt"
    barrier = threading.Barrier(4)
    outcomes = []

    def create() -> None:
        barrier.wait()
        outcomes.append(obtain_list(path, dataset, 20, 42, use_existing=False))

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sum(outcome.created for outcome in outcomes) == 1 and len(outcomes) == 4
    assert len({outcome.blist.sha256 for outcome in outcomes}) == 1


# ---------------------------------------------------------------- out of memory

def _oom_above(batch: int, monkeypatch) -> None:
    """Make the timed loop's forward raise CUDA's out-of-memory error for batches of `batch` or more."""
    from detbench.measure import measure as execution

    real = execution.make_forward

    def make_forward(model, mode, device):
        forward = real(model, mode, device)

        def limited(x):
            if x.shape[0] >= batch:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; "
                                                  "79.19 GiB total capacity)")
            return forward(x)

        return limited

    monkeypatch.setattr(execution, "make_forward", make_forward)


def test_out_of_memory_writes_an_oom_report_and_exits_non_zero(tmp_path, yaml_checkpoint, monkeypatch, capsys):
    _oom_above(8, monkeypatch)
    out = tmp_path / "bench"
    args = ["bench", "--weights", str(yaml_checkpoint), *QUICK, *NO_CHECK_CHILD, "--iters", "2", "--out", str(out),
            "--name", "big"]
    assert main([*args, "--batch", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f'error: out of memory at --batch 8, imgsz 64 on cpu; wrote {out / "big.json"} with status "oom"; '
                   f"try a smaller --batch or --imgsz")
    report = load_report(out / "big.json").to_dict()
    assert report["status"] == "oom"
    assert (report["metadata"]["batch"], report["metadata"]["imgsz"], report["metadata"]["model_name"]) == \
           (8, 64, "big")
    assert "Tried to allocate 20.00 GiB" in report["error"] and report["model_complexity"]["params"] > 0
    assert leftovers(out) == []

    warnings: list[str] = []
    with pytest.raises(DetbenchError, match="no readable benchmark report"):
        load_entries(report_files([out]), warnings.append)
    assert len(warnings) == 1 and "big" in warnings[0] and "oom" in warnings[0]

    assert main([*args, "--batch", "2"]) == 0  # a smaller batch fits, and replaces the oom report
    assert load_report(out / "big.json").status == "ok"


def test_host_allocation_failures_count_as_out_of_memory():
    assert runner.is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't "
                                                "allocate memory: you tried to allocate 68719476736 bytes."))
    assert runner.is_out_of_memory(MemoryError())
    assert not runner.is_out_of_memory(RuntimeError("shape mismatch"))


def test_input_cache_too_large_for_host_memory_is_refused_before_decoding(monkeypatch, dataset):
    import psutil

    from detbench.data.inputs import decode_images

    class Scarce:
        available = 100 * 2**20

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Scarce())
    paths = sample_list(dataset, 10, 42).paths
    with pytest.raises(DetbenchError, match=r"--imgsz 4096: 10 letterboxed images need 0\.5 GiB of host memory, "
                                            r"0\.1 GiB is available; lower --imgsz or --benchmark_size"):
        decode_images(paths, 4096)


# ---------------------------------------------------------------- output folder not writable

def _sys_denies_writes() -> bool:
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir="/sys"):
            return False
    except PermissionError:
        return True
    except OSError:
        return False


def _no_loading(*args, **kwargs):
    raise AssertionError("the model was loaded before the output folder was checked")


@pytest.mark.skipif(not _sys_denies_writes(), reason="needs /sys, where even root gets EACCES on create")
def test_permission_denied_is_reported_before_any_work(monkeypatch, capsys):
    """Tests run as root, for whom chmod denies nothing; sysfs refuses file creation to root too (EACCES)."""
    monkeypatch.setattr(runner, "load_model", _no_loading)
    assert main(["bench", "--weights", "yolov8n.yaml", *QUICK, "--out", "/sys/detbench-results"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == ("error: --out /sys/detbench-results: cannot write there (Permission denied); "
                                    "choose a writable folder")
    assert "✓" not in captured.out
    assert not Path("/sys/detbench-results").exists()


def test_output_under_a_file_is_reported_before_any_work(tmp_path, monkeypatch):
    blocker = tmp_path / "results"
    blocker.write_text("a file where the results folder should be")
    monkeypatch.setattr(runner, "load_model", _no_loading)
    cfg = BenchConfig(weights="yolov8n.yaml", device="cpu", out=str(blocker / "bench"))
    with pytest.raises(DetbenchError, match=rf"^--out {blocker}/bench: {blocker} is a file, not a folder; choose "
                                            r"another --out$"):
        runner.run_bench(cfg, echo=lambda line: None)
    assert blocker.read_text().startswith("a file")
    assert json.dumps(sorted(p.name for p in tmp_path.iterdir())) == '["results"]'
