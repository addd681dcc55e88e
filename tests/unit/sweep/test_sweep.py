"""`detbench sweep`: the sweep file, the plan and its content keys, the local executor (real studies on the CPU;
the GPU pinning with a fake device list), failures, resume, and `compare --sweep`."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from conftest import make_report, save, spread
from sweep_files import write_spec

from detbench.errors import DetbenchError
from detbench.sweep import run as sweep_run
from detbench.sweep.plan import make_plan
from detbench.sweep.spec import load_spec

CPU = ("cpu", False)


@pytest.mark.parametrize(("content", "message"), [
    ("models: [a]\naxes: {imgsz: [640, 640]}\n", r"axes.imgsz lists a value twice"),
    ("models: [a]\naxes: {imgsz: [0]}\n", r"axes.imgsz values must be positive integers, got 0"),
    ("models: [a]\naxes: {precision: [int8]}\n", r"axes.precision values are fp32 or fp16, got 'int8'"),
    ("models: [a]\naxes: {resolution: [640]}\n", r"unknown axis resolution; the axes are imgsz, batch"),
    ("models: [a]\naxes: {imgsz: [640]}\nsettings: {imgsz: 320}\n", r"settings.imgsz is set by the sweep itself"),
    ("models: [a]\naxes: {precision: [fp16]}\nsettings: {half: true}\n", r"settings.half is set by the sweep itself"),
    ("models: []\n", r"models must list at least one model"),
    ("models: [a]\nmodel: [b]\n", r"unknown key\(s\) model"),
    ("models: [a\n", r"not valid YAML"),
    ("models: [a]\naxes: {imgsz: [" + ", ".join(str(32 * i) for i in range(1, 60)) + "], batch: ["
     + ", ".join(str(i) for i in range(1, 60)) + "], threads: [1, 2, 3, 4]}\n", r"the axes make 13924 studies"),
])
def test_a_bad_sweep_file_is_one_line_naming_the_file_and_the_key(tmp_path, content, message):
    path = tmp_path / "sweep.yaml"
    path.write_text(content)
    with pytest.raises(DetbenchError, match=message) as caught:
        load_spec(path)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


def test_the_plan_is_the_product_of_the_axes_with_impossible_cells_marked_and_unknown_flags_refused(tmp_path):
    spec = load_spec(write_spec(tmp_path, axes={"imgsz": [64, 96], "precision": ["fp32", "fp16"],
                                                "format": ["pytorch", "openvino"]}))
    plan = make_plan(spec, CPU, "list")
    assert [s.name for s in plan.studies][:3] == ["imgsz64-fp32-pytorch", "imgsz64-fp32-openvino",
                                                  "imgsz64-fp16-pytorch"]
    assert len(plan.studies) == 8 and len(plan.runnable) == 4  # fp16 needs a GPU
    invalid = {s.name: s.invalid for s in plan.studies if s.invalid}
    assert invalid["imgsz96-fp16-openvino"].startswith("precision fp16 (--half) needs a GPU")
    study = plan.studies[1]
    assert study.config.argv()[:2] == ["--models=baseline,p2", f"--runs={Path('results/runs').resolve()}"]
    assert "--format=openvino" in study.config.argv() and "--no-until_decided" in study.config.argv()
    gpu_plan = make_plan(spec, ("NVIDIA H200", True), "list")
    assert "OpenVINO runs on the CPU here" in {s.name: s.invalid for s in gpu_plan.studies}["imgsz64-fp16-openvino"]
    bad = load_spec(write_spec(tmp_path, settings={"warmpu": 3}))
    with pytest.raises(DetbenchError, match=r"settings.warmpu is not an ablate flag"):
        make_plan(bad, CPU)
    with pytest.raises(DetbenchError, match=r"axes.device_kind H100: this machine runs CPU studies .*need --ray"):
        make_plan(load_spec(write_spec(tmp_path, axes={"device_kind": ["H100"]})), CPU)


def test_only_paths_are_made_absolute_for_the_run_and_names_stay_names(tmp_path, monkeypatch, yaml_checkpoint):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "baseline").mkdir()  # a folder named like a zoo model, and one like a plugin module
    (tmp_path / "myplugin").mkdir()
    (tmp_path / "layers.py").write_text("")
    (tmp_path / "m.pt").write_bytes(yaml_checkpoint.read_bytes())
    spec = load_spec(write_spec(tmp_path, models=["baseline", "m.pt@onnx", "yolov8n.yaml"],
                                settings={"plugin": ["myplugin", "layers.py"]}))
    study = make_plan(spec, CPU, "list").studies[0]
    # a bare YAML name that is not here is Ultralytics' own (shipped) model, not a file of this folder
    assert study.config.argv()[0] == f"--models=baseline,{tmp_path / 'm.pt'}@onnx,yolov8n.yaml"
    plugins = [flag.removeprefix("--plugin=") for flag in study.config.argv() if flag.startswith("--plugin=")]
    assert plugins == ["myplugin", str(tmp_path / "layers.py")]
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / "m.pt").write_bytes(yaml_checkpoint.read_bytes())
    (moved / "layers.py").write_text("")
    (moved / "sweep.yaml").write_text((tmp_path / "sweep.yaml").read_text())
    monkeypatch.chdir(moved)  # the same sweep from another folder: the same keys (paths as the file gives them)
    assert make_plan(load_spec(moved / "sweep.yaml"), CPU, "list").studies[0].key == study.key


def test_the_setting_of_an_axis_the_file_does_not_use_applies_to_every_study(tmp_path):
    spec = load_spec(write_spec(tmp_path, axes={"batch": [1, 2]}, settings={"imgsz": 96}))
    assert [study.config.bench["imgsz"] for study in make_plan(spec, CPU, "list").studies] == [96, 96]


def test_content_keys_change_with_the_weights_the_settings_the_device_kind_and_the_list(tmp_path, yaml_checkpoint):
    checkpoint = tmp_path / "m.pt"
    checkpoint.write_bytes(yaml_checkpoint.read_bytes())
    spec = load_spec(write_spec(tmp_path, models=["baseline", str(checkpoint)], axes={"imgsz": [64, 96]}))
    first = make_plan(spec, CPU, "list-a")
    assert [s.key for s in first.studies] == [s.key for s in make_plan(spec, CPU, "list-a").studies]
    assert len({s.key for s in first.studies}) == 2
    assert first.studies[0].key != make_plan(spec, ("NVIDIA H200", True), "list-a").studies[0].key
    assert first.studies[0].key != make_plan(spec, CPU, "list-b").studies[0].key
    more = load_spec(write_spec(tmp_path, models=["baseline", str(checkpoint)], axes={"imgsz": [64, 96]},
                                settings={"iters": 30}))
    assert first.studies[0].key != make_plan(more, CPU, "list-a").studies[0].key
    checkpoint.write_bytes(yaml_checkpoint.read_bytes() + b"\0")  # other weights, same path
    assert first.studies[0].key != make_plan(spec, CPU, "list-a").studies[0].key


def _fake_study(calls: list, lock: threading.Lock, fail: set[str] = frozenset(),
                together: threading.Barrier | None = None):
    """A study that takes a moment; with `together`, the first studies must be running at the same time (the
    barrier breaks after 10 s otherwise)."""
    def run_study_child(argv, out, list_path, device, timeout_s, env=None, python=None):
        with lock:
            calls.append({"study": out.name, "device": device, "env": env, "start": time.monotonic()})
            first = len(calls) <= (together.parties if together else 0)
        if first:
            together.wait(timeout=10)
        time.sleep(0.1)
        out.mkdir(parents=True, exist_ok=True)
        if out.name in fail:
            return {"status": "failed", "reason": "error: CUDA out of memory at --batch 32", "exit_code": 2,
                    "seconds": 0.3, "node": {"hostname": "h"}}
        (out / "study.json").write_text(json.dumps({"status": "ok", "id": out.name}))
        return {"status": "ok", "reason": None, "exit_code": 0, "seconds": 0.3, "node": {"hostname": "h"},
                "study_id": out.name}
    return run_study_child


def test_on_gpus_one_study_runs_per_gpu_at_once_each_pinned_and_a_failure_is_recorded_while_the_rest_go_on(
        tmp_path, monkeypatch, dataset):
    calls: list = []
    monkeypatch.setattr(sweep_run, "local_device_kind", lambda: ("NVIDIA H200", True, ["0", "1"]))
    monkeypatch.setattr(sweep_run, "run_study_child", _fake_study(calls, threading.Lock(), fail={"imgsz96-b8"},
                                                            together=threading.Barrier(2)))
    monkeypatch.setattr(sweep_run, "slot_cpus", lambda devices: {"0": "0", "1": "1"})
    spec = write_spec(tmp_path, dataset, axes={"imgsz": [64, 96], "batch": [1, 8]})
    out = tmp_path / "out"
    assert sweep_run.run_sweep(sweep_run.SweepOptions(str(spec), str(out)), echo=lambda line: None) == 1
    assert sorted(c["env"]["CUDA_VISIBLE_DEVICES"] for c in calls) == ["0", "0", "1", "1"]
    assert {c["device"] for c in calls} == {"0"}  # each study sees its one GPU as device 0
    assert all(c["env"]["DETBENCH_CPUS"] == c["env"]["CUDA_VISIBLE_DEVICES"] for c in calls)  # its slot's cores
    index = json.loads((out / "sweep.json").read_text())
    statuses = {name: entry["status"] for name, entry in index["studies"].items()}
    assert statuses == {"imgsz64-b1": "ok", "imgsz64-b8": "ok", "imgsz96-b1": "ok", "imgsz96-b8": "failed"}
    assert index["studies"]["imgsz96-b8"]["reason"] == "error: CUDA out of memory at --batch 32"

    calls.clear()  # resume: the finished studies are skipped, the failed one runs again
    monkeypatch.setattr(sweep_run, "run_study_child", _fake_study(calls, threading.Lock()))
    assert sweep_run.run_sweep(sweep_run.SweepOptions(str(spec), str(out)), echo=lambda line: None) == 0
    assert [c["study"] for c in calls] == ["imgsz96-b8"]


def test_ray_missing_or_unreachable_is_one_line_and_nothing_is_written(tmp_path, monkeypatch, dataset):
    import sys

    from detbench.sweep import ray_executor

    spec = write_spec(tmp_path, dataset)
    out = tmp_path / "out"
    with monkeypatch.context() as patched:
        patched.setitem(sys.modules, "ray", None)
        with pytest.raises(DetbenchError, match=r"--ray local: Ray is not installed; pip install -e '\.\[ray\]'"):
            sweep_run.run_sweep(sweep_run.SweepOptions(str(spec), str(out), ray="local"), echo=lambda line: None)
    pytest.importorskip("ray")
    with pytest.raises(DetbenchError, match=r"--ray 127.0.0.1:1: nothing answers at 127.0.0.1:1"):
        ray_executor.check_reachable("127.0.0.1:1", ray_executor.cluster_address("ray://127.0.0.1:1"))
    with pytest.raises(DetbenchError, match=r"--ray 127.0.0.1:1: nothing answers"):
        sweep_run.run_sweep(sweep_run.SweepOptions(str(spec), str(out), ray="127.0.0.1:1"), echo=lambda line: None)
    assert not out.exists()


def test_ray_tasks_hold_a_whole_gpu_of_the_asked_kind_or_a_whole_node_on_cpu_and_impossible_ones_are_named():
    from detbench.sweep.plan import PlannedStudy
    from detbench.sweep.ray_executor import infeasible, task_options

    gpu = PlannedStudy({}, "x", [], "H100", True, threads=4)
    assert task_options(gpu, ("n1", 16)) == {"num_cpus": 5, "num_gpus": 1, "max_retries": 1,
                                             "accelerator_type": "H100"}
    assert "accelerator_type" not in task_options(PlannedStudy({}, "x", [], "cuda", True), ("n1", 16))
    pinned = task_options(PlannedStudy({}, "x", [], "cpu", False), ("n2", 64), strategy="on n2")
    assert pinned == {"num_cpus": 64, "num_gpus": 0, "max_retries": 1, "scheduling_strategy": "on n2"}
    cluster = {"CPU": 64.0, "GPU": 8.0, "accelerator_type:A100": 1.0}
    assert infeasible(gpu, cluster) == "no node of accelerator type H100 (the cluster has A100)"
    assert infeasible(gpu, {"CPU": 2.0}) == "the cluster has no GPU"
    assert infeasible(PlannedStudy({}, "x", [], "A100", True), cluster) is None
    from detbench.study.options import StudyConfig
    from detbench.sweep.ray_executor import node_config

    on_gpu = PlannedStudy({}, "x", StudyConfig(), "H100", True, threads=4)
    assert node_config(on_gpu).argv() == ["--threads=4"]  # the CPUs it asked Ray for, not every core of the node
    given = StudyConfig(bench={"threads": 2})
    assert node_config(PlannedStudy({}, "x", given, "A100", True, threads=2)).argv() == ["--threads=2"]
    assert node_config(PlannedStudy({}, "x", StudyConfig(), "cpu", False, threads=2)).argv() == []


def test_a_ray_tasks_results_are_checked_before_anything_is_written(tmp_path):
    from detbench.sweep.ray_executor import _accept

    folder = tmp_path / "studies" / "cell"
    good = {"outcome": {"status": "ok", "seconds": 3.0, "node": {"hostname": "n"}, "study_id": "s", "evil": 1},
            "files": {"study.json": b"{}", "baseline.json": b"{}"}}
    outcome = _accept(good, folder)
    assert outcome["status"] == "ok" and "evil" not in outcome
    assert sorted(p.name for p in folder.iterdir()) == ["baseline.json", "study.json"]
    for files in ({"../../escape.json": b"x"}, {"": b"x"}, {".hidden.json": b"x"}, {"a\0b.json": b"x"},
                  {"ok.json": "not bytes"}, {"x.sh": b"x"}):
        bad = _accept({"outcome": {"status": "ok"}, "files": files}, tmp_path / "other")
        assert bad["status"] == "failed" and "could not be kept" in bad["reason"], files
    assert not (tmp_path / "escape.json").exists()
    assert _accept("garbage", tmp_path / "x")["status"] == "failed"
    link = tmp_path / "studies" / "linked"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert _accept(good, link)["status"] == "failed"


def test_a_study_that_cannot_even_start_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch, dataset):
    calls: list = []
    fake = _fake_study(calls, threading.Lock())

    def flaky(argv, out, *args, **kwargs):
        if out.name == "imgsz64":
            raise OSError("studies/imgsz64 is not a plain folder; remove it")
        return fake(argv, out, *args, **kwargs)

    monkeypatch.setattr(sweep_run, "run_study_child", flaky)
    spec = write_spec(tmp_path, dataset, axes={"imgsz": [64, 96]})
    out = tmp_path / "out"
    assert sweep_run.run_sweep(sweep_run.SweepOptions(str(spec), str(out)), echo=lambda line: None) == 1
    studies = json.loads((out / "sweep.json").read_text())["studies"]
    assert studies["imgsz64"]["status"] == "failed" and "not a plain folder" in studies["imgsz64"]["reason"]
    assert studies["imgsz96"]["status"] == "ok"


def test_hostile_sweep_files_are_refused_quickly(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("models: [a]\naxes: {format: [&b0 [x, x, x], &b1 [*b0, *b0, *b0]]}\n")
    with pytest.raises(DetbenchError, match="aliases .* are not allowed"):
        load_spec(bomb)
    big = tmp_path / "big.yaml"
    big.write_text("models: [a]\naxes: {imgsz: [" + "9" * 5000 + "]}\n")
    with pytest.raises(DetbenchError, match="a value cannot be read"):
        load_spec(big)
    nested = tmp_path / "nested.yaml"
    nested.write_text("models: [a]\nsettings: {plugin: [[a, b]]}\n")
    with pytest.raises(DetbenchError, match="settings.plugin must be a number, a word or a short list"):
        load_spec(nested)
    helpful = tmp_path / "help.yaml"
    helpful.write_text("models: [a]\nsettings: {help: true}\n")
    with pytest.raises(DetbenchError, match="settings.help is set by the sweep itself"):
        load_spec(helpful)


def test_cells_whose_folder_names_collide_get_distinct_folders(tmp_path):
    spec = load_spec(write_spec(tmp_path, axes={"device_kind": ["A100 40GB", "A100_40GB"]}))
    names = [s.name for s in make_plan(spec, None, "list").studies]
    assert len(set(names)) == 2 and all(n.startswith("A100_40GB-") for n in names)


def test_gpu_slots_name_the_gpus_of_the_sweeps_own_mask(monkeypatch):
    import torch

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA H200")
    assert sweep_run.local_device_kind() == ("NVIDIA H200", True, ["2", "3"])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: ["NVIDIA H200", "NVIDIA A100"][i])
    with pytest.raises(DetbenchError, match="GPUs of 2 kinds"):
        sweep_run.local_device_kind()


def test_the_node_comes_from_this_studys_own_reports_not_a_stale_one(tmp_path):
    from detbench.sweep.task import node_record

    (tmp_path / "study.json").write_text(json.dumps({"id": "s1", "models": ["b"]}))
    dropped = make_report("a_dropped_model", spread(10.0))
    dropped.update(study={"id": "s0"}, environment={"hostname": "node-7", "cpu": "old CPU"})
    own = make_report("b", spread(10.0))
    own.update(study={"id": "s1"}, environment={"hostname": "here", "cpu": "this CPU"},
               gpu={"name": "NVIDIA H200", "driver": "580.1"})
    for report in (dropped, own):
        save(tmp_path, report)
    assert node_record(tmp_path, "0") == {"hostname": "here", "device": "0", "cpu": "this CPU",
                                          "gpu_name": "NVIDIA H200", "driver": "580.1"}
