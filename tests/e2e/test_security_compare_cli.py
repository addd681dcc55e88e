"""`detbench compare` through the command line against hostile inputs: a sweep index that ends in a partial result or
one line, and text from reports that stays inert in every output of a pivot (the checks in process:
tests/unit/comparison/test_security_compare.py)."""

from __future__ import annotations

import csv
import re

from conftest import run_cli
from hostile_reports import ESCAPES, assert_inert, report, write_json

from detbench import text

HOSTILE_TEXT = [ESCAPES + "x", "=HYPERLINK(\"http://x\")", "a|b<b>c</b>", "$\\frac{1}{0}$", "u\u2028v\u202e",
                "lone \ud800 surrogate", "[evil](http://x)", "\\input{/etc/passwd}%"]


def test_a_hostile_index_from_the_command_line_is_one_line_and_inert(tmp_path):
    out = tmp_path / "out"
    write_json(out / "sweep.json", {"kind": "detbench sweep", "studies": {"a": {"status": "ok"}}})
    (out / "studies" / "a").mkdir(parents=True)
    (out / "studies" / "a" / "study.json").write_text("[" * 100_000 + "]" * 100_000)  # a RecursionError in json
    (out / "studies" / "b").mkdir()
    result = run_cli("compare", "--sweep", str(out), cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "a: its results are unreadable" in result.stdout
    (out / "sweep.json").write_text('{"kind": "detbench sweep", "studies": [1, 2]}')
    result = run_cli("compare", "--sweep", str(out), cwd=tmp_path)
    assert result.returncode != 0 and result.stdout == "" and len(result.stderr.splitlines()) == 1
    assert "sweep.json is damaged (its studies are not a mapping of study names)" in result.stderr


def test_every_field_pivot_prints_or_writes_is_inert(tmp_path):
    folder = tmp_path / "bench"
    write_json(folder / "base.json", report("baseline", 10.0, cpu=HOSTILE_TEXT[0]))
    write_json(folder / "base_onnx.json", report("baseline", 9.0, backend=HOSTILE_TEXT[0], cpu=HOSTILE_TEXT[0]))
    for i, hostile in enumerate(HOSTILE_TEXT):
        data = report(hostile + f" {i}", 11.0 + i, backend=HOSTILE_TEXT[-1 - i], cpu=HOSTILE_TEXT[0])
        data["metadata"].update(device="cpu" if i % 2 else "cpu " + hostile, weights=hostile)
        data["settings"]["precision"] = "fp32" if i % 3 else hostile
        data["environment"]["torch"] = hostile
        write_json(folder / f"m{i}.json", data)
    result = run_cli("compare", str(folder), "--pivot", "backend", "--format", "csv", "--format", "md", "--format",
                     "latex", "--plots", str(tmp_path / "plots"), cwd=tmp_path)
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
    assert (tmp_path / "plots" / "latency_by_backend.png").exists()
