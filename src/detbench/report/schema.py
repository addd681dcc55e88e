"""The per-model JSON report: the user specification's layout plus provenance.

Sections `metadata`, `model_complexity`, `latency`, `throughput` and `memory`
follow the specification; `schema_version`, `settings`, `environment`,
`inputs`, `command`, `notes` and `samples` (every raw measurement) are added.

A report is untrusted input when it is read: it must be a regular file of at
most `MAX_REPORT_BYTES`, strict JSON (no NaN or Infinity), and every field
detbench uses must have its type and a sensible value (the `Kind` its section
declares in `detbench.report.model`), so that one
damaged or crafted file is refused with one line instead of breaking a tool.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from detbench.errors import DetbenchError
from detbench.files.atomic import write_text_atomic
from detbench.files.safe_io import json_shape, read_regular_file
from detbench.limits import MAX_REPORT_BYTES, MAX_STUDY_ROUNDS, MAX_STUDY_WORKERS
from detbench.report.kinds import NONNEGATIVE, OBJECTS, SAMPLE, Kind, is_number
from detbench.report.model import READABLE_VERSIONS, Memory, Report, upgrade_v1

REQUIRED_SECTIONS = ("metadata", "model_complexity", "latency", "throughput", "memory")
REQUIRED_LATENCY = ("mean_ms", "median_ms", "p50_ms", "p95_ms", "p99_ms", "std_ms", "min_ms", "max_ms")
SUMMARY_TOLERANCE = 1e-6  # relative: latency.median_ms, min_ms and max_ms against the samples
DAMAGED = "the file was edited or damaged, re-run the benchmark"


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


def write_report(report: Report | dict[str, Any], path: str | Path) -> Path:
    """Validate, then write atomically (a crash leaves the old file or none, never half of one)."""
    if isinstance(report, Report):
        report = report.to_dict()
    validate_report(report, str(path))
    path = Path(path)
    write_text_atomic(path, dumps(report))
    return path


def shown(value: Any) -> str:
    """A value as an error message names it: short, and never the whole of a huge one."""
    if isinstance(value, (dict, list)):
        return f"a {'list' if isinstance(value, list) else 'object'}"
    if is_number(value):
        return f"{value:g}" if isinstance(value, float) or abs(value) < 10**15 else "a huge number"
    if isinstance(value, str) and len(value) > 40:
        return repr(value[:37]) + "..."
    return repr(value)


def _problem(name: str, value: Any, kind: Kind) -> str | None:
    if kind.test(value):
        return None
    if kind.numeric and not is_number(value):
        return f"{name} not numeric"
    return f"{name} is {shown(value)}, not {kind.what}"


def _section_problems(section: type, values: dict[str, Any], prefix: str = "") -> list[str | None]:
    """The fields of one section (a `Section` or `Record` type) whose value is not of their declared kind."""
    return [_problem(f"{prefix}{name}", values[name], kind) for name, kind in section.kinds()
            if kind is not None and name in values]


def _field_problems(report: dict[str, Any]) -> list[str]:
    """Every field of a wrong type or value, named by its place (e.g. "metadata.imgsz")."""
    problems = _section_problems(Report, report)
    for name, section in Report.NESTED.items():
        values = report.get(name)
        if isinstance(values, dict):
            problems += _section_problems(section, values, f"{name}.")
        elif name == "rounds" and OBJECTS.test(values):
            problems += [p for i, one in enumerate(values) for p in _section_problems(section, one, f"rounds[{i}].")]
    declared = {name for name, _ in Memory.kinds()}
    problems += [_problem(f"memory.{key}", value, NONNEGATIVE) for key, value in report["memory"].items()
                 if key.endswith("_MB") and key not in declared]
    samples = report.get("samples")
    latency_ms = samples.get("latency_ms") if isinstance(samples, dict) else None
    if isinstance(latency_ms, list):
        first_bad = next((i for i, value in enumerate(latency_ms) if not SAMPLE.test(value)), None)
        if first_bad is not None:
            problems.append(_problem(f"samples.latency_ms[{first_bad}]", latency_ms[first_bad], SAMPLE))
    problems += _turn_problems(samples)
    return [problem for problem in problems if problem]


def _turn_problems(samples: Any) -> list[str]:
    """A study's `samples.round` and `samples.worker`: integers in range, one per latency sample."""
    if not isinstance(samples, dict):
        return []
    latency_ms = samples.get("latency_ms")
    problems = []
    for key, high in (("round", MAX_STUDY_ROUNDS), ("worker", MAX_STUDY_WORKERS)):
        values = samples.get(key)
        if values is None:
            continue
        if isinstance(values, list) and not values:
            problems.append(f"samples.{key} is empty")
            continue
        if not isinstance(values, list) or not isinstance(latency_ms, list) or len(values) != len(latency_ms):
            problems.append(f"samples.{key} is not one entry per latency sample")
        elif not all(type(x) is int and 0 <= x < high for x in values):
            problems.append(f"samples.{key} holds values that are not integers from 0 to {high - 1}")
    return problems


