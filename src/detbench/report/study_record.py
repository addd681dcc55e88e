"""`study.json`: the record `detbench ablate` writes beside a study's model reports, and its one reader.

Readers: `ablate`'s resume check, the sweep's task and index, `compare --sweep` and `benchmarks/gpu_check.py`.
The file is untrusted input: a regular file (not a link), of at most MAX_REPORT_BYTES, MAX_RECORD_CONTAINERS
lists and objects and MAX_JSON_VALUES values, checked before it is parsed, holding an object.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from detbench.errors import DetbenchError
from detbench.files.safe_io import read_json_bounded
from detbench.limits import MAX_RECORD_CONTAINERS, MAX_REPORT_BYTES
from detbench.report.model import Key, Record
from detbench.report.schema import MAX_JSON_VALUES

STUDY_FILE = "study.json"


class StudyRecord(Record):
    """study.json as `study.ablation` writes it, keys in their order (unknown ones kept)."""

    kind = Key[str]()
    status = Key[str]()  # "ok", or why the study did not finish
    id = Key[str]()
    key = Key[str]()  # the digest of what the study measured: a study with the same key is up to date
    baseline = Key[str]()
    models = Key[list]()  # {"name", "weights", "status", "error", "report", "note"} each
    comparisons = Key[list]()  # the verdicts, one per model against the baseline
    looks = Key[list]()
    gpu_sharing = Key[str]()

    def model_names(self) -> list[Any]:
        """The name of each listed model (a name, or an object with one); None where there is none."""
        return [model if isinstance(model, str) else model.get("name") if isinstance(model, dict) else None
                for model in self.models or []]


def read_study_record(path: str | Path, what: str | None = None, fix: str = "run the study again") -> StudyRecord:
    """The study record at `path`; anything else (a link, a special file, too large, not JSON, not an object) is
    a one-line DetbenchError naming `what` (the path by default), with `fix`."""
    what = what or str(path)
    if os.path.islink(path):
        raise DetbenchError(f"{what}: is a symbolic link, not a study record; {fix}")
    data = read_json_bounded(path, what, MAX_REPORT_BYTES, MAX_RECORD_CONTAINERS, MAX_JSON_VALUES, fix)
    if not isinstance(data, dict):
        raise DetbenchError(f"{what}: not a study record; {fix}")
    return StudyRecord.from_dict(data)
