"""Load, check and measure an untrusted model in a child process bounded in time and memory.

Static checks refuse the hostile files detbench knows of; this is the bound
for the ones it does not. Before a run loads a checkpoint or a model YAML in
its own process, a child process (`python -m detbench.checkpoint.model_check`) does the same
work first: it reads the file (and checks it is byte for byte the one the run
hashed), loads and checks it exactly as the run will, converts it to fp32,
counts params and GFLOPs (unfused and fused, so the run need not count them
again), fuses it and runs one forward pass at the run's image size. The child
runs with one thread, an address-space limit (`LOAD_MEMORY_BYTES` above what
the interpreter holds after its imports) and a wall-clock limit
(`LOAD_TIMEOUT_S`); it dies with its parent. A child that overruns either
limit is killed, and the run stops with a one-line error naming the file and
the limit. The run itself then repeats only the load and the fuse: the same
deterministic work on the same bytes, now known to end within bounds.
`--unsafe-load` skips the child: that file is trusted, and a full pickle load
would run its code in both processes. The export for `--format` runs in a
child started, limited and answered the same way (`detbench.backends.export_child`).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from detbench import limits
from detbench.errors import DetbenchError, first_line
from detbench.proc import die_with_parent, kill_tree, python_module, refuse_namespace_package, spawn_child

CHILD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2", "YOLO_OFFLINE": "1",
             "YOLO_VERBOSE": "False", "ULTRALYTICS_SAFE_LOAD": "1", "PYTHONUNBUFFERED": "1"}
_STDERR_TAIL = 4096


@dataclass
class CheckRequest:
    weights: str
    imgsz: int
    sha256: str | None = None  # of the file, as the parent read it; None for a zoo or shipped name
    plugins: list[str] = field(default_factory=list)
    timeout_s: float = limits.LOAD_TIMEOUT_S
    memory_bytes: int = limits.LOAD_MEMORY_BYTES


@dataclass
class ModelCheck:
    """What the child measured (`models.complexity.Counts` and the cost of the check): the run uses these numbers
    instead of counting again."""

    params: int
    params_fused: int
    gflops: float
    gflops_unfused: float
    stride: int
    imgsz: int
    modules: int
    seconds: float
    peak_rss_MB: float
    forward_s: float | None = None  # one forward pass at imgsz, batch 1, one thread (None: not run here)
    train_args: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- the parent's side

class PendingCheck:
    """A running child; `result()` waits for it within the time limit."""

    def __init__(self, request: CheckRequest) -> None:
        self.request = request
        self.started = time.monotonic()
        self.process, self.stderr = start_child("detbench.checkpoint.model_check", asdict(request), CHILD_ENV)

    def result(self) -> ModelCheck:
        what = f"--weights {self.request.weights}"
        left = max(self.request.timeout_s - (time.monotonic() - self.started), 0.1)
        try:
            try:
                output = self.process.stdout.read() if wait_for(self.process, left) else None
            finally:
                if self.process.poll() is None:
                    kill_tree(self.process)
            if output is None:
                raise DetbenchError(f"{what}: loading and checking the model took more than "
                                    f"{self.request.timeout_s:g} s, detbench's limit; if the file is genuine and "
                                    f"large, raise --load-timeout")
            found = child_answer(output, self.process, self.stderr, f"{what}: the bounded process that checks the "
                                 f"model", "the file")
            return ModelCheck(**found["inspection"])
        finally:
            self.process.stdout.close()
            self.stderr.close()

    def cancel(self) -> None:
        if self.process.poll() is None:
            kill_tree(self.process)


def start_child(module: str, request: dict[str, Any], env: dict[str, str],
                cwd: str | None = None) -> tuple[subprocess.Popen, Any]:
    """`python -m MODULE` as a child tied to this process, `request` written to its stdin as JSON; (the process,
    the temporary file that takes its stderr)."""
    stderr = tempfile.TemporaryFile()
    process = spawn_child(python_module(sys.executable, module), env, stdin=-1, stdout=-1, stderr=stderr, cwd=cwd)
    process.stdin.write(json.dumps(request).encode())
    process.stdin.close()
    return process, stderr


def wait_for(process: subprocess.Popen, seconds: float) -> bool:
    """True if the process ended within `seconds`."""
    try:
        process.wait(timeout=seconds)
        return True
    except subprocess.TimeoutExpired:
        return False


def read_answer(output: bytes) -> Any:
    """The child's one-line JSON answer (the last line of its stdout); None when there is none."""
    try:
        return json.loads(output.decode("utf-8").strip().splitlines()[-1])
    except (UnicodeDecodeError, ValueError, IndexError):
        return None


