"""The Ray executor (`detbench sweep --ray local|auto|ADDRESS`): each study is one Ray task.

A GPU study holds one whole GPU (`num_gpus=1`, and the `device_kind` axis as Ray's `accelerator_type`, except
`cuda`/`gpu`: any GPU) and `threads + 1` CPUs; a CPU study holds every CPU of the smallest node, so that no two
studies share a device and a CPU study is never timed beside another. The task runs `detbench ablate` on the
node into a temporary folder and returns the study's files; the driver writes them under OUT/studies/NAME as
each task returns, and updates the index. A task whose worker or node is lost is retried once by Ray
(`max_retries=1`), then recorded as failed with Ray's reason. detbench must be installed on every node, and
the models, data and the benchmark list's images must be at the same paths there (shared storage); the list
itself is sent with the task.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from detbench.errors import DetbenchError
from detbench.files.atomic import write_text_atomic
from detbench.sweep.plan import ANY_GPU_KINDS, Plan, PlannedStudy
from detbench.sweep.task import collect_results, run_study
from detbench.text import Echo

RETRIES = 1


def _import_ray(address: str) -> Any:
    try:
        import ray
    except ImportError:
        raise DetbenchError(f"--ray {address}: Ray is not installed; pip install -e '.[ray]'") from None
    return ray


CONNECT_TIMEOUT_S = 5.0
CURRENT_CLUSTER_FILE = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"


def cluster_address(address: str) -> str | None:
    """The host:port `ray.init` would connect to for `address` (`auto`: $RAY_ADDRESS, else the running
    cluster's file); None when there is none to check."""
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS") or ""
        if not address and CURRENT_CLUSTER_FILE.is_file():
            address = CURRENT_CLUSTER_FILE.read_text()[:300].strip()
    address = address.split("://", 1)[-1]
    return address or None


def check_reachable(given: str, address: str | None) -> None:
    """A TCP connection to the cluster's address within CONNECT_TIMEOUT_S: `ray.init` itself waits minutes for an
    address where nothing listens."""
    if not address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except (OSError, ValueError) as exc:
        raise DetbenchError(f"--ray {given}: nothing answers at {address} ({getattr(exc, 'strerror', None) or exc}); "
                            f"start the cluster (ray start --head) or pass --ray local") from None


def connect(ray: Any, address: str, cpus: int | None) -> None:
    """`local`: a private Ray instance on this machine; else `auto` or a cluster's address. One-line error when
    there is no cluster there."""
    try:
        if address == "local":
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            check_reachable(address, cluster_address(address))
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise DetbenchError(f"--ray {address}: cannot reach a Ray cluster ({detail}); start one (ray start --head) "
                            f"or pass --ray local") from None


def study_task(argv: list[str], list_files: dict[str, bytes], device: str, timeout_s: float) -> dict[str, Any]:
    """On the node: the study in a temporary folder; its outcome and files."""
    work = Path(tempfile.mkdtemp(prefix="detbench-sweep-"))
    try:
        for name, data in list_files.items():
            (work / name).write_bytes(data)
        out = work / "out"
        outcome = run_study(argv, out, work / "benchmark_list.txt", device, timeout_s)
        return {"outcome": outcome, "files": collect_results(out) if out.is_dir() else {}}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _smallest_node_cpus(ray: Any) -> int:
    cpus = [node["Resources"].get("CPU", 0) for node in ray.nodes() if node.get("Alive")]
    cpus = [c for c in cpus if c > 0]
    if not cpus:
        raise DetbenchError("--ray: the cluster has no node with CPUs")
    return int(min(cpus))


def task_options(study: PlannedStudy, node_cpus: int) -> dict[str, Any]:
    if not study.gpu:
        return {"num_cpus": node_cpus, "num_gpus": 0, "max_retries": RETRIES}
    options = {"num_cpus": min(study.threads + 1, node_cpus), "num_gpus": 1, "max_retries": RETRIES}
    if study.device_kind not in ANY_GPU_KINDS:
        options["accelerator_type"] = study.device_kind
    return options


def _write_files(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        if "/" in name or name.startswith("."):
            continue  # collect_results sends plain names only
        write_text_atomic(folder / name, data.decode("utf-8", "replace"))


def run_on_ray(plan: Plan, out: Path, list_path: Path, index: Any, todo: list[PlannedStudy], opts: Any,
               echo: Echo) -> None:
    """Submit every study of `todo` to the connected cluster (`open_cluster`), write each one's results as it
    returns."""
    import ray

    resources = ray.cluster_resources()
    echo(f"✓ Ray: {len(ray.nodes())} node(s), {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs")
    node_cpus = _smallest_node_cpus(ray)
    list_files = {"benchmark_list.txt": list_path.read_bytes()}
    sidecar = list_path.with_name(list_path.name + ".json")
    if sidecar.is_file():
        list_files["benchmark_list.txt.json"] = sidecar.read_bytes()
    shared = ray.put(list_files)
    remote = ray.remote(study_task)
    pending: dict[Any, PlannedStudy] = {}
    for study in todo:
        ref = remote.options(**task_options(study, node_cpus)).remote(
            study.argv, shared, "0" if study.gpu else "cpu", opts.study_timeout)
        pending[ref] = study
    echo(f"· {len(pending)} studies submitted")
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        study = pending.pop(ready[0])
        try:
            result = ray.get(ready[0])
        except Exception as exc:  # noqa: BLE001 (a lost worker or node, after Ray's retry: recorded)
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            outcome = {"status": "failed", "reason": f"{type(exc).__name__} after {RETRIES} retry: {reason}",
                       "attempts": RETRIES + 1}
        else:
            outcome = dict(result["outcome"])
            _write_files(out / "studies" / study.name, result["files"])
        index.record(study.name, outcome)
        echo(f"{'✓' if outcome['status'] == 'ok' else '✗'} {study.name}: {outcome['status']}"
             + (f" in {outcome['seconds']:.0f} s" if outcome.get("seconds") else "")
             + (f" on {outcome['node'].get('hostname')}" if outcome.get("node") else "")
             + (f" ({outcome['reason']})" if outcome.get("reason") else ""))


def open_cluster(address: str, cpus: int | None) -> Any:
    """Ray imported and connected (before the sweep writes anything); the caller shuts it down."""
    ray = _import_ray(address)
    connect(ray, address, cpus)
    return ray
