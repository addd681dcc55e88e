"""The Ray executor (`detbench sweep --ray local|auto|ADDRESS`): each study is one Ray task.

A GPU study holds one whole GPU (`num_gpus=1`, and the `device_kind` axis as Ray's `accelerator_type`, except
`cuda`/`gpu`: any GPU) and `threads + 1` CPUs; a CPU study holds every CPU of one node (the CPU studies are dealt
to the nodes in turn, each pinned to its node), so that no two studies share a device and a CPU study is never
timed beside another. A study no node of the cluster can take (no GPU, no node of that accelerator type) is
recorded as failed at once instead of waiting forever. The task runs `detbench ablate` on the node into a
temporary folder and returns the study's files; the driver writes them under OUT/studies/NAME as each task
returns, and updates the index. A task whose worker is lost is retried once by Ray (`max_retries=1`), then
recorded as failed with Ray's reason. A CPU study is pinned to its node: if the node is gone before the study
runs, it is dealt once more to a live node; if the node dies while it runs, it fails. detbench must be
installed on every node, and the models, data and the benchmark list's images must be at the same paths there
(shared storage); the list itself is sent with the task. A task's files are written only into a real
OUT/studies/NAME (no link on the way: files.out_tree, checked as they arrive). `--ray local`'s processes end
with the sweep however it ends, `kill -9` included (sweep.reaper).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from detbench.errors import DetbenchError, first_line
from detbench.files.atomic import write_atomic
from detbench.files.out_tree import check_below
from detbench.study.options import StudyConfig
from detbench.sweep.plan import ANY_GPU_KINDS, STUDIES_DIR, Plan, PlannedStudy
from detbench.sweep.reaper import Reaper
from detbench.sweep.task import MAX_RESULT_BYTES, collect_results, outcome_line, result_name_ok, run_study_child
from detbench.text import Echo

RETRIES = 1


def _import_ray(address: str) -> Any:
    try:
        import ray  # imported here: Ray is an optional extra
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
    host = host.strip("[]")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except (OSError, ValueError) as exc:
        raise DetbenchError(f"--ray {given}: nothing answers at {address} ({getattr(exc, 'strerror', None) or exc}); "
                            f"start the cluster (ray start --head) or pass --ray local") from None


def private_folder() -> str:
    """A new empty folder for Ray to start in; it stays while this process lives."""
    folder = tempfile.mkdtemp(prefix="detbench-ray-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@contextlib.contextmanager
def empty_working_folder(folder: str | None = None) -> Iterator[None]:
    """Run the block in an empty private folder (`folder`, default a new one): `ray.init` puts the driver's working
    folder on every Ray worker's import path (and a local Ray's processes start in it), where a folder named
    detbench/ or any .py file would be imported in place of the modules a task needs."""
    previous = os.getcwd()
    folder = folder or private_folder()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def connect(ray: Any, address: str, cpus: int | None, folder: str | None = None) -> None:
    """`local`: a private Ray instance on this machine; else `auto` or a cluster's address. One-line error when
    there is no cluster there. Ray starts from an empty folder (`empty_working_folder`)."""
    try:
        with empty_working_folder(folder):
            _init(ray, address, cpus)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        detail = first_line(exc)
        if address == "local":
            raise DetbenchError(f"--ray local: Ray could not start here ({detail}); see ray's logs in "
                                f"{tempfile.gettempdir()}/ray") from None
        raise DetbenchError(f"--ray {address}: cannot reach a Ray cluster ({detail}); start one (ray start --head) "
                            f"or pass --ray local") from None


def _init(ray: Any, address: str, cpus: int | None) -> None:
    if address == "local":  # "local" starts a new instance even where RAY_ADDRESS names a cluster
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    else:
        check_reachable(address, cluster_address(address))
        ray.init(address=address, log_to_driver=False, configure_logging=False)


def study_task(config: StudyConfig, list_files: dict[str, bytes], device: str, timeout_s: float) -> dict[str, Any]:
    """On the node: the study in a temporary folder; its outcome and files."""
    work = Path(tempfile.mkdtemp(prefix="detbench-sweep-"))
    try:
        for name, data in list_files.items():
            (work / name).write_bytes(data)
        out = work / "out"
        outcome = run_study_child(config, out, work / "benchmark_list.txt", device, timeout_s)
        return {"outcome": outcome, "files": collect_results(out) if out.is_dir() else {}}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cpu_nodes(ray: Any) -> list[tuple[str, int]]:
    """(node id, CPUs) of every alive node with CPUs."""
    nodes = [(node["NodeID"], int(node["Resources"].get("CPU", 0))) for node in ray.nodes() if node.get("Alive")]
    nodes = [(node_id, cpus) for node_id, cpus in nodes if cpus > 0]
    if not nodes:
        raise DetbenchError("--ray: the cluster has no node with CPUs")
    return nodes


def task_options(study: PlannedStudy, node: tuple[str, int], strategy: Any = None) -> dict[str, Any]:
    """A CPU study: every CPU of `node`, pinned there (`strategy`); a GPU study: one GPU and threads + 1 CPUs (at
    most `node`'s, the smallest node's when GPU studies are placed by Ray)."""
    node_cpus = node[1]
    if not study.gpu:
        options = {"num_cpus": node_cpus, "num_gpus": 0, "max_retries": RETRIES}
        if strategy is not None:
            options["scheduling_strategy"] = strategy
        return options
    options = {"num_cpus": min(study.threads + 1, node_cpus), "num_gpus": 1, "max_retries": RETRIES}
    if study.device_kind not in ANY_GPU_KINDS:
        options["accelerator_type"] = study.device_kind
    return options


def node_config(study: PlannedStudy) -> StudyConfig:
    """The study on the node: a GPU study without `threads` in the sweep gets the threads its CPUs were asked for
    (else ablate would use every core of a node whose other cores Ray gives to other studies)."""
    if study.gpu and study.config.bench.get("threads") is None:
        return replace(study.config, bench={**study.config.bench, "threads": study.threads})
    return study.config


def infeasible(study: PlannedStudy, resources: dict[str, float]) -> str | None:
    """Why no node of the cluster can ever take this study (None if one can)."""
    if not study.gpu:
        return None
    if resources.get("GPU", 0) < 1:
        return "the cluster has no GPU"
    if study.device_kind not in ANY_GPU_KINDS and f"accelerator_type:{study.device_kind}" not in resources:
        kinds = sorted(k.split(":", 1)[1] for k in resources if k.startswith("accelerator_type:"))
        return (f"no node of accelerator type {study.device_kind} (the cluster has "
                f"{', '.join(kinds) or 'no typed accelerators'})")
    return None


def _write_files(folder: Path, files: Any, out: Path) -> None:
    """A task's returned files, written under `folder` (never through a link: every folder from `out` down is a
    real one, checked as the files arrive), each name checked, bounded."""
    if not isinstance(files, dict):
        raise ValueError("the task returned no file table")
    if sum(len(data) for data in files.values() if isinstance(data, bytes)) > MAX_RESULT_BYTES:
        raise ValueError(f"the study's results pass {MAX_RESULT_BYTES // 2**20} MiB")
    for name, data in files.items():
        if not result_name_ok(name) or not isinstance(data, bytes):
            raise ValueError(f"the task returned a file named {str(name)[:60]!r}, not a study's result")
    try:
        check_below(out, folder)
    except DetbenchError as exc:
        raise ValueError(str(exc)) from None
    for name, data in files.items():
        write_atomic(folder / name, lambda handle, data=data: handle.write(data), follow_folder_link=False)


def run_on_ray(plan: Plan, out: Path, list_path: Path, index: Any, todo: list[PlannedStudy], opts: Any,
               echo: Echo) -> None:
    """Submit every study of `todo` to the connected cluster (`open_cluster`), write each one's results as it
    returns."""
    # imported here: Ray is an optional extra
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    resources = ray.cluster_resources()
    echo(f"✓ Ray: {len(ray.nodes())} node(s), {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs")
    nodes = cpu_nodes(ray)
    smallest = min(nodes, key=lambda node: node[1])
    list_files = {"benchmark_list.txt": list_path.read_bytes()}
    sidecar = list_path.with_name(list_path.name + ".json")
    if sidecar.is_file():
        list_files["benchmark_list.txt.json"] = sidecar.read_bytes()
    shared = ray.put(list_files)
    remote = ray.remote(study_task)
    pending: dict[Any, PlannedStudy] = {}
    placed: dict[str, str] = {}  # a CPU study's node
    redealt: set[str] = set()

    def submit(study: PlannedStudy, options: dict[str, Any]) -> Any:
        return remote.options(**options).remote(node_config(study), shared, "0" if study.gpu else "cpu",
                                                opts.study_timeout)

    def on_node(study: PlannedStudy, node: tuple[str, int]) -> dict[str, Any]:
        """A CPU study's options: the whole of `node`, pinned there."""
        placed[study.name] = node[0]
        return task_options(study, node, NodeAffinitySchedulingStrategy(node_id=node[0], soft=False))

    cpu_studies = 0
    for study in todo:
        reason = infeasible(study, resources)
        if reason:
            index.record(study.name, {"status": "failed", "reason": f"not submitted: {reason}", "attempts": 0})
            echo(f"✗ {study.name}: not submitted ({reason})")
            continue
        if study.gpu:
            options = task_options(study, smallest)
        else:  # CPU studies dealt to the nodes in turn, each holding its whole node
            options = on_node(study, nodes[cpu_studies % len(nodes)])
            cpu_studies += 1
        pending[submit(study, options)] = study
    echo(f"· {len(pending)} studies submitted")
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        study = pending.pop(ready[0])
        try:
            result = ray.get(ready[0])
        except Exception as exc:  # noqa: BLE001 (recorded: the other studies go on)
            if type(exc).__name__ == "TaskUnschedulableError" and not study.gpu and study.name not in redealt:
                live = [node for node in cpu_nodes(ray) if node[0] != placed.get(study.name)]
                if live:  # its node died before it ran: dealt once more, to a live node
                    redealt.add(study.name)
                    pending[submit(study, on_node(study, live[0]))] = study
                    continue
            reason = first_line(exc, 300)
            application = isinstance(exc, ray.exceptions.RayTaskError)  # the task's own error: not retried
            outcome = {"status": "failed", "reason": f"{type(exc).__name__}"
                       + ("" if application else f" after {RETRIES} retry") + f": {reason}",
                       "attempts": 1 if application else RETRIES + 1}
        else:
            outcome = _accept(result, out / STUDIES_DIR / study.name, out)
        index.record(study.name, outcome)
        echo(outcome_line(study.name, outcome, with_node=True))


