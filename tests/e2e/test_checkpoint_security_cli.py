"""Hostile checkpoints and model files through the bounded check child and the CLI: each attack ends in bounded time
and memory with one line.

The command lines run in a child process that imports torch and Ultralytics once and then runs each as `detbench
ARGS` would (tests/batch_child.py): its exit code and output, under an alarm and an address-space limit; the bounded
check child is started for each, as by the CLI."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
from batch_child import run_batch
from cli_batch import CLI_MAIN, run_cli_batch
from conftest import REPO
from hostile_checkpoints import (
    checkpoint_archive,
    from_type_payload,
    inflating_record,
    list_dag,
    mark_list_bomb,
    nested_tuple_key,
    refused,
    save_model_edit,
    save_with,
    shared_module_dag,
    strided_view,
    upsampling_bomb,
)

from detbench.models.loading import precheck_model

QUICK = ["--device", "cpu", "--imgsz", "64", "--warmup", "1", "--iters", "2", "--threads", "1",
         "--benchmark_size", "4"]
MEMORY_HEADROOM = 2 * 2**30  # address space of the process running the command lines, beyond its imports
CASE_TIMEOUT_S = 120


def refused_by_cli(outcome: Any, folder: Path, pattern: str, seconds: float = 45) -> str:
    """The command ended with exit 2, exactly one `error:` line matching `pattern`, no traceback, no output folder
    (FOLDER/out)."""
    lines = [line for line in outcome.stderr.splitlines() if line.startswith("error: ")]
    assert outcome.returncode == 2, outcome.stderr[-2000:]
    assert len(lines) == 1 and "Traceback" not in outcome.stderr, outcome.stderr[-2000:]
    assert re.search(pattern, lines[0]), lines[0]
    assert outcome.seconds < seconds, f"took {outcome.seconds:.1f} s"
    assert not (folder / "out").exists()
    return lines[0]


HOSTILE = {
    "mark-list": (lambda base, path: mark_list_bomb(base, path),
                  r"refused to load: (more than 1,000,000 pickle opcodes|opcode LIST)"),
    "tuple-key": (lambda base, path: checkpoint_archive(base, nested_tuple_key(64), path),
                  r"refused to load: its objects expand to more than 5,000,000"),
    "module-dag": (lambda base, path: save_with(base, path, model=shared_module_dag(48)),
                   r"refused to load: its objects expand to more than"),
    "data-list": (lambda base, path: save_with(base, path, train_args={"data": list_dag(133)}),
                  r"refused to load: its objects expand to more than"),
    "strided-view": (lambda base, path: save_with(base, path, payload=strided_view()),
                     r"a tensor view of 1,073,741,824 elements .* over a storage of 1"),
    "inflating-zip": (lambda base, path: inflating_record(base, path),
                      r"refused to load: its entries inflate to \d+ MiB from a \d+\.\d MiB file"),
}


@pytest.fixture(scope="module")
def refusals(tmp_path_factory, yaml_checkpoint, dataset) -> dict[str, tuple[Path, Any]]:
    """Each hostile file, and each model that overruns a bound of the check, through `detbench bench` (all in one
    child): name -> (its folder, its outcome)."""
    folders = {name: tmp_path_factory.mktemp(name) for name in [*HOSTILE, "upsample", "slow-build", "budget"]}
    cases = {}
    for name, (build, _pattern) in HOSTILE.items():
        cases[name] = ["bench", "--weights", build(yaml_checkpoint, folders[name] / "hostile.pt"), *QUICK]
    bomb = save_model_edit(yaml_checkpoint, folders["upsample"] / "upsample.pt", upsampling_bomb)
    cases["upsample"] = ["bench", "--weights", bomb, *QUICK, "--data", dataset, "--imgsz", "320", "--load-memory",
                         "1024"]
    spec = (REPO / "src" / "detbench" / "zoo" / "baseline.yaml").read_text()
    slow = folders["slow-build"] / "slow.yaml"
    slow.write_text(spec.replace("[-1, 1, SPPF, [1024, 5]]", "[-1, 200000, Conv, [1024, 3, 1]]", 1))
    cases["slow-build"] = ["bench", "--weights", slow, *QUICK, "--data", dataset, "--load-timeout", "5"]
    cases["budget"] = ["bench", "--weights", yaml_checkpoint, *QUICK, "--data", dataset, "--iters", "1000000",
                       "--time-budget", "1"]
    outcomes = run_cli_batch({name: ([*args, "--out", folders[name] / "out"], folders[name])
                              for name, args in cases.items()}, tmp_path_factory.mktemp("batch"))
    return {name: (folders[name], outcomes[name]) for name in cases}


TORCH_LOAD = """import torch
from ultralytics.nn.tasks import DetectionModel
with torch.serialization.safe_globals([DetectionModel]):
    try: torch.load(sys.argv[2], weights_only=True)
    except Exception: pass
