"""Model names: the report is OUT/NAME.json, so a name must be a safe, unambiguous file name.

Names come from `--name`, run folders and file stems, i.e. from whoever made
the files. A valid name has no path separators, control or line-separator
characters, does not start with "." (hidden) or "-" (read as a flag), fits in
a file name with room for the temporary file beside it, and is none of the
names detbench gives its own files in a results folder.
"""

from __future__ import annotations

import re
import unicodedata

from detbench.errors import DetbenchError

# stems of the files detbench writes next to the reports (compared case-insensitively): benchmark_list.txt.json is
# the list's record, sweep.json a sweep's index; ablation_summary.json is what ablate wrote before study.json
RESERVED_STEMS = frozenset({"ablation_summary", "benchmark_list", "benchmark_list.txt", "comparison", "study",
                            "sweep"})
MAX_NAME_BYTES = 200  # NAME_MAX is 255; the temporary file adds 14 characters and ".json" 5
SEED_DIR = re.compile(r"seed(\d+)")  # RUNS/NAME/seedK: one trained seed of the model NAME


def seed_number(folder_name: str) -> int | None:
    """K of a seedK folder's name; None for any other name."""
    match = SEED_DIR.fullmatch(folder_name)
    return int(match.group(1)) if match else None


def bad_characters(text: str) -> list[str]:
    """Characters that break a line-oriented file or a terminal: controls, line and paragraph separators, lone
    surrogates (no UTF-8 file takes them)."""
    return [ch for ch in text if unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Zl", "Zp"} or ch in "\x85"]


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a report, or None if it can."""
    if not name or not name.strip() or name in {".", ".."}:
        return "is empty"
    if "/" in name or "\\" in name:
        return "holds a path separator"
    bad = bad_characters(name)
    if bad:
        return f"holds the control or line-separator character {bad[0]!r}"
    if name.startswith("."):
        return "starts with '.' (a hidden file)"
    if name.startswith("-"):
        return "starts with '-' (it would be read as a flag)"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"is {len(name.encode('utf-8'))} bytes long, above {MAX_NAME_BYTES}"
    if name.casefold() in RESERVED_STEMS:
        return f"is reserved for detbench's own files ({', '.join(sorted(RESERVED_STEMS))})"
    return None


def check_model_name(name: str, source: str, fix: str = "choose another with --name") -> str:
    """Return `name`, or raise a one-line DetbenchError naming `source` (e.g. "--name x") and the fix."""
    problem = name_problem(name)
    if problem:
        raise DetbenchError(f"{source}: the model name {name[:80]!r} {problem}; {fix}")
    return name


def is_reserved_stem(stem: str) -> bool:
    return stem.casefold() in RESERVED_STEMS
