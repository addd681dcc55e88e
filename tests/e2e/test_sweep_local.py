"""detbench sweep: a sweep of real studies on the CPU, started by the command line from a working folder whose .py
files and detbench/ folder never run in its children; run again (resumed), its file edited (a model added, more
rounds: measured again), its dry run and `compare --sweep`; a tampered study.json; GPU slots. Then the same sweep,
wider, goes on on a local Ray cluster (2 CPUs): the study made here is not run again, one study runs on Ray, the
other's Ray worker is killed in mid-study, Ray retries it once elsewhere, it is killed again and recorded as failed,
and the local executor would run that one only; the reports made on Ray and here have the same structure and
`compare --sweep` reads both."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import run_command
from sweep_files import write_spec
from tripwires import CONSOLE, plant

from detbench.comparison.sweep import run_sweep_compare
from detbench.page.run import run_report
from detbench.sweep import run as sweep_run
from detbench.sweep.run import SweepOptions, run_sweep

# imported by every bench worker of the sweep's studies (--plugin): in the study at imgsz 96 run by a Ray task, it
# SIGKILLs the Ray worker process above it (what a lost worker looks like to Ray), and notes the worker's pid;
# anywhere else it does nothing
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

HERE = {"imgsz": [64], "precision": ["fp32", "fp16"]}  # one study runs on the CPU; fp16 there is invalid
ON_RAY = {"imgsz": [64, 96, 128], "precision": ["fp32", "fp16"]}  # the same sweep, wider


@dataclass(frozen=True)
class Swept:
    """What the sweep said and left, each step in turn (`LocalSweep`)."""

    folder: Path  # the working folder, with a tripwire for each module a child could import from there
    killer: Path  # the sweep file's plugin
    first: subprocess.CompletedProcess  # `detbench sweep` of one model (baseline)
    again: tuple[int, str]  # the same sweep again, here
    edited: tuple[int, str]  # the sweep file edited (p2 added, 24 rounds), here
    out: Path
    for_ray: Path  # a copy of `out` as the edited sweep left it: the Ray test goes on there

    @property
    def marker(self) -> Path:
        return self.folder / "ran.txt"


def sweep_here(spec: Path, out: Path, killer: Path, dry_run: bool = False) -> tuple[int, str]:
    """The sweep run in this process (what `detbench sweep --plugin KILLER` runs); its exit code and output."""
    lines: list[str] = []
    code = run_sweep(SweepOptions(str(spec), str(out), dry_run=dry_run, plugins=[str(killer)]), echo=lines.append)
    return code, "\n".join(lines)


@pytest.fixture(scope="module")
def swept(tmp_path_factory, dataset) -> Swept:
    """The sweep on the CPU: run by the command line from the working folder, run again, edited and run again."""
    folder = tmp_path_factory.mktemp("sweep")
    killer = folder / "plugins" / "sweep_killer.py"
    killer.parent.mkdir()
    killer.write_text(KILLER)
    spec = write_spec(folder, dataset, models=["baseline"], axes=HERE, settings={"plugin": [str(killer)]})
    out = folder / "out"
    if CONSOLE.is_file():  # `python -m` would import runpy.py from the folder itself
        plant(folder, folder / "ran.txt")
        command = [str(CONSOLE)]
    else:
        command = [sys.executable, "-m", "detbench.cli"]
    first = run_command([*command, "sweep", str(spec), "--out", str(out), "--plugin", str(killer)], cwd=folder,
                        env={"PYTHONPATH": None, "PYTHONSAFEPATH": None}, timeout=300)
    again = sweep_here(spec, out, killer)
    edited = write_spec(folder, dataset, axes=HERE, settings={"plugin": [str(killer)], "iters": 24})
    rerun = sweep_here(edited, out, killer)
    shutil.copytree(out, folder / "out-for-ray", symlinks=True)
    return Swept(folder, killer, first, again, rerun, out, folder / "out-for-ray")


@pytest.mark.slow  # starts a process
def test_gpu_slots_get_disjoint_cores_and_a_process_keeps_to_them(monkeypatch):
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    assert sweep_run.slot_cpus(["0", "1"]) == {"0": "0,1,2,3", "1": "4,5,6,7"}
    assert sweep_run.slot_cpus(["cpu"]) == {}
    monkeypatch.undo()
    core = str(max(os.sched_getaffinity(0)))
    kept = run_command([sys.executable, "-c", "import os; from detbench.proc import keep_to_cpus; "
                        "keep_to_cpus(); print(sorted(os.sched_getaffinity(0)))"],
                       env={"DETBENCH_CPUS": core}, timeout=60)
    assert kept.stdout.strip() == f"[{core}]", kept.stderr


def test_a_tampered_study_json_is_reported_not_followed(tmp_path, cli):
    from detbench.comparison.sweep import load_sweep

    out = tmp_path / "out"
    (out / "studies" / "cell").mkdir(parents=True)
    (out / "sweep.json").write_text(json.dumps({"kind": "detbench sweep", "studies": {
        "cell": {"status": "ok", "cell": {"imgsz": 64}}, "../..": {"status": "ok"}}}))
    (out / "studies" / "cell" / "study.json").write_text(json.dumps(
        {"baseline": "b", "models": ["../../../../etc/passwd"], "comparisons": [{"model": "x", "delta_pct": "x"}]}))
    _, cells, problems = load_sweep(out)
    assert cells == [] and len(problems) == 2
    assert any("not a study folder name" in p for p in problems)
    assert any("unreadable" in p and "model name" in p for p in problems)


def test_a_local_cpu_sweep_runs_resumes_and_compares(swept, tmp_path, dataset, capsys):
    first = swept.first
    assert first.returncode == 0, first.stdout + first.stderr
    assert "✓ imgsz64-fp32: ok" in first.stdout
    assert not swept.marker.exists(), swept.marker.read_text()  # the sweep's study, its check and its workers
    code, again = swept.again
    assert code == 0 and "1 runnable, 1 already finished" in again and "running" not in again, again
    code, rerun = swept.edited
    assert code == 0 and "✓ imgsz64-fp32: ok" in rerun, rerun
    folder = swept.out / "studies" / "imgsz64-fp32"
    rounds = json.loads((folder / "study.json").read_text())["rounds_done"]
    assert rounds == 24  # measured again with the new settings, not the old study kept
    assert {"baseline.json", "p2.json", "study.json", "ablate.log", "report.html"} <= {p.name for p in folder.iterdir()}
    spec = write_spec(tmp_path, dataset, axes=HERE, settings={"plugin": [str(swept.killer)], "iters": 24})
    code, dry = sweep_here(spec, tmp_path / "out", swept.killer, dry_run=True)
    assert code == 0 and "2 studies, 1 runnable, 1 invalid" in dry and "estimated time" in dry
    assert not (tmp_path / "out").exists()  # a dry run writes nothing

    capsys.readouterr()
    assert run_sweep_compare(swept.out) == 0  # what `detbench compare --sweep OUT` runs
    compared = capsys.readouterr().out
    assert "== cpu: " in compared and "Ranking stability" in compared
    assert "p2" in compared and "baseline" in compared
    for name in ("sweep_comparison.csv", "sweep_comparison.md", "sweep_latency.png"):
        assert (swept.out / name).stat().st_size > 0
    rows = (swept.out / "sweep_comparison.csv").read_text().splitlines()
    assert rows[0].startswith("device_kind,study,imgsz") and len(rows) == 3
    assert run_report(swept.out, echo=lambda line: None) == 0  # `detbench report OUT`: the page of the sweep
    page = (swept.out / "report.html").read_text(encoding="utf-8")
    assert "Ranking stability across the sweep" in page and "imgsz64-fp32" in page
    assert '<th scope="row">p2</th>' in page


@pytest.mark.slow
def test_on_ray_the_sweep_goes_on_retries_a_lost_worker_once_and_records_the_failure(swept, cli, tmp_path, dataset,
                                                                                    capsys):
    pytest.importorskip("ray")
    out = swept.for_ray
    spec = write_spec(tmp_path, dataset, axes=ON_RAY, settings={"plugin": [str(swept.killer)], "iters": 24})
    # the sweep file's plugin runs only because the command line gives it too
    on_ray = cli("sweep", str(spec), "--out", str(out), "--ray", "local", "--ray-cpus", "2", "--plugin",
                 str(swept.killer), cwd=tmp_path, timeout=300)
    assert on_ray.returncode == 1, on_ray.stdout + on_ray.stderr
    assert "3 runnable, 1 already finished" in on_ray.stdout  # the study made here is not run again
    index = json.loads((out / "sweep.json").read_text())
    ok, lost = index["studies"]["imgsz128-fp32"], index["studies"]["imgsz96-fp32"]
    assert ok["status"] == "ok" and ok["node"]["hostname"]
    assert lost["status"] == "failed" and "after 1 retry" in lost["reason"] and lost["attempts"] == 2
    kills = swept.killer.with_suffix(".kills").read_text().split()
    assert len(kills) == 2 and kills[0] != kills[1]  # killed, retried in another worker, killed again
    assert not (out / "studies" / "imgsz96-fp32" / "study.json").exists()

    # the local executor takes over where Ray stopped: the failed study would run, the finished ones would not
    code, plan = sweep_here(spec, out, swept.killer, dry_run=True)
    assert code == 0 and "3 runnable, 3 invalid, 2 already finished" in plan, plan
    status = dict(line.split(maxsplit=2)[::2] for line in plan.splitlines() if line.startswith("  imgsz"))
    assert {name: status[name] for name in ("imgsz64-fp32", "imgsz96-fp32", "imgsz128-fp32")} == {
        "imgsz64-fp32": "finished", "imgsz96-fp32": "to run", "imgsz128-fp32": "finished"}

    made_on_ray, made_here = out / "studies" / "imgsz128-fp32", out / "studies" / "imgsz64-fp32"
    for name in ("baseline.json", "p2.json", "study.json"):
        assert set(json.loads((made_on_ray / name).read_text())) == set(json.loads((made_here / name).read_text()))
    # in substance: p2 (a P2 head) is slower than baseline in both (24 rounds may leave one undecided, never faster)
    comparisons = [json.loads((d / "study.json").read_text())["comparisons"][0] for d in (made_on_ray, made_here)]
    assert all(c["delta_pct"] > 0 and c["verdict"] in {"slower", "undecided"} for c in comparisons), comparisons
    capsys.readouterr()
    assert run_sweep_compare(out) == 1  # what `detbench compare --sweep OUT` runs: 1, as a study is not ok
    compared = capsys.readouterr().out
    assert "Ranking stability" in compared and "flips" not in compared
