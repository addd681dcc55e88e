"""`detbench compare` through the command line against hostile inputs: a sweep index that ends in a partial result or
one line, and text from reports that stays inert in every output of a pivot (the checks in process:
tests/unit/comparison/test_security_compare.py). The command lines run in one child process (tests/batch_child.py)
that imports what compare --sweep imports once; each gives the exit code and output of a process of its own."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from batch_child import CaseOutcome, run_batch
from cli_batch import CLI_MAIN
from hostile_reports import ESCAPES, assert_inert, report, write_json

from detbench import text

HOSTILE_TEXT = [ESCAPES + "x", "=HYPERLINK(\"http://x\")", "a|b<b>c</b>", "$\\frac{1}{0}$", "u\u2028v\u202e",
                "lone \ud800 surrogate", "[evil](http://x)", "\\input{/etc/passwd}%"]
IMPORTS = "import detbench.cli, detbench.comparison.sweep"


def _unreadable_study(out: Path) -> Path:
    write_json(out / "sweep.json", {"kind": "detbench sweep", "studies": {"a": {"status": "ok"}}})
    (out / "studies" / "a").mkdir(parents=True)
    (out / "studies" / "a" / "study.json").write_text("[" * 100_000 + "]" * 100_000)  # a RecursionError in json
    (out / "studies" / "b").mkdir()
    return out


def _hostile_reports(folder: Path) -> Path:
    write_json(folder / "base.json", report("baseline", 10.0, cpu=HOSTILE_TEXT[0]))
    write_json(folder / "base_onnx.json", report("baseline", 9.0, backend=HOSTILE_TEXT[0], cpu=HOSTILE_TEXT[0]))
    for i, hostile in enumerate(HOSTILE_TEXT):
        data = report(hostile + f" {i}", 11.0 + i, backend=HOSTILE_TEXT[-1 - i], cpu=HOSTILE_TEXT[0])
        data["metadata"].update(device="cpu" if i % 2 else "cpu " + hostile, weights=hostile)
        data["settings"]["precision"] = "fp32" if i % 3 else hostile
        data["environment"]["torch"] = hostile
        write_json(folder / f"m{i}.json", data)
    return folder


@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> tuple[Path, dict[str, CaseOutcome]]:
    """`detbench compare` on each hostile input below one folder: the outcome of each command line."""
    root = tmp_path_factory.mktemp("compare")
    partial = _unreadable_study(root / "partial")
    damaged = _unreadable_study(root / "damaged")
    (damaged / "sweep.json").write_text('{"kind": "detbench sweep", "studies": [1, 2]}')
    pivot = ["compare", _hostile_reports(root / "bench"), "--pivot", "backend", "--format", "csv", "--format", "md",
             "--format", "latex", "--plots", root / "plots"]
    cases = {"partial": ["compare", "--sweep", partial], "damaged": ["compare", "--sweep", damaged], "pivot": pivot}
    outcomes = run_batch([(name, CLI_MAIN, [str(arg) for arg in args], str(root)) for name, args in cases.items()],
                         imports=IMPORTS, headroom=2**30, case_timeout=120, scratch=tmp_path_factory.mktemp("batch"))
    assert set(outcomes) == set(cases), f"no outcome for {sorted(set(cases) - set(outcomes))}"
    return root, outcomes


def test_a_hostile_index_from_the_command_line_is_one_line_and_inert(compared):
    result = compared[1]["partial"]
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "a: its results are unreadable" in result.stdout
    result = compared[1]["damaged"]
    assert result.returncode != 0 and result.stdout == "" and len(result.stderr.splitlines()) == 1
    assert "sweep.json is damaged (its studies are not a mapping of study names)" in result.stderr


def test_every_field_pivot_prints_or_writes_is_inert(compared):
    root, result = compared[0], compared[1]["pivot"]
    folder = root / "bench"
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "\x1b" not in result.stdout + result.stderr and "\x07" not in result.stdout + result.stderr
    assert_inert(result.stdout.splitlines())
    assert "Median latency per model and backend" in result.stdout and "\\x1b]0;owned\\x07" in result.stdout
    rows = list(csv.reader((folder / "comparison.csv").read_text().splitlines()))
    assert all(not cell.startswith(text.CSV_FORMULA_STARTS) for row in rows for cell in row)
    markdown = (folder / "comparison.md").read_text()
    assert "<b>" not in markdown and "\x1b" not in markdown and not re.search(r"(?<!\\)\]\(", markdown)
    latex = (folder / "comparison.tex").read_text()
    assert "\\input{" not in latex and "\x1b" not in latex
    assert (root / "plots" / "latency_by_backend.png").exists()
