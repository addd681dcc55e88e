"""OUT/sweep.json, the sweep's index: which sweep owns OUT, and each study's cell, content key and outcome.

Read back, it is a file like any other (it may be damaged or hostile): any JSON is either a usable index, with
every field of the shape the sweep uses (an entry or field of another shape is dropped), or a one-line error.

One sweep per OUT. The index records the sweep that owns the folder: its file (absolute path) and its content's
hash. Running the same sweep file again (edited or not) resumes it: what is finished under the same content
key is skipped, the rest runs, and cells no longer in the file leave the index. A *different* sweep (another
file, with other content) is refused in one line if it would replace or drop any study of the sweep there,
that is unless every study the index records is planned again under the same content key (a copy of the same
sweep, or one that only adds cells); pass it another --out.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import threading
from pathlib import Path
from typing import Any

from detbench.errors import DetbenchError
from detbench.files.atomic import write_text_atomic
from detbench.files.out_tree import folder_below
from detbench.files.safe_io import read_json_bounded
from detbench.limits import MAX_RECORD_CONTAINERS, MAX_REPORT_BYTES, MAX_SWEEP_STUDIES
from detbench.report.schema import MAX_JSON_VALUES
from detbench.report.study_record import STUDY_FILE, read_study_record
from detbench.sweep.plan import STUDIES_DIR, Plan, PlannedStudy
from detbench.sweep.spec import SweepSpec
from detbench.text import terminal

INDEX_NAME = "sweep.json"
INDEX_KIND = "detbench sweep"
# the fields of a study's entry the sweep reads back, and their types
ENTRY_FIELDS: dict[str, Any] = {"key": str, "status": str, "reason": str, "seconds": (int, float), "node": dict,
                                "finished": str, "attempts": int, "study_id": str, "device_kind": str,
                                "cell": dict}


def now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def sweep_identity(spec: SweepSpec) -> dict[str, str]:
    """The sweep file's absolute path and the hash of its content as read (comments and layout aside)."""
    content = {"models": spec.models, "runs": spec.runs, "baseline": spec.baseline, "data": spec.data,
               "axes": spec.axes, "settings": spec.settings}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()
    return {"file": str(Path(spec.path).resolve()), "content_sha256": digest}


def _entry(raw: dict[str, Any]) -> dict[str, Any]:
    """A study's entry with only the fields of the right type (a number only if finite)."""
    entry = {}
    for name, kind in ENTRY_FIELDS.items():
        value = raw.get(name)
        if isinstance(value, kind) and not isinstance(value, bool) and not (
                isinstance(value, float) and not math.isfinite(value)):
            entry[name] = value
    return entry


def _identity(raw: Any) -> dict[str, str] | None:
    """A recorded `sweep_identity`, if it has that shape."""
    fields = ("file", "content_sha256")
    if not isinstance(raw, dict) or not all(isinstance(raw.get(name), str) for name in fields):
        return None
    return {name: raw[name] for name in fields}


def load_index(path: Path, what: str, fix: str) -> dict[str, Any] | None:
    """The sweep index at `path` (a sweep's OUT/sweep.json), checked and reduced to what detbench reads of it, by
    the sweep and by `compare --sweep` alike; None when there is none. Anything else (a link, a special file, too
    large, not JSON, no detbench sweep index, its studies not a mapping, more of them than a sweep plans) is one
    line: `{what} ...; {fix}`."""
    if not os.path.lexists(path):
        return None
    try:
        index = read_json_bounded(path, str(path), MAX_REPORT_BYTES, MAX_RECORD_CONTAINERS, MAX_JSON_VALUES)
    except DetbenchError:
        index = None
    if not isinstance(index, dict) or index.get("kind") != INDEX_KIND:
        raise DetbenchError(f"{what} is not a detbench sweep index (or is damaged); {fix}")
    studies = {} if index.get("studies") is None else index["studies"]
    if not isinstance(studies, dict):
        raise DetbenchError(f"{what} is damaged (its studies are not a mapping of study names); {fix}")
    if len(studies) > MAX_SWEEP_STUDIES:
        raise DetbenchError(f"{what} lists {len(studies):,} studies, more than a sweep plans ({MAX_SWEEP_STUDIES:,}): "
                            f"not an index detbench wrote; {fix}")
    index["studies"] = {name: _entry(entry) for name, entry in studies.items() if isinstance(entry, dict)}
    index["sweep"] = _identity(index.get("sweep"))
    if not isinstance(index.get("spec"), str):
        index["spec"] = None
    return index


