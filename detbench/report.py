"""The per-model JSON report: the user specification's layout plus provenance.

Sections `metadata`, `model_complexity`, `latency`, `throughput` and `memory`
follow the specification; `schema_version`, `settings`, `environment`,
`inputs`, `command`, `notes` and `samples` (every raw measurement) are added.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from detbench.atomic import write_text_atomic
from detbench.errors import DetbenchError

SCHEMA_VERSION = 1
REQUIRED_SECTIONS = ("metadata", "model_complexity", "latency", "throughput", "memory")
REQUIRED_LATENCY = ("mean_ms", "median_ms", "p50_ms", "p95_ms", "p99_ms", "std_ms", "min_ms", "max_ms")


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(_finite_or_none(report), indent=2, allow_nan=False) + "\n"


def write_report(report: dict[str, Any], path: str | Path) -> Path:
    """Validate, then write atomically (a crash leaves the old file or none, never half of one)."""
    validate_report(report, str(path))
    path = Path(path)
    write_text_atomic(path, dumps(report))
    return path


def validate_report(report: Any, source: str = "report") -> dict[str, Any]:
    if not isinstance(report, dict):
        raise DetbenchError(f"{source}: not a detbench report (top level is {type(report).__name__})")
    version = report.get("schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:
        raise DetbenchError(f"{source}: unknown schema_version {version!r} (this detbench reads "
                            f"{SCHEMA_VERSION}); re-run the benchmark with this version")
    missing = [s for s in REQUIRED_SECTIONS if not isinstance(report.get(s), dict)]
    if missing:
        raise DetbenchError(f"{source}: missing section(s) {', '.join(missing)}; re-run the benchmark")
    status = report.get("status", "ok")
    if not isinstance(status, str):
        raise DetbenchError(f"{source}: 'status' is not a string; re-run the benchmark")
    if status == "ok":
        absent = [k for k in REQUIRED_LATENCY if k not in report["latency"]]
        if absent:
            raise DetbenchError(f"{source}: latency lacks {', '.join(absent)}; re-run the benchmark")
        wrong = [k for k in REQUIRED_LATENCY if not _is_number_or_none(report["latency"][k])]
        samples = report.get("samples")
        latency_ms = samples.get("latency_ms", []) if isinstance(samples, dict) else []
        if not isinstance(latency_ms, list) or not all(_is_number_or_none(v) for v in latency_ms):
            wrong.append("samples.latency_ms")
        if wrong:
            raise DetbenchError(f"{source}: {', '.join(wrong)} not numeric; the file was edited or damaged, "
                                f"re-run the benchmark")
    return report


def _is_number_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def failure_report(status: str, error: str, metadata: dict[str, Any],
                   model_complexity: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A report for a run that did not finish timing (e.g. status "oom"): what was run and why it stopped.

    It has every required section, so batch tools and `compare` can read it and skip it by its status.
    """
    return {
        "schema_version": SCHEMA_VERSION,
        "status": status,
        "error": error,
        "metadata": metadata,
        "model_complexity": model_complexity or {},
        "latency": {},
        "throughput": {},
        "memory": {},
        **extra,
    }


def load_report(path: str | Path) -> dict[str, Any]:
    """Read and validate a report; any problem is a DetbenchError naming the file."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
        report = json.loads(text)
    except FileNotFoundError as exc:
        raise DetbenchError(f"{path}: report not found") from exc
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: JSON errors, huge integers
        raise DetbenchError(f"{path}: not valid JSON ({type(exc).__name__}); delete it and re-run") from exc
    except OSError as exc:
        raise DetbenchError(f"{path}: cannot read ({exc.strerror})") from exc
    return validate_report(report, str(path))
