"""StudyConfig: ablate's flags from its field metadata, checked in one place, and back to a command line."""

from __future__ import annotations

import pytest

from detbench.cli import parse
from detbench.errors import DetbenchError
from detbench.study.options import StudyConfig


def test_the_flags_parse_to_a_config_and_the_config_back_to_the_same_flags():
    config = StudyConfig.from_args(parse(["ablate", "--models", "a, b", "--no-until-decided", "--imgsz", "64",
                                          "--study-time", "30"]))
    assert config.models == ["a", "b"] and not config.until_decided and config.study_time == 30
    assert config.bench["imgsz"] == 64
    assert StudyConfig.from_args(parse(["ablate", *config.argv()])) == config


@pytest.mark.parametrize(("changes", "message"), [
    ({"workers_per_model": 0}, "--workers-per-model must be between 1 and 16, got 0"),
    ({"study_time": -1.0}, "--study-time must be a positive number of seconds"),
    ({"alpha": 1.5}, "--alpha must be between 0 and 1"),
    ({"bias_probe": 1}, r"--bias-probe must be 0 \(off\) or between 2"),
    ({"bench": {"imgsz": 8}}, "--imgsz must be between 32 and 8192, got 8"),
])
def test_a_bad_value_is_one_line_naming_the_flag(changes, message):
    with pytest.raises(DetbenchError, match=message):
        StudyConfig(**changes).validate()


def test_the_old_spellings_still_work_with_one_warning(capsys):
    assert parse(["ablate", "--max-time", "30"]).study_time == 30
    assert parse(["demo", "--max_time", "5"]).study_time == 5
    assert parse(["compare", "--format", "md", "--format", "csv"]).formats == ["md", "csv"]
    assert capsys.readouterr().err.splitlines() == [
        "warning: --max-time is deprecated for ablate; use --study-time",
        "warning: --max_time is deprecated for demo; use --study-time",
        "warning: --format is deprecated for compare; use --table-format"]


def test_the_design_comes_from_the_fields_and_keeps_the_keys_studies_recorded():
    config = StudyConfig(study_time=5.0, turn_warmup=2)
    assert config.design("b") == {"baseline": "b", "processes_hold_every_model": True, "workers_per_model": 2,
                                  "fresh_workers": True, "until_decided": True, "max_time": 5.0, "min_effect": 0.02,
                                  "alpha": 0.05, "turn_warmup": 2, "order_seed": 0}
    assert StudyConfig(bias_probe=3).design("b")["bias_probe"] == 3  # only when on: older keys stay as they were
