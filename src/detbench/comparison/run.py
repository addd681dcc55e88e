"""`detbench compare` end to end: check where the tables go, load the reports, analyse, print, write.

The analysis itself is `comparison.analysis`; the renderers are `comparison.tables` and
`comparison.plots`. This module sits on top of all three, so none of them imports another's caller.
What the tables print is terminal-safe and at most MAX_TERMINAL_BYTES (`text.bounded_echo`); the lines that
say what was saved follow it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from detbench import text
from detbench.comparison import tables
from detbench.comparison.analysis import (
    Comparison,
    Entry,
    build_comparison,
    load_entries,
    report_files,
    stderr_warning,
)
from detbench.comparison.pivot import Pivot, build_pivots, pivot_lines
from detbench.errors import DetbenchError
from detbench.limits import MAX_PLOT_GROUPS, MAX_TERMINAL_BYTES

# ---------------------------------------------------------------- output places

def check_file_target(path: Path, label: str, fix: str) -> None:
    """Fail, creating nothing, unless a file can be written at `path` (its folder may still have to be made)."""
    if os.path.isdir(path):
        raise DetbenchError(f"{label}: is a folder, not a file; {fix}")
    if os.path.lexists(path) and not os.path.isfile(path):
        raise DetbenchError(f"{label}: exists and is not a regular file; {fix}")
    check_folder_target(path.parent, label, fix)


def check_folder_target(folder: Path, label: str, fix: str) -> None:
    """Fail, creating nothing, unless `folder` is a writable folder or can be made as one."""
    probe = Path(os.path.abspath(folder))
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    if not os.path.isdir(probe):
        raise DetbenchError(f"{label}: {text.terminal(probe)} is a file, not a folder; {fix}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise DetbenchError(f"{label}: cannot write in {text.terminal(probe)} (no permission or a read-only file "
                            f"system); {fix}")


def table_targets(output: str | Path | None, formats: Sequence[str], folder: Path) -> dict[str, Path]:
    """Where each table goes: CSV at `output`, other formats beside it; without `output`, FOLDER/comparison.*."""
    targets: dict[str, Path] = {}
    if output is not None:
        targets["csv"] = Path(output)
    stem = Path(output).with_suffix("") if output is not None else folder / "comparison"
    for fmt in formats:
        targets.setdefault(fmt, stem.with_suffix(tables.SUFFIXES[fmt]))
    return targets


def check_targets(targets: dict[str, Path], output: str | Path | None, plots_dir: str | Path | None) -> None:
    """Every table and the plots folder can be written: else one line naming the flag (or path) and the fix."""
    for path in targets.values():
        if output is None:
            label, fix = text.terminal(path), "pass --output FILE in a writable folder"
        else:
            label = f"--output {text.terminal(output)}"
            if path != Path(output):
                label += f" ({text.terminal(path)})"
            fix = "give a file path in a writable folder, e.g. --output results/comparison.csv"
        check_file_target(path, label, fix)
    if plots_dir is not None:
        check_folder_target(Path(plots_dir), f"--plots {text.terminal(plots_dir)}",
                            "give a folder for the PNGs, e.g. --plots results/plots")


# ---------------------------------------------------------------- entry point

def run_compare(report_paths_or_dir: str | Path | Sequence[str | Path], baseline: str | None = None,
                output: str | Path | None = None, formats: Sequence[str] = (),
                plots_dir: str | Path | None = None, min_effect: float | None = None, alpha: float | None = None,
                echo: Callable[[str], None] = print, warn: Callable[[str], None] = stderr_warning,
                pivot: str | None = None, page: PageWriter | None = None) -> int:
    """Load reports (files and/or folders), print the comparison, write CSV/Markdown/LaTeX and plots.

    `formats` holds "csv", "md" and/or "latex"; they are written next to
    `output` (same stem) or, without `output`, next to the reports (the folder
    given, or the common folder of what was given) as comparison.{csv,md,tex}.
    Every output place is checked before anything is loaded. Warnings about
    skipped files go to `warn` (default: stderr). Every line passed to `echo`
    or `warn` is terminal-safe (`text.terminal`); the tables' lines are at most
    MAX_TERMINAL_BYTES together. `pivot="backend"` adds the model x backend matrix
    (`comparison.pivot`). `page`: also write the self-contained page (`detbench.page.run.PageTarget`) after
    the tables; its place is checked with the tables'. Returns 0.
    """
    safe_warn, safe_echo = text.terminal_echo(warn), text.terminal_echo(echo)
    sources = [report_paths_or_dir] if isinstance(report_paths_or_dir, (str, Path)) else list(report_paths_or_dir)
    unknown = sorted(set(formats) - set(tables.RENDERERS))
    if unknown:
        raise DetbenchError(f"--table-format {', '.join(unknown)} is not known: use csv, md or latex")
    targets = table_targets(output, formats, default_folder(sources))
    check_targets(targets, output, plots_dir)
    if page is not None and not page.check(safe_warn):
        page = None
    skipped: list[str] = []  # the page lists them too

    def note_skipped(line: str) -> None:
        skipped.append(line)
        safe_warn(line)

    files = report_files(sources, note_skipped)
    refuse_overwriting_inputs({**targets, **({"html": page.path} if page is not None else {})}, files)
    entries = load_entries(files, note_skipped)
    comparison = build_comparison(entries, baseline=baseline, alpha=alpha, min_effect=min_effect)
    say = text.bounded_echo(echo, MAX_TERMINAL_BYTES, TERMINAL_NOTE)
    for line in tables.console_lines(comparison):
        say(line)
    matrices = build_pivots(entries, comparison.baseline_name, alpha, min_effect) if pivot == "backend" else []
    for index, matrix in enumerate(matrices, 1):
        say("")
        if len(matrices) > 1:
            say(f"Matrix {index} of {len(matrices)} (reports of one setting each; see the groups above)")
        for line in pivot_lines(matrix):
            say(line)
    rendered = {path: tables.RENDERERS[fmt](comparison) for fmt, path in targets.items()}
    for path, content in rendered.items():
        tables.write_table(path, content)
        safe_echo(f"✓ saved: {path}")
    if plots_dir is not None:
        write_all_plots(comparison, matrices, Path(plots_dir), safe_echo)
    if page is not None:
        safe_echo(f"✓ saved: {page.write(comparison, entries, matrices, default_folder(sources), skipped)}")
    return 0


def html_target(sources: Sequence[str | Path], output: str | Path | None, html: str | None,
                no_html: bool) -> Path | None:
    """Where `compare` writes its page: --html, else report.html beside --output, else in the folder of the tables
    (`default_folder`); None with --no-html."""
    if no_html:
        return None
    if html is not None:
        return Path(html)
    return (Path(output).parent if output is not None else default_folder(sources)) / PAGE_NAME


PAGE_NAME = "report.html"


class PageWriter(Protocol):
    """What `run_compare` needs of the page it writes after the tables (`detbench.page.run.PageTarget`)."""

    path: Path

    def check(self, warn: Callable[[str], None]) -> bool:
        """Whether the page can be written at `path` (checked with the tables, before any report is read)."""

    def write(self, comparison: Comparison, entries: Sequence[Entry], pivots: Sequence[Pivot], folder: Path,
              skipped: Sequence[str]) -> Path:
        """Write the page; the path written."""
TERMINAL_NOTE = (f"... the rest of the tables is not printed: more than {MAX_TERMINAL_BYTES // 2**20} MiB of text "
                 "(names or notes from the reports); write them with --output or --format to read every row")


def write_all_plots(comparison: Comparison, matrices: Sequence[Pivot], folder: Path,
                    echo: Callable[[str], None]) -> None:
    """The comparison's plots, then each pivot matrix's bar chart (the first MAX_PLOT_GROUPS); a note for each one
    not drawn."""
    # imported here, not at the top: loads numpy and matplotlib, kept out of light commands
    from detbench.comparison.plots import backend_bars, write_plots

    def note(line: str) -> None:
        echo(f"  note: {line}")

    for path in write_plots(comparison, folder, note=note):
        echo(f"✓ saved: {path}")
    if len(matrices) > MAX_PLOT_GROUPS:
        note(f"bar charts of the first {MAX_PLOT_GROUPS} matrices only, of {len(matrices)}")
    for index, matrix in enumerate(matrices[:MAX_PLOT_GROUPS], 1):
        name = "latency_by_backend.png" if index == 1 else f"latency_by_backend_{index}.png"
        path = backend_bars(matrix, folder / name, note=note)
        if path is not None:
            echo(f"✓ saved: {path}")


def refuse_overwriting_inputs(targets: dict[str, Path], files: Sequence[Path]) -> None:
    """A table may not replace one of the reports it is computed from."""
    inputs = {os.path.realpath(path) for path in files}
    for path in targets.values():
        if os.path.realpath(path) in inputs:
            raise DetbenchError(f"--output {text.terminal(path)}: is one of the reports being compared and would be "
                                f"overwritten; choose another file (e.g. results/bench/comparison.csv)")


def default_folder(sources: Sequence[str | Path]) -> Path:
    """Where tables go without --output: the folder given, else the common folder of the reports given."""
    folders = [Path(source) if os.path.isdir(source) else Path(source).parent for source in sources]
    if len(set(folders)) <= 1:
        return folders[0] if folders else Path(".")
    return Path(os.path.commonpath([os.path.abspath(folder) for folder in folders]))


