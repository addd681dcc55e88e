"""One study of a sweep, run as `detbench ablate` in a child process: the same on a local CPU or GPU and in a Ray
task. The child is tied to the caller (it dies with it, and its whole tree is killed when it overruns or is
interrupted); its output goes to the study folder's `ablate.log`."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import stat
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from detbench.errors import DetbenchError
from detbench.files.out_tree import folder_below
from detbench.proc import kill_tree, python_module, spawn_child
from detbench.report.model import Gpu
from detbench.report.schema import load_report
from detbench.report.study_record import STUDY_FILE, StudyRecord, read_study_record
from detbench.study.lock import unless_study_running
from detbench.study.options import StudyConfig

LOG_NAME = "ablate.log"
MAX_RESULT_BYTES = 1024 * 2**20  # what one study may send back to the driver


def node_record(out: Path, device: str) -> dict[str, Any]:
    """Where the study ran, as its own reports recorded it (made in the study's processes, on its device):
    hostname, CPU model, and the GPU's name and driver when it ran on one. Only the reports of the models of
    this very study.json count (a folder may still hold reports of models a sweep no longer lists)."""
    record: dict[str, Any] = {"hostname": platform.node(), "device": device}
    study = _study_record(out)
    if study is None:
        return record
    for name in study.model_names():
        if not result_name_ok(f"{name}.json"):
            continue
        try:
            report = load_report(out / f"{name}.json")
        except DetbenchError:
            continue
        if report.study is None or report.study.id != study.id:
            continue
        environment, gpu = report.environment, report.gpu or Gpu()
        record.update(hostname=environment.hostname, cpu=environment.cpu)
        if device != "cpu":
            record.update(gpu_name=gpu.name or environment.gpu_name, driver=gpu.driver)
        break
    return record


def _study_record(out: Path) -> StudyRecord | None:
    with contextlib.suppress(DetbenchError):
        return read_study_record(out / STUDY_FILE)
    return None


def _last_line(log: Path) -> str:
    try:
        with open(log, "rb") as handle:
            handle.seek(max(0, os.path.getsize(log) - 8192))
            lines = [line for line in handle.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return "no output"
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["no output"])[-1][:300]


def run_study_child(config: StudyConfig, out: Path, list_path: Path, device: str, timeout_s: float,
              env: dict[str, str] | None = None, python: str = sys.executable) -> dict[str, Any]:
    """`detbench ablate` of `config` into `out` on `device`; its outcome: status ("ok", "failed", "timeout",
    "interrupted"), the reason when not ok, the exit code, seconds, and where it ran. `out` is made if missing
    and must not be a link; the folders above it are the caller's to check (`files.out_tree`)."""
    folder_below(out.parent, out.name)  # a real folder, not a link (its parent: the caller's, checked there)
    with unless_study_running(out) as free:  # a probe, released at once: the study takes the lock itself
        if not free:
            raise OSError(f"another study is running in {out}; wait for it, or stop it")
    # the sweep's content key decided this study runs: --force, so that ablate's own (narrower) key neither skips
    # it nor refuses the reports of other settings left there; the old study.json goes first, so that only this
    # run's can count as done
    with contextlib.suppress(FileNotFoundError):
        os.unlink(out / STUDY_FILE)
    config = replace(config, out=str(out), reuse_list=True, list_path=str(list_path), quiet=True, force=True,
                     bench={**config.bench, "device": device})
    command = [*python_module(python, "detbench.cli", "ablate"), *config.argv()]
    began = time.monotonic()
    fd = os.open(out / LOG_NAME, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{out / LOG_NAME} is not a regular file; remove it")
    os.ftruncate(fd, 0)
    with os.fdopen(fd, "wb") as log:
        log.write((" ".join(command) + "\n").encode())
        log.flush()
        child = spawn_child(command, extra_env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            code = child.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_tree(child)
            code = None
        except BaseException:
            kill_tree(child)
            raise
    outcome: dict[str, Any] = {"exit_code": code, "seconds": round(time.monotonic() - began, 3),
                               "node": node_record(out, device)}
    recorded = _study_record(out)
    if code is None:
        outcome.update(status="timeout", reason=f"the study ran past {timeout_s:g} s and was stopped")
    elif code == 0 and isinstance(recorded, dict) and recorded.get("status") == "ok":
        outcome.update(status="ok", reason=None, study_id=recorded.get("id"))
    elif code == 130:
        outcome.update(status="interrupted", reason="interrupted")
    else:
        outcome.update(status="failed", reason=_last_line(out / LOG_NAME))
    return outcome


def outcome_line(name: str, outcome: dict[str, Any], with_node: bool = False) -> str:
    """The progress line of a study's outcome (`with_node`: and the host it ran on, for a remote one)."""
    node = outcome.get("node") if with_node and isinstance(outcome.get("node"), dict) else None
    return (f"{'✓' if outcome['status'] == 'ok' else '✗'} {name}: {outcome['status']}"
            + (f" in {outcome['seconds']:.0f} s" if outcome.get("seconds") is not None else "")
            + (f" on {node.get('hostname')}" if node else "")
            + (f" ({outcome['reason']})" if outcome.get("reason") else ""))


RESULT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,200}\.(json|txt|log)")


def result_name_ok(name: Any) -> bool:
    """A plain file name of a study's results: no folder, no leading dot, a known suffix."""
    return isinstance(name, str) and RESULT_NAME.fullmatch(name) is not None


def collect_results(out: Path) -> dict[str, bytes]:
    """The study's reports, study.json, list and log as bytes (what a Ray task sends back), bounded in size."""
    files: dict[str, bytes] = {}
    total = 0
    for path in sorted(out.iterdir()):
        if not path.is_file() or path.is_symlink() or not result_name_ok(path.name):
            continue
        total += path.stat().st_size
        if total > MAX_RESULT_BYTES:
            raise RuntimeError(f"the study's results pass {MAX_RESULT_BYTES // 2**20} MiB")
        files[path.name] = path.read_bytes()
    return files