def child_answer(output: bytes, process: subprocess.Popen, stderr: Any, what: str, subject: str) -> dict[str, Any]:
    """The child's answer when it says ok; else its own one-line error, or one saying how `what` (the process)
    ended and that `subject` may be hostile."""
    found = read_answer(output)
    if isinstance(found, dict) and found.get("ok") is True:
        return found
    if isinstance(found, dict) and isinstance(found.get("error"), str):
        raise DetbenchError(found["error"])
    raise DetbenchError(f"{what} {exit_cause(process)} ({stderr_tail(stderr)}); {subject} may be hostile, or raise "
                        f"--load-memory if it is genuine and large")


def exit_cause(process: subprocess.Popen) -> str:
    code = process.returncode
    return f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with status {code}"


def stderr_tail(stderr: Any) -> str:
    """The last non-empty line the child wrote to stderr (at most 200 characters), for a one-line error."""
    stderr.seek(0, os.SEEK_END)
    stderr.seek(max(stderr.tell() - _STDERR_TAIL, 0))
    lines = [line for line in stderr.read().decode("utf-8", "replace").splitlines() if line.strip()]
    return (lines[-1][:200] if lines else "no message").replace("\n", " ")


@dataclass
class KnownCheck:
    """A bounded check these very bytes already passed (the same SHA-256, imgsz and plugins): a study's next
    worker of a model uses the numbers its previous worker's check measured instead of checking again. It is
    filled by the run that checks, and stands in for the running child when it matches."""

    sha256: str | None = None
    imgsz: int | None = None
    plugins: list[str] = field(default_factory=list)
    inspection: ModelCheck | None = None

    def matches(self, request: CheckRequest) -> bool:
        return (self.inspection is not None and request.sha256 is not None and self.sha256 == request.sha256
                and self.imgsz == request.imgsz and list(self.plugins) == list(request.plugins))

    def remember(self, request: CheckRequest, inspection: ModelCheck) -> None:
        self.sha256, self.imgsz, self.plugins = request.sha256, request.imgsz, list(request.plugins)
        self.inspection = inspection

    def result(self) -> ModelCheck:
        return self.inspection

    def cancel(self) -> None:
        pass

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, value: Any) -> KnownCheck:
        """From a coordinator's message; anything malformed gives an empty one (the check then runs)."""
        try:
            found = dict(value)
            inspection = ModelCheck(**found.pop("inspection"))
            return cls(**found, inspection=inspection)
        except (TypeError, ValueError, KeyError):
            return cls()


def start_model_check(request: CheckRequest, known: KnownCheck | None = None) -> PendingCheck | KnownCheck:
    """The bounded check of `request` started in a child, or `known` where it already covers these bytes."""
    if known is not None and known.matches(request):
        return known
    return PendingCheck(request)


# ---------------------------------------------------------------- the child's side

