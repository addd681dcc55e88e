"""detbench sweep with the local executor: real studies on the CPU, resume, compare, a tampered study.json,
GPU slots."""

from __future__ import annotations

import json

import pytest
from conftest import run_command
from sweep_files import write_spec

from detbench.sweep import run as sweep_run


@pytest.mark.slow  # starts a process
def test_gpu_slots_get_disjoint_cores_and_a_process_keeps_to_them(monkeypatch):
    import os
    import sys

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


def test_a_local_cpu_sweep_runs_resumes_and_compares(cli, tmp_path, dataset):
    spec = write_spec(tmp_path, dataset, axes={"imgsz": [64], "precision": ["fp32", "fp16"]})
    dry = cli("sweep", str(spec), "--out", str(tmp_path / "out"), "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "2 studies, 1 runnable, 1 invalid" in dry.stdout and "estimated time" in dry.stdout
    assert not (tmp_path / "out").exists()  # a dry run writes nothing
    first = cli("sweep", str(spec), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "✓ imgsz64-fp32: ok" in first.stdout
    again = cli("sweep", str(spec), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert "1 runnable, 1 already finished" in again.stdout and "running" not in again.stdout
    changed = write_spec(tmp_path, dataset, axes={"imgsz": [64], "precision": ["fp32", "fp16"]},
                         settings={"iters": 24})
    rerun = cli("sweep", str(changed), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert rerun.returncode == 0 and "✓ imgsz64-fp32: ok" in rerun.stdout, rerun.stdout + rerun.stderr
    rounds = json.loads((tmp_path / "out" / "studies" / "imgsz64-fp32" / "study.json").read_text())["rounds_done"]
    assert rounds == 24  # measured again with the new setting, not the old study kept
    folder = tmp_path / "out" / "studies" / "imgsz64-fp32"
    assert {"baseline.json", "p2.json", "study.json", "ablate.log"} <= {p.name for p in folder.iterdir()}
    compared = cli("compare", "--sweep", str(tmp_path / "out"), cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr
    assert "== cpu: " in compared.stdout and "Ranking stability" in compared.stdout
    assert "p2" in compared.stdout and "baseline" in compared.stdout
    for name in ("sweep_comparison.csv", "sweep_comparison.md", "sweep_latency.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    rows = (tmp_path / "out" / "sweep_comparison.csv").read_text().splitlines()
    assert rows[0].startswith("device_kind,study,imgsz") and len(rows) == 3
