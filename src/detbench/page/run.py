"""`detbench report DIR`, and the page that `ablate`, `compare` and `demo` write beside their results.

DIR is a folder of reports (what `bench`, `ablate` or `demo` wrote: the ablation table, plots, and the backend
matrix when the reports ran in more than one backend) or a sweep's --out folder (its sweep.json: the ranking
stability). The page goes to DIR/report.html unless --output names another file; it is written only once
everything it shows was read, so bad input writes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from detbench import text
from detbench.comparison.analysis import (
    Comparison,
    Entry,
    build_comparison,
    load_entries,
    report_files,
    stderr_warning,
)
from detbench.comparison.pivot import Pivot, build_pivots
from detbench.comparison.run import PAGE_NAME, check_file_target
from detbench.errors import DetbenchError
from detbench.page.content import PageContent, StudyCommand, comparison_content, sweep_content
from detbench.page.render import write_page
from detbench.report.study_record import STUDY_FILE, read_study_record
from detbench.text import Echo

SWEEP_INDEX = "sweep.json"


def study_command(entries: Sequence[Entry]) -> StudyCommand | None:
    """The id and command line of the study the reports come from (its study.json beside them), if they share a
    folder and it is readable."""
    folders = {entry.path.parent for entry in entries}
    if len(folders) != 1:
        return None
    path = folders.pop() / STUDY_FILE
    if not path.is_file():
        return None
    try:
        record = read_study_record(path)
    except DetbenchError:
        return None
    command, study_id = record.get("command"), record.get("id")
    if not isinstance(command, list):
        return None
    return StudyCommand(study_id if isinstance(study_id, str) else None, [str(part) for part in command])


def comparison_page(comparison: Comparison, entries: Sequence[Entry], pivots: Sequence[Pivot], folder: str | Path,
                    warnings: Sequence[str] = (), writer: str = "report") -> PageContent:
    return comparison_content(comparison, entries, pivots, str(folder), study_command(entries), warnings, writer)


@dataclass
class PageTarget:
    """The page `compare` (and the demo) writes after its tables (`comparison.run.PageWriter`): at `path`; `asked`
    when the command line named it (--html), so that a place that cannot be written is an error, not a warning."""

    path: Path
    asked: bool = False
    writer: str = "compare"  # the detbench command writing it, as the page's header names it

    def check(self, warn: Callable[[str], None]) -> bool:
        try:
            check_file_target(self.path, f"--html {text.terminal(self.path)}" if self.asked
                              else text.terminal(self.path),
                              "give a file path in a writable folder, e.g. --html results/bench/report.html")
        except DetbenchError as exc:
            if self.asked:
                raise
            warn(f"{PAGE_NAME} not written: {exc}; or pass --no-html")
            return False
        return True

    def write(self, comparison: Comparison, entries: Sequence[Entry], pivots: Sequence[Pivot], folder: Path,
              skipped: Sequence[str]) -> Path:
        fix = "choose another place with --html" if self.asked else "pass --html FILE or --no-html"
        return write_page(comparison_page(comparison, entries, pivots, folder, skipped, self.writer), self.path, fix)


def study_page(out: str | Path, baseline: str | None, echo: Echo) -> None:
    """OUT/report.html after `ablate`'s study; a page that cannot be made is a note, not a failed study."""
    try:
        run_report(out, baseline=baseline, echo=echo, warn=lambda line: None,  # the page lists skipped files
                   writer="ablate")
    except DetbenchError as exc:
        echo(f"  note: {PAGE_NAME} not written: {exc}")


def folder_page(folder: Path, baseline: str | None = None, warn: Callable[[str], None] | None = None,
                writer: str = "report") -> PageContent:
    """What the page of `folder` shows: a sweep's stability, or its reports' comparison."""
    if (folder / SWEEP_INDEX).is_file():
        return sweep_content(folder)
    skipped: list[str] = []

    def note(line: str) -> None:
        skipped.append(line)
        if warn is not None:
            warn(line)

    files = report_files([folder], note)
    if not files:
        raise DetbenchError(f"{text.terminal(folder)}: no benchmark report (*.json) in the folder; pass the folder "
                            "that `detbench ablate`, `bench` or `demo` wrote (e.g. results/bench)")
    entries = load_entries(files, note)
    comparison = build_comparison(entries, baseline=baseline)
    pivots = build_pivots(entries, comparison.baseline_name)
    return comparison_page(comparison, entries, pivots, folder, skipped, writer)


def run_report(folder: str | Path, output: str | Path | None = None, baseline: str | None = None,
               echo: Echo = print, warn: Callable[[str], None] | None = None, writer: str = "report") -> int:
    """Write FOLDER/report.html (or `output`); 0. Bad input: one-line DetbenchError, nothing written. `writer`: the
    detbench command writing it (`report`, or `ablate` after its study)."""
    folder = Path(folder)
    if not os.path.isdir(folder):
        what = "is not a folder" if os.path.lexists(folder) else "no such folder"
        raise DetbenchError(f"{text.terminal(folder)}: {what}; pass the folder of reports that `detbench ablate`, "
                            "`bench` or `demo` wrote (e.g. results/bench), or a sweep's --out folder")
    target = Path(output) if output is not None else folder / PAGE_NAME
    check_file_target(target, f"--output {text.terminal(target)}" if output is not None else text.terminal(target),
                      "pass --output FILE in a writable folder")
    page = folder_page(folder, baseline, warn=warn or stderr_warning, writer=writer)
    write_page(page, target, "choose another place with --output")
    echo(f"✓ saved: {text.terminal(target)}")
    return 0