def validate_report(report: Any, source: str = "report") -> dict[str, Any]:
    """`report` (a version-1 one upgraded) if it is a detbench report every tool can read; else a one-line
    DetbenchError."""
    if not isinstance(report, dict):
        raise DetbenchError(f"{source}: not a detbench report (top level is {type(report).__name__})")
    version = report.get("schema_version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise DetbenchError(f"{source}: unknown schema_version {version!r} (this detbench reads "
                            f"{' and '.join(map(str, READABLE_VERSIONS))}); re-run the benchmark with this version")
    if version == 1:
        report = upgrade_v1(report)
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
    problems = _field_problems(report) or _summary_problems(report)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise DetbenchError(f"{source}: {', '.join(problems[:3])}{more}; {DAMAGED}")
    return report


def _summary_problems(report: dict[str, Any]) -> list[str]:
    """The latency statistics that disagree with the raw samples they were computed from (an edited file)."""
    samples = report.get("samples")
    latency_ms = samples.get("latency_ms") if isinstance(samples, dict) else None
    if not latency_ms:
        return []
    values = np.asarray(latency_ms, dtype=np.float64)
    expected = {"median_ms": float(np.median(values)), "min_ms": float(values.min()), "max_ms": float(values.max())}
    latency = report["latency"]
    return [f"latency.{key} does not match samples.latency_ms" for key, value in expected.items()
            if latency.get(key) is not None and not math.isclose(latency[key], value, rel_tol=SUMMARY_TOLERANCE)]


MAX_JSON_CONTAINERS = 200_000  # a report has a few hundred lists and objects
MAX_JSON_VALUES = 16_000_000  # 1,000,000 iterations of every sample kind, with room to spare


def check_json_shape(data: bytes, source: str) -> None:
    """Refuse JSON whose parse would cost far more memory than its size suggests (a list of a million empty lists)."""
    containers, values = json_shape(data)
    if containers > MAX_JSON_CONTAINERS or values > MAX_JSON_VALUES:
        raise DetbenchError(f"{source}: holds {containers:,} lists and objects and {values:,} values, far more than "
                            f"a report; {DAMAGED}")


def parse_report(path: str | Path) -> Any:
    """The JSON value in a report file, not yet validated; any problem is a DetbenchError naming the file."""
    data = read_regular_file(path, str(path), MAX_REPORT_BYTES, "pass a report written by `detbench bench`")
    check_json_shape(data, str(path))

    def refuse(constant: str) -> None:
        raise DetbenchError(f"{path}: holds {constant}, which JSON does not allow; {DAMAGED}")

    try:
        return json.loads(data.decode("utf-8"), parse_constant=refuse)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: JSON errors, huge integers
        raise DetbenchError(f"{path}: not valid JSON ({type(exc).__name__}); delete it and re-run") from exc


def load_report(path: str | Path) -> Report:
    """Read and validate a report; any problem is a DetbenchError naming the file."""
    return Report.from_dict(validate_report(parse_report(path), str(path)))
