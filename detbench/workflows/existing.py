"""A report already at OUT/NAME.json is replaced only by a run of the same settings, unless --force says so.

Benchmarking a model at one image size and then at another into the same
folder would otherwise replace the first report without a word. The settings
compared are those that change the numbers (BenchConfig fields marked
`compared`, the device as resolved, and the weights' SHA-256): re-running
the same benchmark replaces its report as before, and any run replaces the
report of a run that did not finish (status "oom").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detbench import text
from detbench.config import BenchConfig
from detbench.errors import DetbenchError
from detbench.flags import bench_fields, default_of, flag_name
from detbench.report.schema import load_report

SHOWN = 3  # differences named in the error


def _settings_of(config: dict[str, Any]) -> dict[str, Any]:
    """The compared settings by flag; one a report predates counts as its default."""
    return {flag_name(item): config.get(item.name, default_of(item)) for item in bench_fields(pass_through=True)
            if item.metadata["compared"]}


def differences(path: Path, cfg: BenchConfig, device: str, sha256: str | None) -> list[str]:
    """How the report at `path` was made differently from this run ("--imgsz 64, now 96"); empty if the same,
    or if it records a run that did not finish (e.g. status "oom": the next run at a smaller --batch replaces it)."""
    report = load_report(path)
    if report.status != "ok":
        return []
    found = []
    if report.metadata.weights_sha256 != sha256 and (sha256 or report.metadata.weights != cfg.weights):
        found.append("other weights")
    if report.metadata.device != device:
        found.append(f"--device {report.metadata.device}, now {device}")
    if report.config is None:  # a version-1 report: what its metadata says
        old = {"imgsz": report.metadata.imgsz_requested or report.metadata.imgsz, "batch": report.metadata.batch,
               "warmup": report.metadata.warmup, "iters": report.metadata.iters}
        new = {"imgsz": cfg.imgsz, "batch": cfg.batch, "warmup": cfg.warmup, "iters": cfg.iters}
    else:
        old, new = _settings_of(report.config), _settings_of(cfg.to_dict())
    found += [f"--{key} {old.get(key)}, now {value}" for key, value in new.items() if old.get(key) != value]
    return found


def refuse_replacing_other_settings(path: Path, cfg: BenchConfig, device: str, sha256: str | None) -> None:
    """One-line error when `path` holds a report of other settings (or is no readable report at all)."""
    if cfg.force or not path.exists():
        return
    try:
        found = differences(path, cfg, device, sha256)
    except DetbenchError:
        found = ["it is not a readable detbench report"]
    if found:
        more = f" and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
        raise DetbenchError(f"{text.terminal(path)}: already holds a report of other settings "
                            f"({'; '.join(found[:SHOWN])}{more}); give this run another --name or --out, or "
                            f"pass --force to replace it")
