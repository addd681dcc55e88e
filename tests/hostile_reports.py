"""Hostile text and synthetic report files for the compare security tests (in process and through the CLI)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from conftest import make_report, spread

from detbench.names import bad_characters

ESCAPES = "\x1b]0;owned\x07\x1b[31m"  # a window title, then red


def write_json(path: Path, value: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))
    return path


def report(name: str, median: float = 10.0, backend: str | None = None, **environment: Any) -> dict[str, Any]:
    data = make_report(name, spread(median))
    if backend is not None:
        data["settings"]["backend"] = {"format": backend, "runtime": "rt", "version": "1"}
    data["environment"].update(environment)
    return data


def assert_inert(lines: list[str]) -> None:
    for line in lines:
        assert not bad_characters(line) and not re.search("[\ud800-\udfff]", line), repr(line[:200])
