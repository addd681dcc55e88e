"""Security review findings on the sweep's and the study's own files:
- sweep.json and study.json are read through `safe_io.read_json_bounded` everywhere (sweep, its dry run, its
  resume check, a study's node record, ablate's staleness check): a file of many empty lists (gigabytes once
  parsed) is refused before json.loads sees it;
- study folder names stay unique after the hash suffix (a cell named like a hash);
- a too-long --models entry and a lone surrogate or an over-long path in a sweep file are one line, not a traceback.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import one_line_error
from sweep_files import write_spec

from detbench.comparison import sweep as compare_sweep
from detbench.errors import DetbenchError
from detbench.files import safe_io
from detbench.files.safe_io import json_shape, read_json_bounded
from detbench.limits import MAX_PATH_CHARS
from detbench.report import study_record
from detbench.study import ablation
from detbench.study.models import ModelRun, resolve_models
from detbench.sweep import index as sweep_index
from detbench.sweep import run as sweep_run
from detbench.sweep import task
from detbench.sweep.plan import PlannedStudy, make_plan
from detbench.sweep.spec import load_spec

EMPTY_LISTS = 1000
HOSTILE = ("[" + ",".join(["[]"] * EMPTY_LISTS) + "]").encode()  # tiny here; 128 MiB of it is ~3.8 GB parsed


@pytest.fixture
def no_parse_of_hostile(monkeypatch):
    """json.loads fails the test if it is ever given the hostile file (other JSON parses as usual)."""
    real = json.loads

    def loads(data, *args, **kwargs):
        text = data.decode() if isinstance(data, bytes) else data
        assert "[],[]" not in text, "the hostile file reached json.loads"
        return real(data, *args, **kwargs)

    monkeypatch.setattr(safe_io.json, "loads", loads)


@pytest.fixture
def low_bound(monkeypatch):
    """A container bound below the hostile file's (the real one is MAX_RECORD_CONTAINERS, 4,000,000)."""
    for module in (sweep_index, study_record):
        monkeypatch.setattr(module, "MAX_RECORD_CONTAINERS", EMPTY_LISTS // 2)


def test_read_json_bounded_refuses_too_many_containers_in_one_line(tmp_path, no_parse_of_hostile):
    path = tmp_path / "x.json"
    path.write_bytes(HOSTILE)
    assert json_shape(HOSTILE) == (EMPTY_LISTS + 1, EMPTY_LISTS + 1 + EMPTY_LISTS - 1)
    with pytest.raises(DetbenchError, match=r"holds 1,001 lists and objects and 2,000 values, more than detbench "
                                            r"writes in one \(10 and 10,000\); run it again") as caught:
        read_json_bounded(path, "x.json", 10**6, 10, 10_000, "run it again")
    assert one_line_error(caught).startswith("x.json: ")
    with pytest.raises(DetbenchError, match="values"):
        read_json_bounded(path, "x.json", 10**6, 10**6, 100)
    with pytest.raises(DetbenchError, match="bytes|MiB"):
        read_json_bounded(path, "x.json", 100, 10**6, 10**6)
    # brackets inside strings are text, not containers; within the bounds, the JSON comes back
    path.write_text(json.dumps({"a": "[[[[{{{{", "b": [1, 2]}))
    assert read_json_bounded(path, "x.json", 10**6, 2, 10) == {"a": "[[[[{{{{", "b": [1, 2]}
    path.write_text("{not json")
    with pytest.raises(DetbenchError, match=r"not valid JSON \(JSONDecodeError\); fix") as caught:
        read_json_bounded(path, "x.json", 10**6, 10, 10, "fix")
    one_line_error(caught)


def test_sweep_dry_run_refuses_a_hostile_index_before_parsing_it(tmp_path, no_parse_of_hostile, low_bound):
    spec = write_spec(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "sweep.json").write_bytes(HOSTILE)
    with pytest.raises(DetbenchError, match="sweep.json there is not a detbench sweep index") as caught:
        sweep_run.run_sweep(sweep_run.SweepOptions(str(spec), str(out), dry_run=True), echo=lambda line: None)
    one_line_error(caught)


def test_a_hostile_study_record_is_not_parsed_by_the_sweep_or_ablate(tmp_path, no_parse_of_hostile, low_bound):
    study = PlannedStudy({"imgsz": 64}, "imgsz64", [], "cpu", False, key="k")
    folder = tmp_path / "studies" / "imgsz64"
    folder.mkdir(parents=True)
    (folder / "study.json").write_bytes(HOSTILE)
    index = {"studies": {"imgsz64": {"key": "k", "status": "ok", "study_id": "id"}}}
    assert sweep_index.finished(tmp_path, index, study) is False
    assert task._study_record(folder) is None
    assert ablation.stale_reason(folder, "k", [ModelRun("baseline", "baseline")]) == "study.json unreadable"
    with pytest.raises(DetbenchError, match="lists and objects") as caught:
        compare_sweep.SweepReader().record(folder)
    one_line_error(caught)


def test_a_fine_study_record_is_still_read(tmp_path):
    study = PlannedStudy({"imgsz": 64}, "imgsz64", [], "cpu", False, key="k")
    folder = tmp_path / "studies" / "imgsz64"
    folder.mkdir(parents=True)
    (folder / "study.json").write_text(json.dumps({"status": "ok", "id": "id", "key": "other"}))
    index = {"studies": {"imgsz64": {"key": "k", "status": "ok", "study_id": "id"}}}
    assert sweep_index.finished(tmp_path, index, study) is True
    assert task._study_record(folder) == {"status": "ok", "id": "id", "key": "other"}
    assert ablation.stale_reason(folder, "k", []) == "the models, weights, settings, list or design changed"


# ---------------------------------------------------------------- unique study names

def test_study_names_stay_unique_when_a_cell_is_named_like_a_hash(tmp_path):
    digest = hashlib.sha256(json.dumps({"device_kind": "A100 40GB"}).encode()).hexdigest()[:8]
    kinds = ["A100 40GB", "A100_40GB", f"A100_40GB-{digest}"]
    plan = make_plan(load_spec(write_spec(tmp_path, axes={"device_kind": kinds})), None, "list")
    names = [study.name for study in plan.studies]
    assert len(set(names)) == 3 and all(name.startswith("A100_40GB-") for name in names), names
    # names that do not collide are as before
    plan = make_plan(load_spec(write_spec(tmp_path, axes={"device_kind": ["A100 40GB", "H100"]})), None, "list")
    assert [study.name for study in plan.studies] == ["A100_40GB", "H100"]


# ---------------------------------------------------------------- one line, not a traceback

def test_a_too_long_models_entry_is_one_line_naming_the_flag():
    with pytest.raises(DetbenchError, match=r"^--models x+…#[0-9a-f]{16} \(under --runs results/runs\): cannot be "
                                            r"looked up") as caught:
        resolve_models(["x" * 5000], "results/runs")
    one_line_error(caught)
    with pytest.raises(DetbenchError, match="--models"):
        resolve_models(["baseline"], "r" * 5000)


def test_a_sweep_file_with_a_lone_surrogate_is_refused_in_one_line(tmp_path):
    path = tmp_path / "sweep.yaml"
    for raw, where in [({"models": ["baseline"], "runs": "\ud800", "axes": {"imgsz": [64]}}, "runs"),
                       ({"models": ["base\udc80line"], "axes": {"imgsz": [64]}}, r"models\.0"),
                       ({"models": ["baseline"], "settings": {"plugin": ["a", "\ud800"]}}, r"settings\.plugin\.1"),
                       ({"models": ["baseline"], "settings": {"\ud800": 1}}, "a key of settings")]:
        path.write_text(json.dumps(raw))  # ASCII: the surrogate as a JSON escape
        with pytest.raises(DetbenchError, match=rf"^{path}: {where} holds a lone surrogate") as caught:
            load_spec(path)
        one_line_error(caught)


def test_a_sweep_file_with_an_over_long_path_is_refused_in_one_line(tmp_path):
    path = tmp_path / "sweep.yaml"
    for raw, key in [({"models": "x" * 5000, "axes": {"imgsz": [64]}}, "models"),
                     ({"models": ["baseline"], "runs": "r" * (MAX_PATH_CHARS + 1)}, "runs"),
                     ({"models": ["baseline"], "data": "d" * (MAX_PATH_CHARS + 1)}, "data")]:
        path.write_text(json.dumps(raw))
        with pytest.raises(DetbenchError, match=rf"^{path}: {key} holds a path or name of") as caught:
            load_spec(path)
        one_line_error(caught)
    path.write_text(json.dumps({"models": ["baseline"], "runs": "r" * MAX_PATH_CHARS}))
    assert load_spec(Path(path)).runs == "r" * MAX_PATH_CHARS
