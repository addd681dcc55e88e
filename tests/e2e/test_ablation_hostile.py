"""`detbench ablate` against awkward folders, stale files, concurrent and killed studies, and killed or hung workers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import process_table, run_cli

from detbench.cli import parse
from detbench.data.artifacts import save_untrained
from detbench.errors import DetbenchError
from detbench.report.schema import load_report
from detbench.study.ablation import run_ablation
from detbench.study.channel import ChannelTimeout, LineReader
from detbench.study.lock import study_lock
from detbench.study.models import discover_runs
from detbench.study.options import StudyConfig

pytestmark = pytest.mark.slow  # subprocesses and whole runs

QUICK = ["--device", "cpu", "--imgsz", "64", "--warmup", "1", "--iters", "20", "--threads", "1", "--quiet",
         "--workers-per-model", "1", "--no-until-decided"]


def _run_folder(runs: Path, name: str, checkpoint: Path) -> Path:
    best = runs / name / "seed0" / "weights" / "best.pt"
    best.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(checkpoint, best)
    return best


@pytest.mark.parametrize("name, problem", [
    ("-x", r"starts with '-' \(it would be read as a flag\)"),
    ("study", r"is reserved for detbench's own files"),
    ("Benchmark_List", r"is reserved for detbench's own files"),
    ("m" * 250, r"is 250 bytes long, above 200"),
    ("bad\u2028name", r"holds the control or line-separator character"),
])
def test_run_folder_names_that_cannot_name_a_report_are_refused_up_front(tmp_path, name, problem):
    best = tmp_path / "runs" / name / "seed0" / "weights" / "best.pt"
    best.parent.mkdir(parents=True)
    best.write_bytes(b"x")
    with pytest.raises(DetbenchError, match=problem) as info:
        discover_runs(tmp_path / "runs")
    assert "rename its run folder" in str(info.value) and "\n" not in str(info.value)


def _ablate(*args: str) -> tuple[int, str]:
    """`detbench ablate ARGS` as its command line reads them, run in this process (its workers are processes as
    ever): the exit status and what it said. For the resume's decisions, which a process of its own adds nothing
    to."""
    lines: list[str] = []
    code = run_ablation(StudyConfig.from_args(parse(["ablate", *args])), echo=lines.append)
    return code, "\n".join(lines)


def test_resume_skips_a_finished_study_and_runs_it_again_for_force_or_replaced_weights(tmp_path, yaml_checkpoint,
                                                                                        dataset):
    """Up to date: skipped, nothing rewritten. --force: run again. Weights replaced by `cp -p` of another model
    (an older mtime): the weights' sha256 tells them apart and the study runs again. (How the weights are loaded
    is no part of it: --unsafe-load spares each worker its bounded check.)"""
    runs, out = tmp_path / "runs", tmp_path / "bench"
    best = _run_folder(runs, "baseline", yaml_checkpoint)
    args = ["--runs", str(runs), "--out", str(out), "--data", str(dataset), "--unsafe-load", *QUICK]
    code, said = _ablate(*args)
    assert code == 0, said
    assert "running the study: no study yet" in said
    report = out / "baseline.json"
    written = report.stat().st_mtime_ns
    code, said = _ablate(*args)
    assert code == 0, said
    assert "is up to date" in said and "worker processes ready" not in said
    assert report.stat().st_mtime_ns == written
    code, said = _ablate(*args, "--force")
    assert code == 0 and "running the study: --force" in said
    assert report.stat().st_mtime_ns != written
    digest = load_report(report).metadata.weights_sha256
    ghost = save_untrained("ghost", tmp_path / "ghost.pt", dataset)
    os.utime(ghost, (1, 1))  # as `cp -p` of an old file would leave it
    shutil.copy2(ghost, best)
    code, said = _ablate(*args)
    assert code == 0, said
    assert "running the study: the models, weights, settings, list or design changed" in said
    assert load_report(report).metadata.weights_sha256 != digest


def _children_of(pid: int) -> list[int]:
    return [child for child, (parent, _started) in process_table().items() if parent == pid]


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _slow_ablate(tmp_path: Path, dataset: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "detbench.cli", "ablate", "--models", "baseline", "--out", str(out),
                             "--data", str(dataset), "--device", "cpu", "--imgsz", "64", "--warmup", "1", "--iters",
                             "1000000", "--time-budget", "86400", "--threads", "1", "--quiet", "--no-until-decided"],
                            cwd=tmp_path,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_killed_studies_leave_no_orphans_and_no_lock(tmp_path, dataset):
    """(A second study in a running study's folder is refused in the killed-worker test below.)"""
    out = tmp_path / "bench"
    study = _slow_ablate(tmp_path, dataset, out)
    try:
        # the worker has said its pid: it runs, bound to die with its parent
        assert _wait_for(lambda: _worker_pid(out / ".study" / "w0.log"), 60), "the worker never started"
        children = _children_of(study.pid)
        assert children, "the study has no model process"
        os.kill(study.pid, signal.SIGKILL)
        study.wait(timeout=30)
        assert _wait_for(lambda: not any(_alive(child) for child in children), 15), "a model outlived its study"
    finally:
        if study.poll() is None:
            study.kill()
        study.communicate(timeout=30)
    with study_lock(out):  # what the next study takes first: the kernel released it with the killed process
        pass


def _interruptible() -> None:
    """Ctrl-C as at a terminal, even when the suite was started where SIGINT is ignored (a background job)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _worker_pid(log: Path) -> int | None:
    """The pid a study worker wrote at the top of its log."""
    try:
        first = log.read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return None
    return int(first.rsplit("pid ", 1)[1]) if "pid " in first else None


def test_a_second_study_in_one_folder_is_refused_and_a_killed_worker_process_is_lost_and_the_other_goes_on(
        tmp_path, dataset):
    """How the workers load is no part of it: --unsafe-load spares each its bounded check."""
    out = tmp_path / "bench"
    study = subprocess.Popen([sys.executable, "-m", "detbench.cli", "ablate", "--models", "baseline,ghost", "--out",
                              str(out), "--data", str(dataset), "--device", "cpu", "--imgsz", "64", "--warmup", "1",
                              "--iters", "100000", "--threads", "1", "--no-until-decided", "--workers-per-model", "2",
                              "--time-budget", "86400", "--unsafe-load"], cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, preexec_fn=_interruptible)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(study.stdout), daemon=True)  # every line, as it comes
    reader.start()
    try:
        # the study holds its folder's lock before it starts any model: a second one is refused (while the
        # models load)
        assert _wait_for(lambda: _children_of(study.pid), 60), "the study never started its models"
        second = run_cli("ablate", "--models", "baseline", "--out", str(out), "--data", str(dataset), *QUICK,
                         cwd=tmp_path)
        assert second.returncode == 2
        assert "error: --out" in second.stderr and "another study is running in this folder (pid " \
            f"{study.pid}" in second.stderr
        assert _wait_for(lambda: any("worker processes ready and warm" in line for line in lines), 300), lines
        lost, kept = (_worker_pid(out / ".study" / f"w{k}.log") for k in (1, 0))  # the workers take turns now
        assert lost is not None and kept is not None and _alive(lost)
        os.kill(lost, signal.SIGKILL)
        # said as soon as the study sees it (not after a fixed wait, which a busy machine can outlast); worker 0 goes
        # on with both models
        assert _wait_for(lambda: any("✗ worker 1 lost" in line for line in lines), 60), lines
        study.send_signal(signal.SIGINT)
        study.wait(timeout=60)
        reader.join(timeout=30)
        stdout, stderr = "".join(lines), study.stderr.read()
    finally:
        if study.poll() is None:
            study.kill()
            study.communicate(timeout=30)
    said = next((line for line in stdout.splitlines() if "✗ worker 1 lost: killed by signal 9" in line), "")
    assert said.endswith("its turns of this generation are left out, 1 worker process(es) go on"), stdout + stderr
    assert "✗ baseline failed" not in stdout and "✗ ghost failed" not in stdout
    assert study.returncode == 130 and "interrupted" in stdout
    assert not (out / "baseline.json").exists()  # an interrupted study writes no report
    assert _wait_for(lambda: not _alive(kept), 15), "a worker outlived its interrupted study"


def test_a_worker_that_does_not_answer_is_given_up_on_at_its_deadline():
    read_fd, write_fd = os.pipe()
    try:
        start = time.monotonic()
        with pytest.raises(ChannelTimeout, match="no answer within 0.3 s"):
            LineReader(read_fd).read(0.3)
        assert time.monotonic() - start < 5
        os.write(write_fd, b'{"ms": 1.5}\n{"partial"')
        reader = LineReader(read_fd)
        assert reader.read(1.0) == {"ms": 1.5}
        with pytest.raises(ChannelTimeout):
            reader.read(0.2)  # half a line is not an answer
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_work_folder_that_is_a_symlink_is_refused(tmp_path, dataset):
    out = tmp_path / "bench"
    out.mkdir()
    (out / ".study").symlink_to(tmp_path)
    result = run_cli("ablate", "--models", "baseline", "--out", str(out), "--data", str(dataset), *QUICK, cwd=tmp_path)
    assert result.returncode == 2
    assert ".study is a symlink, and detbench follows no link below the output folder" in result.stderr


def test_a_folder_where_a_result_file_goes_is_refused_up_front(tmp_path, dataset):
    out = tmp_path / "bench"
    (out / "study.json").mkdir(parents=True)
    result = run_cli("ablate", "--models", "baseline", "--out", str(out), "--data", str(dataset), *QUICK, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "study.json exists and is not a regular file" in result.stderr