def read_index(out: Path) -> dict[str, Any]:
    """OUT's index, for the sweep that is to run there ({} when there is none)."""
    return load_index(out / INDEX_NAME, f"--out {terminal(out)}: {INDEX_NAME} there",
                      "choose another --out, or move the file away to start this sweep afresh") or {}


def _owner_file(previous: dict[str, Any]) -> str | None:
    """The file of the sweep that owns OUT: as recorded, or (an index of an older detbench) its `spec` path."""
    if previous.get("sweep"):
        return str(previous["sweep"]["file"])
    try:
        return str(Path(previous["spec"]).resolve()) if previous.get("spec") else None
    except (OSError, ValueError):  # a NUL or a path too long: no file of this machine
        return None


def check_same_sweep(out: Path, previous: dict[str, Any], mine: dict[str, str], shown: str, plan: Plan) -> None:
    """A one-line error when OUT holds the studies of another sweep that this one (`mine`: its `sweep_identity`;
    `shown`: its file as given) would replace or drop."""
    if not previous:
        return
    owner = previous.get("sweep")
    if _owner_file(previous) == mine["file"] or (owner and owner["content_sha256"] == mine["content_sha256"]):
        return  # the same sweep, maybe edited: it resumes
    planned = {study.name: study.key for study in plan.studies}
    lost = [name for name, entry in previous["studies"].items()
            if entry.get("status") != "invalid" and planned.get(name) != entry.get("key")]
    if not lost:
        return  # every study there is planned again, unchanged
    other = _owner_file(previous) or "a sweep file not recorded"
    raise DetbenchError(f"--out {terminal(out)}: holds the studies of another sweep ({terminal(other[:200])}), "
                        f"{len(lost)} of which this sweep ({terminal(shown)}) would replace or drop (e.g. "
                        f"{terminal(lost[0][:80])}); pass another --out for this sweep (a sweep never replaces "
                        f"another's studies)")


def finished(out: Path, index: dict[str, Any], study: PlannedStudy, cpu: str | None = None) -> bool:
    """The index records this very study (same key) as ok, and its study.json is there, in a real folder. `cpu`:
    this machine's CPU model, for a CPU study run here: one that ran on another CPU (a Ray node's) is not this
    one."""
    entry = (index.get("studies") or {}).get(study.name)
    if not (isinstance(entry, dict) and entry.get("key") == study.key and entry.get("status") == "ok"):
        return False
    try:
        folder = folder_below(out, STUDIES_DIR, study.name, create=False)
        recorded = read_study_record(folder / STUDY_FILE, study.name)
    except DetbenchError:
        return False
    if recorded.status != "ok" or recorded.id != entry.get("study_id"):
        return False
    node = entry.get("node") if isinstance(entry.get("node"), dict) else {}
    return cpu is None or study.gpu or node.get("cpu") == cpu


KEPT_FIELDS = ("status", "reason", "seconds", "node", "finished", "attempts", "study_id")


class Index:
    """OUT/sweep.json, rewritten atomically each time a study's outcome arrives (from any executor thread)."""

    def __init__(self, out: Path, spec: SweepSpec, plan: Plan, executor: str, previous: dict[str, Any],
                 identity: dict[str, str] | None = None) -> None:
        self.out, self.lock = out, threading.Lock()
        old = previous.get("studies") or {}
        self.data: dict[str, Any] = {
            "kind": INDEX_KIND, "spec": spec.path, "sweep": identity or sweep_identity(spec), "axes": spec.axes,
            "settings": spec.settings, "models": [run.name for run in plan.models], "baseline": plan.baseline,
            "list_sha256": plan.list_sha256, "executor": executor, "updated": now(), "studies": {}}
        for study in plan.studies:
            entry = {**study.record(), "dir": f"{STUDIES_DIR}/{study.name}", "status": "pending", "reason": None}
            if study.invalid:
                entry.update(status="invalid", reason=study.invalid)
            elif isinstance(old.get(study.name), dict) and old[study.name].get("key") == study.key:
                entry.update({k: v for k, v in old[study.name].items() if k in KEPT_FIELDS and v is not None})
                if entry["status"] not in {"ok", "failed", "timeout"}:
                    entry["status"] = "pending"
            self.data["studies"][study.name] = entry
        self.write()

    def write(self) -> None:
        self.data["updated"] = now()
        write_text_atomic(self.out / INDEX_NAME, json.dumps(self.data, indent=1, default=str) + "\n")

    def record(self, name: str, outcome: dict[str, Any]) -> None:
        with self.lock:
            entry = self.data["studies"][name]
            entry.update({k: outcome.get(k) for k in ("status", "reason", "seconds", "node", "exit_code",
                                                      "study_id", "attempts") if k in outcome},
                         finished=now())
            self.write()
