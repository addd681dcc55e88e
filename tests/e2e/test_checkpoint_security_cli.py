"""Hostile checkpoints and model files through the bounded check child and the CLI: each attack ends in bounded time
and memory with one line."""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, run_cli, run_command
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
MEMORY_LIMIT = 10 * 2**30  # address space of the CLI process: torch's import alone maps about 3.4 GB
TIME_LIMIT = 120


def bounded_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """`python -m detbench.cli ARGS` with a wall-clock and an address-space limit; (result, seconds)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    start = time.monotonic()
    result = run_cli(*args, cwd=cwd, timeout=TIME_LIMIT, preexec_fn=limit, env=env)
    return result, time.monotonic() - start


def refused_by_cli(weights: Path, tmp_path: Path, pattern: str, *extra: str, env: dict[str, str] | None = None,
                   seconds: float = 45) -> str:
    """The CLI ends with exit 2, exactly one `error:` line matching `pattern`, no traceback, no output folder."""
    out = tmp_path / "out"
    result, elapsed = bounded_cli("bench", "--weights", str(weights), *QUICK, "--out", str(out), *extra,
                                  cwd=tmp_path, env=env)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert re.search(pattern, lines[0]), lines[0]
    assert elapsed < seconds, f"took {elapsed:.1f} s"
    assert not out.exists()
    return lines[0]


@pytest.mark.slow
def test_allowed_class_passed_to_a_rebuild_helper_runs_nothing(tmp_path, yaml_checkpoint):
    """`_rebuild_from_type_v2(DetectionModel, ...)` calls DetectionModel(cfg), which eval()s the cfg."""
    marker = tmp_path / "marker"
    evil = save_with(yaml_checkpoint, tmp_path / "evil.pt", payload=from_type_payload(marker))
    line = refused_by_cli(evil, tmp_path, r"refused to load: it calls torch\._tensor\._rebuild_from_type_v2 with "
                                          r"ultralytics\.nn\.tasks\.DetectionModel as the function it calls",
                          env={"ULTRALYTICS_SAFE_LOAD": "0"})
    assert "--unsafe-load only if you trust the file" in line
    assert not marker.exists()


@pytest.mark.slow
def test_the_payload_is_live_without_detbench_refusing_it(tmp_path, yaml_checkpoint):
    """Fault injection: torch's restricted loader with a class allow-list, or --unsafe-load, runs the payload."""
    marker_torch, marker_cli = tmp_path / "marker-torch", tmp_path / "marker-cli"
    evil = tmp_path / "evil.pt"
    torch.save({"payload": from_type_payload(marker_torch)}, evil)  # needs no global but DetectionModel
    code = ("import torch, sys\nfrom ultralytics.nn.tasks import DetectionModel\n"
            "with torch.serialization.safe_globals([DetectionModel]):\n"
            "    try: torch.load(sys.argv[1], weights_only=True)\n    except Exception: pass\n")
    done = run_command([sys.executable, "-c", code, str(evil)], env={"ULTRALYTICS_SAFE_LOAD": "0", "YOLO_OFFLINE": "1"},
                       timeout=120)
    assert done.returncode == 0, done.stderr
    assert marker_torch.is_dir()  # weights_only=True plus an allowed class is not enough on its own

    trusted = save_with(yaml_checkpoint, tmp_path / "trusted.pt", payload=from_type_payload(marker_cli))
    bounded_cli("bench", "--weights", str(trusted), *QUICK, "--out", str(tmp_path / "out"), "--unsafe-load",
                cwd=tmp_path, env={"ULTRALYTICS_SAFE_LOAD": "0"})
    assert marker_cli.is_dir()


@pytest.mark.slow
@pytest.mark.parametrize("build, pattern", [
    (lambda base, path: mark_list_bomb(base, path),
     r"refused to load: (more than 1,000,000 pickle opcodes|opcode LIST)"),
    (lambda base, path: checkpoint_archive(base, nested_tuple_key(64), path),
     r"refused to load: its objects expand to more than 5,000,000"),
    (lambda base, path: save_with(base, path, model=shared_module_dag(48)),
     r"refused to load: its objects expand to more than"),
    (lambda base, path: save_with(base, path, train_args={"data": list_dag(133)}),
     r"refused to load: its objects expand to more than"),
    (lambda base, path: save_with(base, path, payload=strided_view()),
     r"a tensor view of 1,073,741,824 elements .* over a storage of 1"),
    (lambda base, path: inflating_record(base, path),
     r"refused to load: its entries inflate to \d+ MiB from a \d+\.\d MiB file"),
], ids=["mark-list", "tuple-key", "module-dag", "data-list", "strided-view", "inflating-zip"])
def test_hostile_checkpoints_end_in_seconds(tmp_path, yaml_checkpoint, build, pattern):
    weights = build(yaml_checkpoint, tmp_path / "hostile.pt")
    refused_by_cli(weights, tmp_path, pattern, seconds=30)


@pytest.mark.slow
def test_huge_pickle_is_refused_before_inflating(tmp_path, yaml_checkpoint):
    """A 600 KiB deflated pickle that inflates to 600 MB is refused from the declared size."""
    weights = checkpoint_archive(yaml_checkpoint, b"\x80\x02]" + b"]a" * (300 * 2**20) + b".",
                                 tmp_path / "big.pt", deflate=True)
    assert weights.stat().st_size < 2 * 2**20
    refused(weights, r"(its entries inflate to 600 MiB from a 0\.6 MiB file|its pickle is 600\.0 MiB)")


@pytest.mark.slow
def test_model_that_explodes_when_run_is_stopped_by_the_memory_bound(tmp_path, yaml_checkpoint, dataset):
    """Passes every static check, then needs gigabytes in one forward pass: the bounded child stops it."""
    bomb = save_model_edit(yaml_checkpoint, tmp_path / "upsample.pt", upsampling_bomb)
    precheck_model(str(bomb))  # nothing static to object to
    refused_by_cli(bomb, tmp_path, r"(needs more than detbench's limit of 1\.0 GiB|fails to load and run once)",
                   "--data", str(dataset), "--imgsz", "320", "--load-memory", "1024", seconds=60)


@pytest.mark.slow
def test_model_that_takes_forever_to_build_is_stopped_by_the_time_bound(tmp_path, dataset):
    spec = (REPO / "src" / "detbench" / "zoo" / "baseline.yaml").read_text()
    slow = tmp_path / "slow.yaml"
    slow.write_text(spec.replace("[-1, 1, SPPF, [1024, 5]]", "[-1, 200000, Conv, [1024, 3, 1]]", 1))
    refused_by_cli(slow, tmp_path, r"loading and checking the model took more than 8 s, detbench's limit; .*"
                                   r"--load-timeout", "--data", str(dataset), "--load-timeout", "8", seconds=40)


@pytest.mark.slow
def test_a_run_that_would_outlast_its_time_budget_is_refused_before_it_starts(tmp_path, yaml_checkpoint, dataset):
    refused_by_cli(yaml_checkpoint, tmp_path, r"one forward pass took [\d.e-]+ s, so 1000001 of them at --batch 1 need "
                                              r"at least \d+ min, beyond --time-budget 1 s",
                   "--data", str(dataset), "--iters", "1000000", "--time-budget", "1")
