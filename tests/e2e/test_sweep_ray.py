"""A sweep on a local Ray cluster (2 CPUs): one study finishes; the other's Ray worker is killed in mid-study, Ray
retries it once elsewhere, it is killed again and recorded as failed; the local executor then resumes the sweep,
skipping the finished study; the two studies' reports (one made on Ray, one locally) have the same structure and
`compare --sweep` reads both."""

from __future__ import annotations

import json

import pytest
from sweep_files import write_spec

pytest.importorskip("ray")

# imported by every bench worker of the sweep's studies (--plugin): in the study at imgsz 96 run by a Ray task, it
# SIGKILLs the Ray worker process above it (what a lost worker looks like to Ray), and notes the worker's pid
KILLER = '''
import os, signal
from pathlib import Path

def _ancestors():
    pid = os.getpid()
    while pid > 1:
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        try:
            yield pid, Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\\0")
        except OSError:
            return

_chain = list(_ancestors())
_ablate = next((cmd for _, cmd in _chain if b"ablate" in cmd), None)
_ray_worker = next((pid for pid, cmd in _chain if cmd and cmd[0].startswith(b"ray::")), None)
if _ablate and _ray_worker and b"--imgsz=96" in _ablate:
    with open(Path(__file__).with_suffix(".kills"), "a") as _log:
        _log.write(f"{_ray_worker}\\n")
    os.kill(_ray_worker, signal.SIGKILL)
'''


@pytest.mark.slow
def test_a_ray_sweep_retries_a_lost_worker_once_records_the_failure_and_resumes_locally(cli, tmp_path, dataset):
    killer = tmp_path / "sweep_killer.py"
    killer.write_text(KILLER)
    spec = write_spec(tmp_path, dataset, axes={"imgsz": [64, 96]}, settings={"plugin": [str(killer)]})
    out = tmp_path / "out"
    # the sweep file's plugin runs only because the command line gives it too
    on_ray = cli("sweep", str(spec), "--out", str(out), "--ray", "local", "--ray-cpus", "2", "--plugin", str(killer),
                 cwd=tmp_path, timeout=300)
    assert on_ray.returncode == 1, on_ray.stdout + on_ray.stderr
    index = json.loads((out / "sweep.json").read_text())
    ok, lost = index["studies"]["imgsz64"], index["studies"]["imgsz96"]
    assert ok["status"] == "ok" and ok["node"]["hostname"]
    assert lost["status"] == "failed" and "after 1 retry" in lost["reason"] and lost["attempts"] == 2
    kills = killer.with_suffix(".kills").read_text().split()
    assert len(kills) == 2 and kills[0] != kills[1]  # killed, retried in another worker, killed again
    assert not (out / "studies" / "imgsz96" / "study.json").exists()

    resumed = cli("sweep", str(spec), "--out", str(out), "--plugin", str(killer), cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "2 runnable, 1 already finished" in resumed.stdout and "imgsz64: running" not in resumed.stdout
    assert json.loads((out / "sweep.json").read_text())["studies"]["imgsz96"]["status"] == "ok"

    ray_dir, local_dir = out / "studies" / "imgsz64", out / "studies" / "imgsz96"
    for name in ("baseline.json", "p2.json", "study.json"):
        made_on_ray, made_here = (json.loads((d / name).read_text()) for d in (ray_dir, local_dir))
        assert set(made_on_ray) == set(made_here), name
    # in substance: p2 (a P2 head) is slower than baseline in both (20 rounds may leave one undecided, never faster)
    comparisons = [json.loads((d / "study.json").read_text())["comparisons"][0] for d in (ray_dir, local_dir)]
    assert all(c["delta_pct"] > 0 and c["verdict"] in {"slower", "undecided"} for c in comparisons), comparisons
    compared = cli("compare", "--sweep", str(out), cwd=tmp_path)
    assert compared.returncode == 0 and "Ranking stability" in compared.stdout and "flips" not in compared.stdout
