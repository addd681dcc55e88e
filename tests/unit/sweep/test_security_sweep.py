"""The sweep against hostile inputs, each case with a payload that does harm without its protection:
- a symlinked OUT/studies (or OUT/studies/CELL) never sends a study outside OUT, at plan time or mid-sweep,
  locally or from a Ray task's results (files.out_tree);
- a second sweep file never replaces or drops the studies of the sweep in OUT (the same file resumes);
- a sweep file's plugin or unsafe_load runs no code unless the command line gives it too, and what runs code is
  shown in the dry run's plan and at the start of a run;
- any shape of sweep.json is a usable index or one line;
- cell names `.`, `..`, `-x` are refused for every executor;
- Ray's processes of `--ray local` end with a SIGKILLed sweep (sweep.reaper)."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import alive, gone_within, one_line_error
from sweep_files import write_spec

from detbench.errors import DetbenchError
from detbench.files.out_tree import check_below, folder_below
from detbench.report.provenance import cpu_model
from detbench.sweep import run as sweep_run
from detbench.sweep import task
from detbench.sweep.plan import make_plan
from detbench.sweep.spec import load_spec


def _quiet(line: str) -> None:
    pass


def _fake_python(folder: Path) -> str:
    """An 'interpreter' that exits 0 at once: the real run_study_child (its folder, log, study.json) without a study."""
    fake = folder / "fake-python"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    return str(fake)


def _fake_study(calls: list[str], after=None):
    """A study that records its folder and writes an ok study.json there (through whatever the folder is)."""
    def run_study_child(argv, out, list_path, device, timeout_s, env=None, python=None):
        calls.append(str(out))
        out.mkdir(parents=True, exist_ok=True)
        (out / "study.json").write_text(json.dumps({"status": "ok", "id": f"{out.name}-{len(calls)}"}))
        if after is not None:
            after(out)
        return {"status": "ok", "reason": None, "exit_code": 0, "seconds": 0.1,
                "node": {"hostname": "h", "cpu": cpu_model()}, "study_id": f"{out.name}-{len(calls)}"}
    return run_study_child


def _victim(tmp_path: Path) -> Path:
    """A folder outside OUT holding someone's finished study."""
    victim = tmp_path / "victim"
    (victim / "imgsz64").mkdir(parents=True)
    (victim / "imgsz64" / "study.json").write_text("precious")
    return victim


def _untouched(victim: Path) -> None:
    assert (victim / "imgsz64" / "study.json").read_text() == "precious"
    assert sorted(p.relative_to(victim).as_posix() for p in victim.rglob("*")) == ["imgsz64", "imgsz64/study.json"]