def _vm_size() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def limit_process(budget: int | None, cpu_seconds: float) -> None:
    """Address space: what the interpreter holds now plus `budget` (None: not limited); CPU time, all threads
    together: `cpu_seconds` more than used so far, a backstop to the parent's clock.

    Hard limits equal the soft ones, so nothing the model does can raise them again.
    """
    wanted = [(resource.RLIMIT_CPU, int(resource.getrusage(resource.RUSAGE_SELF).ru_utime + cpu_seconds) + 5)]
    if budget is not None:
        wanted.append((resource.RLIMIT_AS, _vm_size() + budget))
    for kind, value in wanted:
        _soft, hard = resource.getrlimit(kind)
        ceiling = value if hard == resource.RLIM_INFINITY else min(value, hard)  # never above an inherited limit
        resource.setrlimit(kind, (ceiling, ceiling))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def count_and_fuse(loaded: Any, requested_imgsz: int) -> tuple[Any, ModelCheck]:
    """Params and GFLOPs (unfused, then fused) at the run's image size; the fused model and the numbers."""
    # imported here, not at the top: loads torch and Ultralytics, which only this path needs
    from detbench.models.complexity import fuse_and_count

    start = time.monotonic()
    fused, counts = fuse_and_count(loaded, requested_imgsz)
    data = loaded.train_args.get("data")
    return fused, ModelCheck(
        **asdict(counts), modules=sum(1 for _ in fused.modules()), seconds=round(time.monotonic() - start, 3),
        peak_rss_MB=round(peak_rss_mb(), 1), train_args={"data": data} if data is not None else {},
        notes=list(loaded.notes))


def check_here(request: CheckRequest) -> ModelCheck:
    """The child's work: load and check as the run will, count, fuse, one forward pass at imgsz."""
    # imported here, not at the top: loads torch, NVML, numpy, which only this path needs
    import torch

    from detbench.models.loading import load_model

    start = time.monotonic()
    loaded = load_model(request.weights, plugins=request.plugins, expected_sha256=request.sha256)
    fused, inspection = count_and_fuse(loaded, request.imgsz)
    with torch.inference_mode():
        started = time.perf_counter()
        fused(torch.zeros(1, 3, inspection.imgsz, inspection.imgsz))
        inspection.forward_s = round(time.perf_counter() - started, 4)
    inspection.seconds = round(time.monotonic() - start, 3)
    inspection.peak_rss_MB = round(peak_rss_mb(), 1)
    return inspection


_answers = sys.stdout


def answer(payload: dict[str, Any]) -> None:
    """Write the child's one-line answer to the parent."""
    _answers.write(json.dumps(payload, default=str) + "\n")
    _answers.flush()


def keep_stdout_for_the_answer() -> None:
    """Anything the model's code prints goes to stderr; stdout carries only the one-line answer."""
    global _answers
    _answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr


def child_main() -> int:
    refuse_namespace_package()
    die_with_parent()
    keep_stdout_for_the_answer()
    request = CheckRequest(**json.loads(sys.stdin.read(1 << 20)))
    # imported here, not at the top: loads torch, Ultralytics, NVML, numpy, which only this path needs
    import torch
    import ultralytics  # noqa: F401  (imported before the limit, which then covers only the model's work)

    from detbench import zoo

    torch.set_num_threads(1)
    zoo.register()
    limit_process(request.memory_bytes, request.timeout_s)
    try:
        inspection = check_here(request)
    except DetbenchError as exc:
        answer({"ok": False, "error": str(exc)})
        return 2
    except (MemoryError, RecursionError) as exc:
        answer({"ok": False, "error": f"--weights {request.weights}: refused: the model needs more than "
                                       f"detbench's limit of {request.memory_bytes / 2**30:.1f} GiB (or recursion) "
                                       f"to load and run once ({type(exc).__name__}); if it is genuine, raise "
                                       f"--load-memory"})
        return 2
    except Exception as exc:  # any failure of a model that passed the checks: name it, do not trace back
        text = first_line(exc)
        hint = "raise --load-memory if it is genuine" if "alloc" in text.lower() else "check the model"
        answer({"ok": False, "error": f"--weights {request.weights}: the model fails to load and run once "
                                       f"({type(exc).__name__}: {text}); {hint}"})
        return 2
    answer({"ok": True, "inspection": asdict(inspection)})
    return 0


if __name__ == "__main__":
    sys.exit(child_main())