OUTCOME_KEYS = {"status": str, "reason": (str, type(None)), "exit_code": (int, type(None)),
                "seconds": (int, float), "node": dict, "study_id": (str, type(None))}


def _accept(result: Any, folder: Path, out: Path | None = None) -> dict[str, Any]:
    """A task's result checked and its files written into `folder`, below the sweep's `out` (default: `folder`'s
    own parent), with no link on the way; a malformed result, or one that cannot be written, is the study's
    failure (the other studies go on)."""
    try:
        if not isinstance(result, dict) or not isinstance(result.get("outcome"), dict):
            raise ValueError("the task returned no outcome")
        outcome = {key: value for key, value in result["outcome"].items()
                   if key in OUTCOME_KEYS and isinstance(value, OUTCOME_KEYS[key])}
        if outcome.get("status") not in {"ok", "failed", "timeout", "interrupted"}:
            raise ValueError("the task's outcome has no status")
        _write_files(folder, result.get("files"), folder.parent if out is None else out)
    except (ValueError, OSError) as exc:
        return {"status": "failed", "reason": f"its results could not be kept ({str(exc)[:200]})", "attempts": 1}
    outcome["attempts"] = 1
    return outcome


class Cluster:
    """The connected Ray and, for `--ray local`, the reaper that ends Ray's processes with this one."""

    def __init__(self, ray: Any, reaper: Reaper | None = None) -> None:
        self.ray, self.reaper = ray, reaper

    def shutdown(self) -> None:
        """Ray shut down (a local instance: its processes stopped), then whatever of it is left killed."""
        try:
            self.ray.shutdown()
        finally:
            if self.reaper is not None:
                self.reaper.stop()


def open_cluster(address: str, cpus: int | None) -> Cluster:
    """Ray imported and connected (before the sweep writes anything); the caller shuts it down. A local instance
    starts in the reaper's folder, so that none of its processes outlives this one however it ends
    (sweep.reaper)."""
    ray = _import_ray(address)
    reaper = Reaper(private_folder()) if address == "local" else None
    try:
        connect(ray, address, cpus, reaper.folder if reaper is not None else None)
    except BaseException:
        if reaper is not None:
            reaper.stop()
        raise
    return Cluster(ray, reaper)