"""


@pytest.fixture(scope="module")
def payloads(tmp_path_factory, yaml_checkpoint) -> dict[str, tuple[Path, Any]]:
    """The critical payload with Ultralytics' own safe load off, in one child that imports torch and Ultralytics
    only: loaded by torch's restricted loader with a class allow-list, refused by `detbench bench`, and run by
    `detbench bench --unsafe-load` (last: it runs the payload in the child). Name -> (its folder, its outcome)."""
    folders = {name: tmp_path_factory.mktemp(name) for name in ("torch-load", "refused", "trusted")}
    torch_load = folders["torch-load"] / "evil.pt"  # needs no global but DetectionModel
    torch.save({"payload": from_type_payload(folders["torch-load"] / "marker")}, torch_load)
    evil = save_with(yaml_checkpoint, folders["refused"] / "evil.pt",
                     payload=from_type_payload(folders["refused"] / "marker"))
    trusted = save_with(yaml_checkpoint, folders["trusted"] / "trusted.pt",
                        payload=from_type_payload(folders["trusted"] / "marker"))
    cases = [("torch-load", TORCH_LOAD, [str(torch_load)]),
             ("refused", CLI_MAIN, ["bench", "--weights", str(evil), *QUICK, "--out", str(folders["refused"] / "out")]),
             ("trusted", CLI_MAIN, ["bench", "--weights", str(trusted), *QUICK, "--out",
                                    str(folders["trusted"] / "out"), "--unsafe-load"])]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ULTRALYTICS_SAFE_LOAD", "0")
        outcomes = run_batch([(name, code, args, str(folders[name])) for name, code, args in cases],
                             imports="import torch, ultralytics", headroom=MEMORY_HEADROOM,
                             case_timeout=CASE_TIMEOUT_S, scratch=tmp_path_factory.mktemp("batch"))
    assert set(outcomes) == set(folders), f"no outcome for {sorted(set(folders) - set(outcomes))}"
    return {name: (folders[name], outcomes[name]) for name in folders}


@pytest.mark.slow
def test_allowed_class_passed_to_a_rebuild_helper_runs_nothing(payloads):
    """`_rebuild_from_type_v2(DetectionModel, ...)` calls DetectionModel(cfg), which eval()s the cfg."""
    folder, outcome = payloads["refused"]
    line = refused_by_cli(outcome, folder, r"refused to load: it calls torch\._tensor\._rebuild_from_type_v2 with "
                                           r"ultralytics\.nn\.tasks\.DetectionModel as the function it calls")
    assert "--unsafe-load only if you trust the file" in line
    assert not (folder / "marker").exists()


@pytest.mark.slow
def test_the_payload_is_live_without_detbench_refusing_it(payloads):
    """Fault injection: torch's restricted loader with a class allow-list, or --unsafe-load, runs the payload."""
    folder, outcome = payloads["torch-load"]
    assert outcome.returncode == 0, outcome.stderr
    assert (folder / "marker").is_dir()  # weights_only=True plus an allowed class is not enough on its own
    folder, _outcome = payloads["trusted"]
    assert (folder / "marker").is_dir()


@pytest.mark.slow
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_checkpoints_end_in_seconds(refusals, case):
    folder, outcome = refusals[case]
    refused_by_cli(outcome, folder, HOSTILE[case][1], seconds=30)
@pytest.mark.slow
def test_huge_pickle_is_refused_before_inflating(tmp_path, yaml_checkpoint):
    """A 600 KiB deflated pickle that inflates to 600 MB is refused from the declared size."""
    weights = checkpoint_archive(yaml_checkpoint, b"\x80\x02]" + b"]a" * (300 * 2**20) + b".",
                                 tmp_path / "big.pt", deflate=True)
    assert weights.stat().st_size < 2 * 2**20
    refused(weights, r"(its entries inflate to 600 MiB from a 0\.6 MiB file|its pickle is 600\.0 MiB)")


@pytest.mark.slow
def test_model_that_explodes_when_run_is_stopped_by_the_memory_bound(refusals):
    """Passes every static check, then needs gigabytes in one forward pass: the bounded child stops it."""
    folder, outcome = refusals["upsample"]
    precheck_model(str(folder / "upsample.pt"))  # nothing static to object to
    refused_by_cli(outcome, folder, r"(needs more than detbench's limit of 1\.0 GiB|fails to load and run once)",
                   seconds=60)


@pytest.mark.slow
def test_model_that_takes_forever_to_build_is_stopped_by_the_time_bound(refusals):
    folder, outcome = refusals["slow-build"]
    refused_by_cli(outcome, folder, r"loading and checking the model took more than 5 s, detbench's limit; .*"
                                    r"--load-timeout", seconds=40)


@pytest.mark.slow
def test_a_run_that_would_outlast_its_time_budget_is_refused_before_it_starts(refusals):
    folder, outcome = refusals["budget"]
    refused_by_cli(outcome, folder, r"one forward pass took [\d.e-]+ s, so 1000001 of them at --batch 1 need at least "
                                    r"\d+ min, beyond --time-budget 1 s")
