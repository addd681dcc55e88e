"""The Python API as the README shows it: bench, save, compare, tables; and no side effects on the caller."""

from __future__ import annotations

import copy
import json
import sys

import pytest
import torch
from conftest import run_command

pytestmark = pytest.mark.slow  # each bench runs the bounded model check in a child process

QUICK = {"imgsz": 64, "device": "cpu", "warmup": 1, "iters": 6, "threads": 1, "benchmark_size": 6}


def test_the_documented_example_works_and_writes_nothing_unless_asked(tmp_path, dataset, monkeypatch):
    import detbench

    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(2)
    base = detbench.bench("baseline", data=str(dataset), **QUICK)
    r = detbench.bench("ghost", data=str(dataset), **QUICK)
    assert torch.get_num_threads() == 2  # the run used 1 thread and gave the caller's setting back
    assert list(tmp_path.iterdir()) == []  # no list, cache or report without `out` or save()
    assert r.name == "ghost" and r.latency.median_ms > 0 and r.latency.n_samples == 6
    assert r.inputs.list_sha256 == base.inputs.list_sha256  # one seeded list from one dataset
    assert r.command[0] == "detbench.bench" and "imgsz=64" in r.command

    path = r.save(tmp_path / "bench")
    assert json.loads(path.read_text())["metadata"]["model_name"] == "ghost"
    c = detbench.compare([base, r], baseline="baseline")
    frame = c.to_pandas()
    assert set(frame["model"]) == {"baseline", "ghost"}
    assert "| ghost |" in c.to_markdown().replace("ghost |", "ghost |")
    assert "ghost" in str(c)
    from_file = detbench.compare([base, path], baseline="baseline")
    assert {row.name for group in from_file.groups for row in group.rows} == {"baseline", "ghost"}

    # save() replaces a report only as `detbench bench` would: the same settings again, or with force=True
    assert r.save(tmp_path / "bench") == path
    other = copy.deepcopy(r)  # the report a run at imgsz 96 gives: its settings differ in imgsz alone
    other.config, other.metadata.imgsz = {**r.config, "imgsz": 96}, 96
    saved = path.read_bytes()
    with pytest.raises(detbench.DetbenchError, match=r"ghost.json: already holds a report of other settings "
                                                       r"\(--imgsz 64, now 96\); save into another folder, or with "
                                                       r"force=True to replace it"):
        other.save(tmp_path / "bench")
    assert path.read_bytes() == saved
    assert json.loads(other.save(tmp_path / "bench", force=True).read_text())["metadata"]["imgsz"] == 96
    other.config = None  # e.g. a version-1 report read back: nothing to compare, nothing in the way in a new folder
    assert other.save(tmp_path / "fresh").is_file()


def test_importing_detbench_changes_nothing_in_the_process():
    code = ("import os, sys; before = dict(os.environ); import detbench; "
            "print(sorted(set(os.environ) - set(before)), 'torch' in sys.modules, 'ultralytics' in sys.modules, "
            "sorted(n for n in dir(detbench) if not n.startswith('_')))")
    done = run_command([sys.executable, "-c", code])
    assert done.returncode == 0, done.stderr
    out = done.stdout.strip()
    assert out == ("[] False False ['BenchReport', 'Comparison', 'DetbenchError', 'api', 'bench', 'compare', 'errors', "
                   "'limits', 'report', 'version']")