def test_out_tree_follows_no_link_below_out_but_out_itself_may_be_one(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    out = tmp_path / "out-link"
    out.symlink_to(real, target_is_directory=True)  # the user's own link: followed
    assert folder_below(out, "studies", "cell") == out / "studies" / "cell" and (real / "studies" / "cell").is_dir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (real / "linked").symlink_to(elsewhere, target_is_directory=True)
    (real / "studies" / "deep").symlink_to(elsewhere, target_is_directory=True)
    (real / "file").write_text("")
    os.mkfifo(real / "fifo")
    for parts, problem in [(("linked",), "is a symlink"), (("linked", "x"), "is a symlink"),
                           (("studies", "deep", "x"), "is a symlink"), (("file", "x"), "is not a folder"),
                           (("fifo",), "is not a folder"), (("..",), "cannot name a folder"),
                           (("a/b",), "cannot name a folder"), (("",), "cannot name a folder")]:
        for create in (True, False):
            with pytest.raises(DetbenchError, match=problem) as caught:
                folder_below(out, *parts, create=create)
            assert one_line_error(caught).startswith(f"--out {out}: ")
    assert list(elsewhere.iterdir()) == []
    assert folder_below(tmp_path / "missing", "a", create=False) == tmp_path / "missing" / "a"
    assert not (tmp_path / "missing").exists()  # a check makes nothing
    with pytest.raises(DetbenchError, match="is not below the output folder"):
        check_below(real, tmp_path / "elsewhere" / "x")
    with pytest.raises(DetbenchError, match="cannot name a folder"):
        check_below(real, real / "studies" / ".." / ".." / "escape")


def _symlinked_studies(tmp_path: Path, dataset: Path, axes=None) -> tuple[Path, Path, Path]:
    spec = write_spec(tmp_path, dataset, axes=axes or {"imgsz": [64]})
    out = tmp_path / "out"
    out.mkdir()
    victim = _victim(tmp_path)
    (out / "studies").symlink_to(victim, target_is_directory=True)
    return spec, out, victim


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_symlinked_studies_folder_is_refused_before_anything_is_written(tmp_path, monkeypatch, dataset, dry_run):
    spec, out, victim = _symlinked_studies(tmp_path, dataset)
    # the real study runner, but an interpreter that does nothing: its folder, log and study.json handling is real
    runner = functools.partial(task.run_study_child, python=_fake_python(tmp_path))
    monkeypatch.setattr(sweep_run, "run_study_child", runner)
    with pytest.raises(DetbenchError, match=r"studies is a symlink.*remove the link") as caught:
        sweep_run.run_sweep(sweep_run.SweepOptions(str(spec), str(out), dry_run=dry_run), echo=_quiet)
    assert one_line_error(caught).startswith(f"--out {out}: {out / 'studies'} is a symlink")
    _untouched(victim)
    assert sorted(p.name for p in out.iterdir()) == ["studies"]  # no index, list or lock either


def test_a_symlinked_study_folder_is_refused_for_every_executor(tmp_path, monkeypatch, dataset):
    spec = write_spec(tmp_path, dataset, axes={"imgsz": [64]})
    out = tmp_path / "out"
    (out / "studies").mkdir(parents=True)
    victim = _victim(tmp_path)
    (out / "studies" / "imgsz64").symlink_to(victim / "imgsz64", target_is_directory=True)
    runner = functools.partial(task.run_study_child, python=_fake_python(tmp_path))
    monkeypatch.setattr(sweep_run, "run_study_child", runner)
    ran: list = []
    for ray in (None, "local"):
        with pytest.raises(DetbenchError, match=r"studies/imgsz64 is a symlink"):
            sweep_run.run_sweep(sweep_run.SweepOptions(str(spec), str(out), ray=ray), echo=_quiet,
                                ray_runner=lambda *args: ran.append(args))
    assert ran == []
    _untouched(victim)


def test_studies_swapped_for_a_link_mid_sweep_are_refused_as_each_study_starts(tmp_path, monkeypatch, dataset):
    spec = write_spec(tmp_path, dataset, axes={"imgsz": [64, 96]})
    out = tmp_path / "out"
    victim = tmp_path / "victim"
    victim.mkdir()

    def swap(folder: Path) -> None:  # once the first study is done, studies/ becomes a link
        if folder.name == "imgsz64":
            (out / "studies").rename(out / "studies-moved")
            (out / "studies").symlink_to(victim, target_is_directory=True)

    calls: list[str] = []
    monkeypatch.setattr(sweep_run, "run_study_child", _fake_study(calls, after=swap))
    assert sweep_run.run_sweep(sweep_run.SweepOptions(str(spec), str(out)), echo=_quiet) == 1
    assert calls == [str(out / "studies" / "imgsz64")]  # the second never started
    studies = json.loads((out / "sweep.json").read_text())["studies"]
    assert studies["imgsz96"]["status"] == "failed" and "studies is a symlink" in studies["imgsz96"]["reason"]
    assert list(victim.iterdir()) == []


def test_a_ray_tasks_files_are_never_written_through_a_symlinked_studies_folder(tmp_path):
    from detbench.sweep.ray_executor import _accept

    out = tmp_path / "out"
    out.mkdir()
    victim = _victim(tmp_path)
    (out / "studies").symlink_to(victim, target_is_directory=True)
    result = {"outcome": {"status": "ok", "seconds": 1.0, "node": {}, "study_id": "s"},
              "files": {"study.json": b"{}", "ablate.log": b"overwritten"}}
    outcome = _accept(result, out / "studies" / "imgsz64", out)
    assert outcome["status"] == "failed" and "studies is a symlink" in outcome["reason"]
    _untouched(victim)


def _spec_file(folder: Path, dataset: Path, **kwargs) -> Path:
    folder.mkdir(exist_ok=True)
    return write_spec(folder, dataset, **kwargs)


def test_another_sweep_file_never_replaces_or_drops_the_studies_in_out(tmp_path, monkeypatch, dataset):
    calls: list[str] = []
    monkeypatch.setattr(sweep_run, "run_study_child", _fake_study(calls))
    out = tmp_path / "results-sweep"
    first = _spec_file(tmp_path / "a", dataset, axes={"imgsz": [64, 96]})
    assert sweep_run.run_sweep(sweep_run.SweepOptions(str(first), str(out)), echo=_quiet) == 0
    before = (out / "sweep.json").read_text(), (out / "studies" / "imgsz64" / "study.json").read_text()
    other = _spec_file(tmp_path / "b", dataset, axes={"imgsz": [64]}, settings={"iters": 30})
    for dry_run in (True, False):
        with pytest.raises(DetbenchError, match=r"holds the studies of another sweep .*pass another --out") as caught:
            sweep_run.run_sweep(sweep_run.SweepOptions(str(other), str(out), dry_run=dry_run), echo=_quiet)
        assert one_line_error(caught).startswith(f"--out {out}: ") and str(first) in str(caught.value)
    assert ((out / "sweep.json").read_text(), (out / "studies" / "imgsz64" / "study.json").read_text()) == before
    assert len(calls) == 2

    copy = _spec_file(tmp_path / "c", dataset, axes={"imgsz": [64, 96]})  # the same sweep elsewhere: resumes
    assert sweep_run.run_sweep(sweep_run.SweepOptions(str(copy), str(out)), echo=_quiet) == 0 and len(calls) == 2
    wider = _spec_file(tmp_path / "d", dataset, axes={"imgsz": [64, 96, 128]})  # keeps every study, adds one
    assert sweep_run.run_sweep(sweep_run.SweepOptions(str(wider), str(out)), echo=_quiet) == 0
    assert calls[2:] == [str(out / "studies" / "imgsz128")]
    index = json.loads((out / "sweep.json").read_text())
    assert sorted(index["studies"]) == ["imgsz128", "imgsz64", "imgsz96"]
    assert index["sweep"]["file"] == str(wider.resolve())

    edited = write_spec(tmp_path / "d", dataset, axes={"imgsz": [64]}, settings={"iters": 30})  # its own: edited
    assert sweep_run.run_sweep(sweep_run.SweepOptions(str(edited), str(out)), echo=_quiet) == 0
    assert calls[3:] == [str(out / "studies" / "imgsz64")]


PLUGIN = "from pathlib import Path\nPath({marker!r}).write_text('plugin code ran')\n"


def test_a_sweep_files_plugin_or_unsafe_load_runs_nothing_unless_the_command_line_gives_it(tmp_path, dataset):
    marker = tmp_path / "ran"
    plugin = tmp_path / "evil.py"
    plugin.write_text(PLUGIN.format(marker=str(marker)))
    out = tmp_path / "out"
    spec = write_spec(tmp_path, dataset, settings={"plugin": [str(plugin)]})
    with pytest.raises(DetbenchError, match=r"settings.plugin .*evil.py would run its code in every study.*pass "
                                            r"--plugin .*evil.py to detbench sweep as well") as caught:
        sweep_run.run_sweep(sweep_run.SweepOptions(str(spec), str(out)), echo=_quiet)  # a real study otherwise
    assert one_line_error(caught).startswith(f"{spec}: ")
    with pytest.raises(DetbenchError, match=r"settings.plugin .* would run its code"):
        sweep_run.run_sweep(sweep_run.SweepOptions(str(spec), str(out), plugins=["other.py"]), echo=_quiet)
    unsafe = write_spec(tmp_path, dataset, settings={"unsafe_load": True})
    with pytest.raises(DetbenchError, match=r"settings.unsafe_load would load every checkpoint with a full pickle "
                                            r"load.*pass --unsafe-load"):
        sweep_run.run_sweep(sweep_run.SweepOptions(str(unsafe), str(out)), echo=_quiet)
    assert not marker.exists() and not out.exists()


def test_code_running_settings_are_shown_in_the_plan_and_at_the_start_and_reach_every_study(tmp_path, monkeypatch,
                                                                                          dataset):
    plugin = tmp_path / "layers.py"
    plugin.write_text("")
    spec = write_spec(tmp_path, dataset, axes={"imgsz": [64, 96]}, settings={"plugin": "layers.py",
                                                                            "unsafe-load": True})
    monkeypatch.chdir(tmp_path)
    options = functools.partial(sweep_run.SweepOptions, str(spec), str(tmp_path / "out"), unsafe_load=True,
                                plugins=[str(plugin), "mymodule"])
    lines: list[str] = []
    assert sweep_run.run_sweep(options(dry_run=True), echo=lines.append) == 0
    warnings = [line.strip() for line in lines if "warning:" in line]
    assert warnings == ["warning: --plugin layers.py: every study imports it, so its code runs with your rights",
                        "warning: --plugin mymodule: every study imports it, so its code runs with your rights",
                        "warning: --unsafe-load: every study loads its checkpoints with a full pickle load, which "
                        "runs any code they hold"]
    calls: list[str] = []
    argvs: list[list[str]] = []

    def runner(config, out, *args, **kwargs):
        argvs.append(config.argv())
        return _fake_study(calls)(config, out, *args, **kwargs)

    monkeypatch.setattr(sweep_run, "run_study_child", runner)
    lines.clear()
    assert sweep_run.run_sweep(options(), echo=lines.append) == 0
    assert [line for line in lines if "warning:" in line] == warnings
    assert lines.index(warnings[0]) < min(i for i, line in enumerate(lines) if line.startswith("detbench sweep:"))
    for argv in argvs:
        plugins = [flag.removeprefix("--plugin=") for flag in argv if flag.startswith("--plugin=")]
        assert plugins == [str(plugin), "mymodule"] and "--unsafe_load" in argv


@pytest.mark.parametrize("index", [
    {"kind": "detbench sweep", "studies": ["imgsz64"]},
    {"kind": "detbench sweep", "studies": []},
    {"kind": "detbench sweep", "studies": "imgsz64"},
    {"kind": "detbench sweep", "studies": 7},
    "[" * 100_000 + "]" * 100_000,
    {"kind": ["detbench sweep"]},
    [],
])
def test_a_sweep_index_of_any_other_shape_is_one_line(tmp_path, dataset, index):
    spec = write_spec(tmp_path, dataset)
    out = tmp_path / "out"
    out.mkdir()
    (out / "sweep.json").write_text(index if isinstance(index, str) else json.dumps(index))
    for dry_run in (True, False):
        with pytest.raises(DetbenchError, match=r"sweep.json there is (damaged|not a detbench sweep index).*--out"
                           ) as caught:
            sweep_run.run_sweep(sweep_run.SweepOptions(str(spec), str(out), dry_run=dry_run), echo=_quiet)
        assert one_line_error(caught).startswith(f"--out {out}: ")


def test_entries_of_the_wrong_shape_are_dropped_and_the_sweep_goes_on(tmp_path, monkeypatch, dataset):
    spec = write_spec(tmp_path, dataset, axes={"imgsz": [64, 96]})
    out = tmp_path / "out"
    calls: list[str] = []
    monkeypatch.setattr(sweep_run, "run_study_child", _fake_study(calls))
    assert sweep_run.run_sweep(sweep_run.SweepOptions(str(spec), str(out)), echo=_quiet) == 0 and len(calls) == 2
    index = json.loads((out / "sweep.json").read_text())
    key = index["studies"]["imgsz64"]["key"]  # the real key: the tampered entry is taken for this study's
    index.update(sweep=[1], studies={"imgsz64": {"key": key, "status": ["ok"], "seconds": "x", "node": [],
                                                 "attempts": "2", "study_id": {}},
                                     "imgsz96": ["ok"], "x": None})
    (out / "sweep.json").write_text(json.dumps(index))
    lines: list[str] = []
    assert sweep_run.run_sweep(sweep_run.SweepOptions(str(spec), str(out), dry_run=True), echo=lines.append) == 0
    assert "2 runnable" in lines[0] and "0 already finished" in lines[0]
    assert sweep_run.run_sweep(sweep_run.SweepOptions(str(spec), str(out)), echo=_quiet) == 0 and len(calls) == 4
    studies = json.loads((out / "sweep.json").read_text())["studies"]
    assert sorted(studies) == ["imgsz64", "imgsz96"] and {e["status"] for e in studies.values()} == {"ok"}


@pytest.mark.parametrize(("axes", "local"), [({"device_kind": ["..", "cpu"]}, None), ({"device_kind": ["."]}, None),
                                             ({"device_kind": ["-x"]}, None), ({"format": [".."]}, ("cpu", False)),
                                             ({"format": ["..", "onnx"]}, None)])
def test_a_cell_whose_folder_name_is_not_a_plain_name_is_refused_for_every_executor(tmp_path, axes, local):
    spec = load_spec(write_spec(tmp_path, axes=axes))
    with pytest.raises(DetbenchError, match=r"makes the study folder name '(\.\.|\.|-x)', which .*; change that axis"
                       ) as caught:
        make_plan(spec, local, "list")
    assert one_line_error(caught).startswith(f"{spec.path}: the cell (")


def test_a_sweep_file_without_settings_is_planned(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(json.dumps({"models": ["baseline", "p2"], "axes": {"device_kind": ["cpu"]}}))
    plan = make_plan(load_spec(path), None, "list")  # was a ValueError traceback (zip of the settings' flags)
    assert [s.name for s in plan.studies] == ["cpu"] and plan.studies[0].config.argv()[-1:] == [
        f"--runs={Path('results/runs').resolve()}"]


DRIVER = """
import subprocess, tempfile, time
from detbench.sweep.reaper import Reaper
folder = tempfile.mkdtemp(prefix="detbench-ray-test-")
reaper = Reaper(folder)
spawn = dict(start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
# as Ray's processes: started in the private folder, in a session of their own, not tied to this process
ray_like = [subprocess.Popen(["sleep", "300"], cwd=folder, **spawn) for _ in range(2)]
unrelated = subprocess.Popen(["sleep", "302"], cwd="/", **spawn)
print(*(p.pid for p in ray_like), unrelated.pid, reaper.process.pid, folder, flush=True)
time.sleep(300)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_the_reaper_ends_ray_processes_when_the_sweep_is_killed_and_nothing_else(tmp_path):
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    *pids, folder = driver.stdout.readline().split()
    first, second, unrelated, reaper = map(int, pids)
    try:
        assert all(alive(pid) for pid in (first, second, unrelated, reaper))
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=10)
        assert gone_within([first, second, reaper], 5.0) == []
        assert alive(unrelated) and not Path(folder).exists()
    finally:
        for pid in (first, second, unrelated):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
